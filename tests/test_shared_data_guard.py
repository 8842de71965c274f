"""A real-data test whose file is missing skips on a laptop but fails in CI (never passes by skipping there)."""

from pathlib import Path

import pytest

from _paths import missing_shared_data


def test_missing_file_fails_in_ci_and_skips_elsewhere(monkeypatch):
    absent = Path("/nonexistent/rsmg/shared/file.mat")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true: Trento LiDAR not found at /nonexistent"):
        missing_shared_data(absent, "Trento LiDAR")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="RSMG_DATA_ROOT"):
        missing_shared_data(absent, "Trento LiDAR")
