"""Shared pytest fixtures, and one intra-op thread for every test and every process a test starts."""

from __future__ import annotations

import os

# Set before torch is imported, so this process and every subprocess (rsmg runs, DDP ranks, notebook kernels)
# inherit it. The tests' models are tiny: on a shared 2-core machine, two OpenMP threads per process spin
# against each other and against the other processes (a tiny FVMGN fit measured 184 s with 2 threads against
# 32 s with 1 under load). `OMP_NUM_THREADS=2 pytest` still overrides it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest

try:  # tests/ has no __init__.py: pytest puts tests/ on sys.path and imports tests/data as package "data"
    from data import fixtures
except ImportError:  # pragma: no cover - layout with tests/__init__.py
    from tests.data import fixtures


@pytest.fixture(scope="session")
def fixture_dir(tmp_path_factory):
    """Every tiny fixture file (see tests/data/fixtures.py), written once per session: name → path."""
    return fixtures.make_all(tmp_path_factory.mktemp("fixtures"))


def pytest_sessionstart(session):
    """In CI the shared data pack must be there: real-data tests may skip on a laptop, never silently in CI."""
    import os

    from _paths import SHARED_DATA

    if os.environ.get("CI") and not SHARED_DATA.exists():
        raise pytest.UsageError(
            f"CI=true but the shared data pack is missing at {SHARED_DATA} (set RSMG_DATA_ROOT)"
        )


@pytest.fixture(autouse=True)
def _network_off_except_loopback():
    """Every test runs offline: ``socket.connect`` reaches loopback (and Unix sockets) only.

    Uses pytest-socket's guard; a connection anywhere else raises ``SocketConnectBlockedError`` naming the
    host. Subprocesses started by tests are not covered (they are separate interpreters).
    """
    import socket

    from pytest_socket import socket_allow_hosts

    original = socket.socket.connect
    socket_allow_hosts(["127.0.0.1", "::1", "localhost"], allow_unix_socket=True)
    yield
    socket.socket.connect = original  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _user_catalogs_end_with_the_test(monkeypatch):
    """``use_catalog`` writes ``RSMG_CATALOG`` for the whole process (DDP ranks and workers read it), and the
    catalogs a test writes live in its ``tmp_path``, which pytest deletes after a passing test: restore the
    variable after every test, so a later test never reads a deleted catalog."""
    from rsmg.data.catalog import CATALOG_ENV

    before = os.environ.get(CATALOG_ENV)
    monkeypatch.setenv(CATALOG_ENV, before or "")  # recorded, so the test's value is undone at teardown
    if before is None:
        monkeypatch.delenv(CATALOG_ENV)
