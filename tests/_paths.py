"""Where the shared real data pack is (``$RSMG_DATA_ROOT`` or ``../shared/data`` beside the repo)."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("RSMG_DATA_ROOT", REPO.parent / "shared" / "data")).resolve()
