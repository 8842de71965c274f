"""Atomic outputs: an interrupted write never leaves a half-written file where the previous one was.

``rsmg.io.atomic_open`` (under ``atomic_write_bytes`` / ``_text`` / ``_json``, ``atomic_save_npz`` and
``atomic_torch_save``) writes to a temporary file in the same directory, fsyncs it and ``os.replace``s it over
the target. Three ways of interrupting that are tried: an exception at the
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

from rsmg import io as rio
from rsmg.callbacks.results import PerDomainResults
from rsmg.data.spec import DataSpec
from rsmg.io import (
    atomic_move,
    atomic_open,
    atomic_path,
    atomic_save_npz,
    atomic_torch_save,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
)


def _leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if ".tmp" in p.name)  # .<name>.<random>.tmp<suffix>


def test_failure_at_rename_keeps_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "metrics.json"
    atomic_write_text(target, '{"oa": 0.5}')

    def boom(src, dst):
        raise OSError("disk vanished during rename")

    monkeypatch.setattr(rio.os, "replace", boom)
    with pytest.raises(OSError, match="rename"):
        atomic_write_text(target, '{"oa": 0.9}' * 1000)
    assert target.read_text() == '{"oa": 0.5}'
    assert _leftovers(tmp_path) == []  # the temporary file is removed


def test_interrupt_while_writing_keeps_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "table.csv"
    atomic_write_bytes(target, b"old,complete\n")

    def interrupted(fd):
        raise KeyboardInterrupt  # Ctrl-C between the write and the rename

    monkeypatch.setattr(rio.os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(target, b"new," * 100_000)
    assert target.read_bytes() == b"old,complete\n"
    assert _leftovers(tmp_path) == []


def test_new_file_gets_normal_permissions_and_parents(tmp_path):
    target = tmp_path / "a" / "b" / "out.txt"
    atomic_write_text(target, "x")
    assert target.read_text() == "x"
    assert target.stat().st_mode & 0o777 == 0o666 & ~rio._current_umask()


def test_replacing_keeps_permissions_and_encodes_text(tmp_path):
    p = tmp_path / "metrics.json"
    assert atomic_write_text(p, '{"acc": 0.5}\n') == p
    os.chmod(p, 0o640)
    atomic_write_bytes(p, b"\x00\x01")
    assert p.read_bytes() == b"\x00\x01"
    assert p.stat().st_mode & 0o7777 == 0o640  # replacing keeps the file's permissions
    atomic_write_text(p, "café", encoding="utf-8")
    assert p.read_bytes() == "café".encode()
    assert sorted(x.name for x in tmp_path.iterdir()) == ["metrics.json"]  # no temp file left


def test_exception_inside_atomic_open_keeps_previous_file(tmp_path):
    """What the npz and torch writers rely on: a failure after half of the content is written changes nothing."""
    target = tmp_path / "predictions.npz"
    atomic_write_bytes(target, b"old")
    with pytest.raises(RuntimeError, match="half"), atomic_open(target) as fh:
        fh.write(b"new" * 1000)
        raise RuntimeError("killed after half of the arrays")
    assert target.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []


def test_atomic_path_replaces_the_target_only_when_the_file_writer_finishes(tmp_path):
    """For writers that take a file name (GDAL writes the classification GeoTIFFs this way)."""
    target = tmp_path / "maps" / "prediction_scene.tif"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target  # same directory: the rename stays atomic
        assert tmp.suffix == ".tif"  # writers that pick the format from the name see the target's
        tmp.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="half"), atomic_path(target) as tmp:
        tmp.write_bytes(b"new" * 1000)
        raise RuntimeError("GDAL failed after half of the map")
    assert target.read_bytes() == b"old" and _leftovers(target.parent) == []
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new" and sorted(p.name for p in target.parent.iterdir()) == [target.name]


def test_json_npz_and_torch_writers_round_trip(tmp_path):
    import numpy as np
    import torch

    j = atomic_write_json(tmp_path / "meta.json", {"b": 1, "a": "é"}, indent=1, sort_keys=True)
    assert j.read_text(encoding="utf-8") == '{\n "a": "é",\n "b": 1\n}\n'
    arrays = {"pred": np.arange(6, dtype=np.int64).reshape(2, 3), "classes": np.array(["trees", "road"])}
    with np.load(atomic_save_npz(tmp_path / "p.npz", arrays)) as z:
        assert sorted(z.files) == ["classes", "pred"]
        np.testing.assert_array_equal(z["pred"], arrays["pred"])
        assert z["classes"].tolist() == ["trees", "road"]
    state = {"w": torch.arange(4.0), "config": {"steps": 3}}
    loaded = torch.load(atomic_torch_save(tmp_path / "prior.pt", state), weights_only=True)
    assert torch.equal(loaded["w"], state["w"]) and loaded["config"] == {"steps": 3}
    assert _leftovers(tmp_path) == []


def test_atomic_move_replaces_the_target_with_the_finished_part(tmp_path):
    target = tmp_path / "TRLabel.mat"
    target.write_bytes(b"old")
    part = tmp_path / "TRLabel.mat.part"
    part.write_bytes(b"verified")
    assert atomic_move(part, target) == target
    assert target.read_bytes() == b"verified" and not part.exists()


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

    monkeypatch.setattr(rio.os, "replace", fail_second)
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
