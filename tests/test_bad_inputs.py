"""Bad-input catalogue: every broken input stops with one message naming the file / field and the fix.

Two tables:

* ``CLI_CASES`` drive the ``rsmg`` command (``rsmg.cli.main.main``, the function behind ``rsmg`` and
  ``python -m rsmg``; two of them also through a real ``python -m rsmg`` subprocess). Broken *datasets*
  live in a small data root in ``tmp`` with the catalog layout: the real Trento and MUUFL files are copied
  from the shared pack and then broken. A case passes when the command exits with the expected status, prints
  ``rsmg <verb>: error: ...`` (no traceback) containing the expected words, and leaves **nothing** in the
  output directory (no run directory, no ``config.yaml``).
* ``API_CASES`` call the Python API (readers, scenes, datamodule, task) on broken files made on the fly (see
  ``tests/data/fixtures.py``) and expect an :class:`~rsmg.errors.RsmgError` whose message has the file or
  field and a ``fix:``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.io

from _experiments import BASELINE
from _paths import SHARED_DATA
from rsmg.cli.main import main
from rsmg.errors import ConfigError, DataError, RsmgError

pytestmark = pytest.mark.skipif(not SHARED_DATA.exists(), reason="shared data pack missing")

TINY = [
    "--trainer.max_epochs",
    "1",
    "--trainer.limit_train_batches",
    "1",
    "--trainer.limit_val_batches",
    "1",
    "--trainer.limit_test_batches",
    "1",
    "--trainer.enable_progress_bar",
    "false",
]


# ---------------------------------------------------------------------------------------------- helpers
def _copy_root(tmp: Path) -> Path:
    """A writable data root with the catalog layout: real Trento + MUUFL files copied from the shared pack."""
    root = tmp / "data"
    for d in ("trento", "muufl"):
        shutil.copytree(SHARED_DATA / d, root / d)
    for p in root.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return root


def _mat(root: Path, rel: str) -> tuple[Path, dict[str, np.ndarray]]:
    p = root / rel
    return p, {k: v for k, v in scipy.io.loadmat(p).items() if not k.startswith("__")}


def _truncate(rel: str) -> Callable[[Path], None]:
    def f(root: Path) -> None:
        p = root / rel
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])

    return f


def _extra_band(root: Path) -> None:
    p, d = _mat(root, "muufl/LiDAR.mat")
    scipy.io.savemat(p, {"LiDAR": np.concatenate([d["LiDAR"], d["LiDAR"][..., :1]], axis=-1)})


def _nan_inf(root: Path) -> None:
    p, d = _mat(root, "trento/tyust-dayu/Italy_lidar.mat")
    a = d["data"].astype(np.float32)
    a[10, 10, 0] = np.nan
    a[20, 30, 1] = np.inf
    scipy.io.savemat(p, {"data": a})


def _crop_labels(root: Path) -> None:
    p, d = _mat(root, "trento/wzr78998/Trento_gt.mat")
    scipy.io.savemat(p, {"Trento_gt": d["Trento_gt"][:-1]})


def _crop_split(root: Path) -> None:
    p, d = _mat(root, "trento/MGMNet/TRLabel.mat")
    scipy.io.savemat(p, {"TRLabel": d["TRLabel"][:, :-3]})


def _unknown_class_id(root: Path) -> None:
    p, d = _mat(root, "muufl/gt.mat")
    g = d["gt"].copy()
    g[5, 5] = 99  # MUUFL has 11 classes
    scipy.io.savemat(p, {"gt": g})


def _empty_split(root: Path) -> None:
    p, d = _mat(root, "trento/MGMNet/TRLabel.mat")
    scipy.io.savemat(p, {"TRLabel": np.zeros_like(d["TRLabel"])})


def _delete(rel: str) -> Callable[[Path], None]:
    return lambda root: (root / rel).unlink()


def _rename_array(root: Path) -> None:
    p, d = _mat(root, "muufl/LiDAR.mat")
    scipy.io.savemat(p, {"lidar_data": d["LiDAR"], "notes": np.zeros(3)})


@contextlib.contextmanager
def _read_only_dir(path: Path) -> Iterator[Path]:
    """A directory nobody can create files in (chmod 555; for root, which ignores modes, ``chattr +i``)."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o555)
    immutable = False
    try:
        (path / ".probe").touch()
    except OSError:
        pass
    else:
        (path / ".probe").unlink()
        try:
            immutable = subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0
        except FileNotFoundError:  # no chattr on this machine
            immutable = False
        if not immutable:
            # root without chattr: a location below a regular file cannot hold files for anyone (ENOTDIR),
            # which exercises the same OSError path as a read-only directory
            path.chmod(0o755)
            blocker = path / "not_a_directory"
            blocker.write_text("")
            yield blocker / "out"
            return
    try:
        yield path
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(path)], check=False)
        path.chmod(0o755)


