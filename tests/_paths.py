"""Where the shared real data pack is (``$RSMG_DATA_ROOT`` or ``../shared/data`` beside the repo)."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("RSMG_DATA_ROOT", REPO.parent / "shared" / "data")).resolve()


def missing_shared_data(path: Path, what: str) -> None:
    """Skip a test whose shared-data file is absent: on a laptop a skip, in CI (``CI`` set) a failure.

    ``conftest.py`` already stops a CI run without the pack; this covers a pack that lacks one file, so a
    real-data test can never pass in CI by skipping.
    """
    import pytest

    message = f"{what} not found at {path} (shared data pack: set RSMG_DATA_ROOT or put it at ../shared/data)"
    if os.environ.get("CI"):
        pytest.fail(f"CI=true: {message}")
    pytest.skip(message)
