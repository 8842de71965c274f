"""Offline guarantee: the suite cannot reach the network, and importing rsmg pulls in no heavy optional stack.

* ``tests/conftest.py`` has an autouse fixture (pytest-socket) that lets ``socket.connect`` reach loopback and
  Unix sockets only; the first tests prove that it is active in every test.
* ``import rsmg`` and the entry points a login node or a notebook touch first (``rsmg.data``, ``rsmg.models``,
  ``rsmg.models.image_encoders``, ``rsmg.cli.main``) import none of diffusers, wandb, transformers, open_clip,
  timm (checked in fresh interpreters via ``sys.modules``; timm comes only when an encoder is built).
  ``rsmg.tasks`` imports Lightning, and Lightning imports torchmetrics, which imports ``transformers``
  whenever it is installed (the ``dev`` extra installs it): for ``rsmg.tasks`` the test therefore records
  *who* imports each of them and requires that it is never rsmg code; the strict variant is an expected
  failure while that third-party chain exists (see its reason).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import socket
import subprocess
import sys
import textwrap
import threading

import pytest
from pytest_socket import SocketConnectBlockedError

FORBIDDEN = ("diffusers", "wandb", "transformers", "open_clip", "timm")
LIGHT_MODULES = ("rsmg", "rsmg.data", "rsmg.models", "rsmg.models.image_encoders", "rsmg.cli.main")

# Records, for each forbidden top-level package, the module whose code imported it (first non-importlib frame)
# and the chain of module-level frames leading there.
PROBE = textwrap.dedent("""\
    import importlib.abc, json, sys
    FORBIDDEN = %r
    seen = {}

    class Blame(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname, path=None, target=None):
            if fullname in FORBIDDEN and fullname not in sys.modules:
                f = sys._getframe(1)
                chain = []
                importer = None
                while f is not None:
                    name = f.f_globals.get("__name__", "?")
                    frozen = f.f_code.co_filename.startswith("<frozen importlib")
                    if not frozen and not name.startswith("importlib") and name != __name__:
                        importer = importer or name
                        if f.f_code.co_name == "<module>":
                            chain.append(name)
                    f = f.f_back
                seen[fullname] = {"importer": importer, "chain": chain}
            return None

    sys.meta_path.insert(0, Blame())
    import importlib
    importlib.import_module(sys.argv[1])
    loaded = {m: seen.get(m, {"importer": "?", "chain": []}) for m in FORBIDDEN if m in sys.modules}
    print("PROBE " + json.dumps(loaded))
""") % (FORBIDDEN,)


@functools.cache
def _probes() -> dict[str, dict[str, dict[str, object]]]:
    """Every module's probe, each in a fresh interpreter, all started at once (imports are I/O-bound)."""
    procs = {
        m: subprocess.Popen(
            [sys.executable, "-c", PROBE, m], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for m in (*LIGHT_MODULES, "rsmg.tasks")
    }
    results = {}
    for module, p in procs.items():
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
        line = next(x for x in out.splitlines() if x.startswith("PROBE "))
        results[module] = json.loads(line[len("PROBE ") :])
    return results


def _imported_by(module: str) -> dict[str, dict[str, object]]:
    return _probes()[module]


# ---------------------------------------------------------------------------------------------- sockets
def test_connections_to_the_internet_are_blocked():
    with pytest.raises(SocketConnectBlockedError):
        socket.create_connection(("93.184.216.34", 443), timeout=1)  # example.org, by address: no DNS needed
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    with pytest.raises(SocketConnectBlockedError):
        s.connect(("2606:4700:4700::1111", 443))
    s.close()


def test_loopback_still_works():
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    got: list[bytes] = []

    def serve() -> None:
        conn, _ = server.accept()
        got.append(conn.recv(5))
        conn.close()

    t = threading.Thread(target=serve)
    t.start()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(b"hello")
    t.join(5)
    server.close()
    assert got == [b"hello"]


# ---------------------------------------------------------------------------------------------- imports
@pytest.mark.parametrize("module", LIGHT_MODULES)
def test_light_imports_pull_in_no_heavy_optional_package(module):
    loaded = _imported_by(module)
    assert loaded == {}, f"`import {module}` imported {sorted(loaded)}: {loaded}"


def test_rsmg_tasks_never_imports_them_itself():
    loaded = _imported_by("rsmg.tasks")
    for name, who in loaded.items():
        importer = str(who["importer"])
        assert not importer.startswith("rsmg"), f"rsmg module {importer} imports {name} at import time: {who}"
        # the only known third-party chain: lightning -> torchmetrics -> transformers (when installed)
        assert name == "transformers" and importer.startswith("torchmetrics"), (name, who)


@pytest.mark.xfail(
    importlib.util.find_spec("transformers") is not None,
    reason="lightning imports torchmetrics, whose package __init__ imports transformers whenever it is "
    "installed (dev extra); rsmg.tasks imports lightning at module level",
    strict=True,
)
def test_rsmg_tasks_strictly_imports_none_of_them():
    assert _imported_by("rsmg.tasks") == {}