@dataclass
class CliCase:
    """One broken input for the ``rsmg`` command."""

    name: str
    args: list[str]  # after the verb; ``{root}`` = broken data root, ``{shared}`` = the real pack, ``{tmp}``
    expect: list[str]  # substrings of stderr (the message names the file / field and the fix)
    break_data: Callable[[Path], None] | None = None
    verb: str = "fit"
    code: int = 1  # 1 = rsmg error; 2 = the command line / YAML does not parse
    extra: dict[str, Any] = field(default_factory=dict)


CLI_CASES = [
    CliCase(
        "truncated_mat",
        ["--data.init_args.root", "{root}"],
        ["MAT file is truncated", "muufl/LiDAR.mat", "fix: re-download"],
        _truncate("muufl/LiDAR.mat"),
    ),
    CliCase(
        "raster_with_wrong_band_count",
        ["--data.init_args.root", "{root}"],
        ["wrong band count", "muufl/LiDAR.mat", "expected: 2 bands", "found: 3", "fix:"],
        _extra_band,
    ),
    CliCase(
        "nan_and_inf_in_raster",
        ["--data.init_args.root", "{root}"],
        ["2 NaN/inf values", "Italy_lidar.mat", "fix: load with nonfinite='mask'"],
        _nan_inf,
    ),
    CliCase(
        "label_map_of_another_shape",
        ["--data.init_args.root", "{root}"],
        ["not co-registered with the label map", "Trento_gt.mat", "found: 2×166×600", "fix:"],
        _crop_labels,
    ),
    CliCase(
        "split_map_of_another_shape",
        ["--data.init_args.root", "{root}"],
        ["split map 'standard/train' has another shape", "TRLabel.mat", "fix:"],
        _crop_split,
    ),
    CliCase(
        "unknown_class_id_in_label_map",
        ["--data.init_args.root", "{root}"],
        ["ids outside its class list", "muufl/gt.mat", "found: 0..99", "fix:"],
        _unknown_class_id,
    ),
    CliCase(
        "empty_split",
        ["--data.init_args.root", "{root}"],
        ["empty split: training pixels of source 'trento'", "fix: check data.source_split"],
        _empty_split,
    ),
    CliCase(
        "missing_file",
        ["--data.init_args.root", "{root}"],
        ["file not found", "muufl/gt.mat", "fix:"],
        _delete("muufl/gt.mat"),
    ),
    CliCase(
        "array_under_another_name",
        ["--data.init_args.root", "{root}"],
        ["no array named 'LiDAR'", "muufl/LiDAR.mat", "lidar_data", "fix:"],
        _rename_array,
    ),
    CliCase(
        "missing_data_directory",
        ["--data.init_args.root", "{tmp}/no/such/dir"],
        ["file not found", "no/such/dir", "fix: point the data root"],
    ),
    CliCase(
        "unknown_class_set",
        ["--data.init_args.root", "{shared}", "--data.init_args.class_set", "sharedd"],
        ["unknown class set 'sharedd'", "field: data.class_set", "did you mean 'shared'"],
    ),
    CliCase(
        "unknown_band_name",
        ["--data.init_args.root", "{shared}", "--data.init_args.bands", "{lidar: [height]}"],
        ["unknown band", "field: data.bands.lidar", "['dsm', 'intensity']", "fix:"],
    ),
    CliCase(
        "negative_patch_size",
        ["--data.init_args.root", "{shared}", "--data.init_args.patch_size", "-3"],
        ["positive odd", "field: data.patch_size", "found: -3", "fix:"],
    ),
    CliCase(
        "zero_batch_size",
        ["--data.init_args.root", "{shared}", "--data.init_args.batch_size", "0"],
        ["batch_size must be a positive integer", "field: data.batch_size", "fix:"],
    ),
    CliCase(
        "negative_eval_batch_size",
        ["--data.init_args.root", "{shared}", "--data.init_args.eval_batch_size", "-4"],
        ["eval_batch_size must be a positive integer", "field: data.eval_batch_size", "fix:"],
    ),
    CliCase(
        "validation_takes_everything",
        ["--data.init_args.root", "{shared}", "--data.init_args.val_fraction", "1.0"],
        ["validation fraction", "val_fraction", "fix:"],
    ),
    CliCase(
        "patch_larger_than_scene",
        ["--data.init_args.root", "{shared}", "--data.init_args.patch_size", "401"],
        ["patch size larger than scene 'trento'", "data.patch_size", "166", "fix:"],
    ),
    CliCase(
        "checkpoint_from_another_band_set",
        ["--data.init_args.root", "{shared}", "--ckpt_path", "{ckpt}"],
        ["checkpoint does not match the data", "field: data.modalities", "{'lidar': 1}", "fix:"],
        verb="test",
    ),
    CliCase(
        "read_only_output_directory",
        ["--data.init_args.root", "{shared}"],
        ["output directory is not writable", "fix: choose another directory"],
        extra={"read_only": True},
    ),
    CliCase(
        "misspelled_key_on_command_line", ["--data.init_args.patchsize", "9"], ["patchsize", "--help"], code=2
    ),
    CliCase("misspelled_key_in_yaml", ["--config", "{typo_yaml}"], ["pach_size", "--help"], code=2),
    CliCase("missing_config_file", ["--config", "{tmp}/nope.yaml"], ["nope.yaml", "does not exist"], code=2),
]


