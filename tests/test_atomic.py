"""Atomic outputs: an interrupted write never leaves a half-written file where the previous one was.

``rsmg.io.atomic_write_bytes`` / ``atomic_write_text`` write to a temporary file in the same directory, fsync
it and ``os.replace`` it over the target. Three ways of interrupting that are tried: an exception at the
rename, an exception in the middle of writing, and SIGKILL of a writer process at a point it signals (half of
the new bytes written, or all of them but not yet renamed). In every case the target holds either the complete
old or the complete new content. The results callback (``metrics.json`` / ``results.md`` / ``results.csv``)
goes through the same path.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from rsmg.callbacks.results import PerDomainResults
from rsmg.data import readers
from rsmg.data.spec import DataSpec
from rsmg.io import atomic_write_bytes, atomic_write_text


def _leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.endswith(".tmp"))


def test_failure_at_rename_keeps_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "metrics.json"
    atomic_write_text(target, '{"oa": 0.5}')

    def boom(src, dst):
        raise OSError("disk vanished during rename")

    monkeypatch.setattr(readers.os, "replace", boom)
    with pytest.raises(OSError, match="rename"):
        atomic_write_text(target, '{"oa": 0.9}' * 1000)
    assert target.read_text() == '{"oa": 0.5}'
    assert _leftovers(tmp_path) == []  # the temporary file is removed


def test_interrupt_while_writing_keeps_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "table.csv"
    atomic_write_bytes(target, b"old,complete\n")

    def interrupted(fd):
        raise KeyboardInterrupt  # Ctrl-C between the write and the rename

    monkeypatch.setattr(readers.os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(target, b"new," * 100_000)
    assert target.read_bytes() == b"old,complete\n"
    assert _leftovers(tmp_path) == []


def test_new_file_gets_normal_permissions_and_parents(tmp_path):
    target = tmp_path / "a" / "b" / "out.txt"
    atomic_write_text(target, "x")
    assert target.read_text() == "x"
    assert target.stat().st_mode & 0o777 == 0o666 & ~readers._current_umask()


# The child process writes payload A completely, then payload B with every file it opens for writing wrapped so
# that the write stops at the kill point, tells the parent ("PAUSED <bytes on disk>") and waits there to be
# killed. The hook sits below the writer (io.open / builtins.open: os.fdopen, Path.open and open() all go
# through them), so the test kills whatever writer rsmg uses at a point it signalled, never after a sleep.
WRITER = textwrap.dedent("""\
    import builtins, io, os, sys
    from rsmg.io import atomic_write_bytes
    target, size, kill_point = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    atomic_write_bytes(target, b"A" * size)  # the complete old file
    real_open = io.open

    def pause(fh):
        fh.flush()
        os.fsync(fh.fileno())
        print("PAUSED", os.fstat(fh.fileno()).st_size, flush=True)
        sys.stdin.read()  # blocks until SIGKILL (or EOF if the parent died)
        os._exit(3)

    class Stalling:
        def __init__(self, fh):
            self._fh = fh

        def write(self, data):
            if kill_point == "mid-write":
                self._fh.write(data[: len(data) // 2])
                pause(self._fh)
            return self._fh.write(data)

        def close(self):
            if kill_point == "written-not-renamed":
                pause(self._fh)
            return self._fh.close()

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.close()

        def __getattr__(self, name):
            return getattr(self._fh, name)

    def stalling_open(file, mode="r", *args, **kwargs):
        fh = real_open(file, mode, *args, **kwargs)
        return Stalling(fh) if any(c in mode for c in "wax+") else fh

    io.open = builtins.open = stalling_open
    atomic_write_bytes(target, b"B" * size)
    print("FINISHED", flush=True)  # the hook was never reached: the parent fails the test
""")


@pytest.mark.parametrize(
    ("kill_point", "on_disk"),
    [
        pytest.param("mid-write", 0.5, id="mid-write"),
        pytest.param("written-not-renamed", 1.0, id="not-renamed"),
    ],
)
def test_sigkill_during_large_write_leaves_old_or_new_never_partial(tmp_path, kill_point, on_disk):
    """SIGKILL at a point the writer signals (half of the new bytes on disk, or all of them before the rename).

    A writer that writes in place fails the mid-write case: the target then holds half of the new content.
    """
    size = 4 * 2**20
    target = tmp_path / "embeddings.npz"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    p = subprocess.Popen(
        [sys.executable, str(script), str(target), str(size), kill_point],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert p.stdout is not None
        line = p.stdout.readline()
        assert line.startswith("PAUSED"), f"the writer did not stop at {kill_point}: {line!r}"
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=60)
    finally:
        p.kill()
        p.communicate(timeout=60)
    assert p.returncode == -signal.SIGKILL
    assert int(line.split()[1]) == int(size * on_disk)  # the new bytes on disk when it was killed
    data = target.read_bytes()
    assert len(data) == size and data == b"A" * size, "target is not the complete old file"
    # a SIGKILLed process cannot clean up: the partial new file is left, hidden, beside the target
    (partial,) = [tmp_path / n for n in _leftovers(tmp_path)]
    assert partial.name.startswith(".embeddings.npz.") and partial.stat().st_size == int(size * on_disk)


def test_results_callback_writes_atomically(tmp_path, monkeypatch):
    res = {
        "muufl": {
            "oa": 0.5,
            "aa": 0.4,
            "kappa": 0.3,
            "per_class": [0.5, 0.5],
            "n": 10,
            "confusion": [[5, 0], [5, 0]],
        }
    }
    trainer = SimpleNamespace(is_global_zero=True, log_dir=str(tmp_path), default_root_dir=str(tmp_path))
    module = SimpleNamespace(
        test_results=res, spec=DataSpec(classes=("trees", "road"), modalities={"lidar": 2})
    )
    cb = PerDomainResults(title="t")
    cb.on_test_end(trainer, module)  # type: ignore[arg-type]
    before = {n: (tmp_path / n).read_bytes() for n in ("metrics.json", "results.md", "results.csv")}
    assert json.loads(before["metrics.json"])["results"]["test"]["muufl"]["n"] == 10

    calls = {"n": 0}
    real_replace = os.replace

    def fail_second(src, dst):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("killed between two outputs")
        real_replace(src, dst)

    monkeypatch.setattr(readers.os, "replace", fail_second)
    module.test_results = {"muufl": {**res["muufl"], "oa": 0.9, "n": 11}}
    with pytest.raises(OSError):
        cb.on_test_end(trainer, module)  # type: ignore[arg-type]
    after = {n: (tmp_path / n).read_bytes() for n in before}
    assert (
        json.loads(after["metrics.json"])["results"]["test"]["muufl"]["n"] == 11
    )  # first file: new, complete
    assert after["results.md"] == before["results.md"]  # interrupted one: old, complete
    assert after["results.csv"] == before["results.csv"]
    assert _leftovers(tmp_path) == []
