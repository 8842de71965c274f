"""Atomic outputs: an interrupted write never leaves a half-written file where the previous one was.

``rsmg.io.atomic_write_bytes`` / ``atomic_write_text`` write to a temporary file in the same directory, fsync
it and ``os.replace`` it over the target. Three ways of interrupting that are tried: an exception at the
rename, an exception in the middle of writing, and SIGKILL of a process that is writing a large payload. In
every case the target holds either the complete old or the complete new content. The results callback
(``metrics.json`` / ``results.md`` / ``results.csv``) goes through the same path.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
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


WRITER = textwrap.dedent("""\
    import sys
    from rsmg.io import atomic_write_bytes
    target, size = sys.argv[1], int(sys.argv[2])
    payloads = [b"A" * size, b"B" * size]
    i = 0
    while True:
        print("writing", i, flush=True)
        atomic_write_bytes(target, payloads[i % 2])
        i += 1
""")


@pytest.mark.slow
def test_sigkill_during_large_write_leaves_old_or_new_never_partial(tmp_path):
    size = 48 * 2**20
    target = tmp_path / "embeddings.npz"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    interrupted_mid_write = 0
    for attempt in range(6):
        p = subprocess.Popen(
            [sys.executable, str(script), str(target), str(size)], stdout=subprocess.PIPE, text=True
        )
        assert p.stdout is not None
        for _ in range(2 + attempt):  # let a complete file exist, then kill inside a later write
            assert p.stdout.readline().startswith("writing")
        time.sleep(0.02 * attempt)
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=60)
        data = target.read_bytes()
        assert len(data) == size and data in (b"A" * size, b"B" * size), "target is partial"
        partial = [tmp_path / n for n in _leftovers(tmp_path)]
        if any(q.stat().st_size < size for q in partial):
            interrupted_mid_write += 1
        for q in partial:  # a SIGKILLed process cannot clean up; the temp file is hidden and ignored
            q.unlink()
        if interrupted_mid_write >= 2:
            break
    assert interrupted_mid_write >= 1, "never managed to kill the writer in the middle of a write"


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