@pytest.fixture(scope="module")
def other_band_checkpoint(tmp_path_factory) -> Path:
    """A real checkpoint of the baseline trained (1 step) on the DSM band only."""
    from rsmg.cli.main import build_cli

    out = tmp_path_factory.mktemp("ckpt")
    cli = build_cli(
        [
            *BASELINE,
            "--data.init_args.root",
            str(SHARED_DATA),
            "--data.init_args.bands",
            "{lidar: [dsm]}",
            "--data.init_args.standardize",
            "{}",
            *TINY,
            "--trainer.limit_val_batches",
            "0",
            "--trainer.logger",
            "false",
            "--trainer.enable_checkpointing",
            "false",
            "--trainer.callbacks",
            "[]",
            "--trainer.default_root_dir",
            str(out),
            "--model.init_args.net.init_args.width",
            "4",
        ],
        run=False,
    )
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    path = out / "dsm_only.ckpt"
    cli.trainer.save_checkpoint(path)
    return path


def _fill(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


def _log_to_current_stderr() -> None:
    """Point Lightning's stream handlers at the current (captured) stderr.

    Lightning adds them on first import, bound to whatever ``sys.stderr`` was then (an earlier test's capture,
    closed since), which would print "--- Logging error ---" tracebacks that are not rsmg's.
    """
    import logging

    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        for h in logging.getLogger(name).handlers:
            if type(h) is logging.StreamHandler:
                h.stream = sys.stderr  # setStream() would flush the closed old stream


@pytest.mark.parametrize("case", CLI_CASES, ids=lambda c: c.name)
def test_cli_bad_input(case: CliCase, tmp_path, capsys, request):
    root = _copy_root(tmp_path) if case.break_data else SHARED_DATA
    if case.break_data:
        case.break_data(root)
    (tmp_path / "typo.yaml").write_text("data:\n  init_args:\n    pach_size: 9\n")
    values = {
        "root": str(root),
        "shared": str(SHARED_DATA),
        "tmp": str(tmp_path),
        "typo_yaml": str(tmp_path / "typo.yaml"),
    }
    if "{ckpt}" in case.args:
        values["ckpt"] = str(request.getfixturevalue("other_band_checkpoint"))
    out = tmp_path / "out"
    with contextlib.ExitStack() as stack:
        if case.extra.get("read_only"):
            out = stack.enter_context(_read_only_dir(tmp_path / "out"))
        argv = [
            case.verb,
            *BASELINE,
            *TINY,
            "--trainer.default_root_dir",
            str(out),
            "--trainer.logger.init_args.save_dir",
            str(out),
            *(_fill(a, values) for a in case.args),
        ]
        capsys.readouterr()
        _log_to_current_stderr()
        with pytest.raises(SystemExit) as exc:
            main(argv)
        err = capsys.readouterr().err
    assert exc.value.code == case.code, f"exit {exc.value.code}, stderr:\n{err[-3000:]}"
    for word in (_fill(e, values) for e in case.expect):
        assert word in err, f"{word!r} not in the message:\n{err[-3000:]}"
    if case.code == 1:
        assert f"rsmg {case.verb}: error:" in err and "Traceback" not in err, err[-3000:]
    if out.exists():
        left = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
        assert left == [], f"partial output left behind: {left}"


def _subprocess(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "rsmg", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_real_command_broken_dataset_exit_1_one_message(tmp_path):
    root = _copy_root(tmp_path)
    _truncate("trento/wzr78998/Trento_gt.mat")(root)
    p = _subprocess(
        [
            "fit",
            *BASELINE,
            *TINY,
            "--data.init_args.root",
            str(root),
            "--trainer.default_root_dir",
            "out",
            "--trainer.logger.init_args.save_dir",
            "out",
        ],
        tmp_path,
    )
    assert p.returncode == 1, p.stderr[-3000:]
    assert "Traceback" not in p.stderr
    line = next(x for x in p.stderr.splitlines() if x.startswith("rsmg fit: error:"))
    assert "MAT file is truncated" in line and "Trento_gt.mat" in p.stderr and "fix:" in p.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_real_command_bad_config_value_exit_1_one_message(tmp_path):
    p = _subprocess(
        [
            "fit",
            *BASELINE,
            "--data.init_args.root",
            str(SHARED_DATA),
            "--data.init_args.modalities",
            "[lidar, sar]",
            "--trainer.default_root_dir",
            "out",
        ],
        tmp_path,
    )
    assert p.returncode == 1, p.stderr[-3000:]
    assert "Traceback" not in p.stderr, p.stderr[-3000:]
    assert "rsmg fit: error: dataset 'trento' has no modality 'sar'" in p.stderr
    assert "field: data.modalities" in p.stderr and "fix:" in p.stderr
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------- Python API
def _image_that_is_text(tmp: Path, fx: dict[str, Path]) -> Any:
    from rsmg.data.readers import read_image

    p = tmp / "scene_001.jpg"
    p.write_text("<html>404 Not Found</html>")
    return read_image(p)


def _scene_with_nan(tmp: Path, fx: dict[str, Path]) -> Any:
    from rsmg.data.scene import Scene

    x = np.zeros((2, 8, 8), np.float32)
    x[1, 3, 3] = np.nan
    return Scene(
        "s", {"lidar": x}, np.ones((8, 8), np.int64), ("a",), files={"lidar": str(tmp / "lidar.mat")}
    )


def _patch_bigger_than_scene(tmp: Path, fx: dict[str, Path]) -> Any:
    from rsmg.data.scene import Scene, SceneDataset

    s = Scene("tiny", {"lidar": np.zeros((2, 8, 8), np.float32)}, np.ones((8, 8), np.int64), ("a",))
    return SceneDataset(s, np.arange(4), patch_size=11, class_map=np.array([-1, 0]), domain=0)


def _checkpoint_other_bands(tmp: Path, fx: dict[str, Path]) -> Any:
    from rsmg.data.spec import DataSpec
    from rsmg.tasks import ClassificationTask

    kw = {
        "classes": ("trees", "road"),
        "domains": ("trento",),
        "source_domains": ("trento",),
        "patch_size": 11,
    }
    now = DataSpec(modalities={"lidar": 2}, band_names={"lidar": ("dsm", "intensity")}, **kw)  # type: ignore[arg-type]
    old = DataSpec(modalities={"lidar": 1}, band_names={"lidar": ("dsm",)}, **kw)  # type: ignore[arg-type]
    return ClassificationTask(spec=now).on_load_checkpoint({"rsmg_spec": old.to_dict()})


def _datamodule(**kw: Any) -> Callable[[Path, dict[str, Path]], Any]:
    def f(tmp: Path, fx: dict[str, Path]) -> Any:
        from rsmg.data.datamodule import CrossDomainDataModule

        return CrossDomainDataModule(sources=["trento"], targets=["muufl"], root=str(SHARED_DATA), **kw)

    return f


def _unknown_dataset(tmp: Path, fx: dict[str, Path]) -> Any:
    from rsmg.data.datamodule import CrossDomainDataModule

    return CrossDomainDataModule(sources=["trento"], targets=["mufl"])


def _atomic_into_read_only(tmp: Path, fx: dict[str, Path]) -> Any:
    from rsmg.io import atomic_write_text

    with _read_only_dir(tmp / "ro") as ro:
        try:
            return atomic_write_text(ro / "metrics.json", "{}")
        finally:
            assert not ro.exists() or list(ro.iterdir()) == []  # no temporary file left


def _reader(fn: str, key: str, **kw: Any) -> Callable[[Path, dict[str, Path]], Any]:
    def f(tmp: Path, fx: dict[str, Path]) -> Any:
        from rsmg.data import readers

        return getattr(readers, fn)(fx[key], **kw)

    return f


API_CASES: list[tuple[str, Callable[[Path, dict[str, Path]], Any], type[Exception], list[str]]] = [
    ("truncated_mat_v5", _reader("read_mat", "mat_truncated"), DataError, ["scene_truncated.mat", "fix:"]),
    (
        "truncated_mat_v73",
        _reader("read_mat", "mat73_truncated"),
        DataError,
        ["scene_v73_truncated.mat", "fix:"],
    ),
    (
        "geotiff_with_wrong_band_count",
        _reader("read_geotiff", "geotiff_rgb", expected_count=2),
        DataError,
        ["wrong number of bands", "geotiff_rgb.tif", "expected: 2", "found: 3", "fix:"],
    ),
    (
        "geotiff_with_nan_and_inf",
        _reader("read_geotiff", "geotiff_nan", nodata_policy="reject"),
        DataError,
        ["geotiff_nan.tif", "fix:"],
    ),
    (
        "text_file_named_tif",
        _reader("read_geotiff", "tif_not_raster"),
        DataError,
        ["not_a_raster.tif", "fix:"],
    ),
    ("image_that_is_not_an_image", _image_that_is_text, DataError, ["scene_001.jpg", "fix:"]),
    (
        "empty_caption_file",
        _reader("read_caption_txt", "caption_empty"),
        DataError,
        ["caption file is empty", "caption_empty.txt", "fix:"],
    ),
    (
        "non_utf8_caption",
        _reader("read_caption_txt", "caption_latin1"),
        DataError,
        ["not valid UTF-8", "caption_latin1.txt", "byte 3", "fix: re-encode", "iconv"],
    ),
    (
        "truncated_caption_json",
        _reader("read_captions_karpathy_json", "json_truncated"),
        DataError,
        ["not valid JSON", "dataset_truncated.json", "fix:"],
    ),
    ("nan_patch_in_scene", _scene_with_nan, DataError, ["NaN/inf", "lidar.mat", "fix:"]),
    (
        "patch_bigger_than_scene",
        _patch_bigger_than_scene,
        DataError,
        ["patch size larger than scene", "fix:"],
    ),
    (
        "checkpoint_from_another_band_set",
        _checkpoint_other_bands,
        DataError,
        ["checkpoint does not match the data", "data.modalities", "fix:"],
    ),
    ("zero_patch_size", _datamodule(patch_size=0), ConfigError, ["data.patch_size", "fix:"]),
    ("zero_batch_size", _datamodule(batch_size=0), ConfigError, ["data.batch_size", "fix:"]),
    ("negative_workers", _datamodule(num_workers=-1), ConfigError, ["data.num_workers", "fix:"]),
    (
        "unknown_dataset",
        _unknown_dataset,
        ConfigError,
        ["unknown dataset 'mufl'", "did you mean 'muufl'", "fix:"],
    ),
    ("write_into_read_only_directory", _atomic_into_read_only, RsmgError, ["metrics.json", "fix:"]),
]


@pytest.mark.parametrize(("name", "call", "error", "expect"), API_CASES, ids=[c[0] for c in API_CASES])
def test_api_bad_input(name, call, error, expect, tmp_path, fixture_dir):
    with pytest.raises(error) as exc:
        call(tmp_path, fixture_dir)
    assert isinstance(exc.value, RsmgError), f"{type(exc.value).__name__} is not an RsmgError: {exc.value}"
    msg = str(exc.value)
    for word in expect:
        assert word in msg, f"{word!r} not in: {msg}"


def test_the_catalogue_is_large_enough():
    assert len(CLI_CASES) + len(API_CASES) >= 15
    assert len({c.name for c in CLI_CASES}) == len(CLI_CASES)


def test_checkpoint_with_modalities_in_another_order_is_refused():
    """Stems, proprietary texts and the fusion are laid out by modality position, so order must match too."""
    from rsmg.data.spec import DataSpec
    from rsmg.tasks import ClassificationTask

    kw: dict[str, Any] = {
        "classes": ("trees", "road"), "domains": ("trento",), "source_domains": ("trento",), "patch_size": 11,
    }  # fmt: skip
    now = DataSpec(modalities={"hsi": 63, "lidar": 2}, **kw)
    old = DataSpec(modalities={"lidar": 2, "hsi": 63}, **kw)
    with pytest.raises(DataError, match="modalities differ"):
        ClassificationTask(spec=now).on_load_checkpoint({"rsmg_spec": old.to_dict()})
    ClassificationTask(spec=now).on_load_checkpoint({"rsmg_spec": now.to_dict()})
