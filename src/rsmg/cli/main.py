"""The ``rsmg`` command: LightningCLI verbs (fit / validate / test / predict) plus rsmg's own verbs.

``rsmg fit --config experiments/<study>/<run>.yaml`` trains exactly as with any LightningCLI, with:

* subclass mode for ``model`` and ``data`` (``class_path`` + ``init_args``), several ``--config`` merged in order;
* the data spec (classes, modalities and channel counts, domains, bands) linked from the datamodule into the
  model at instantiation, so a YAML never repeats ``num_classes``;
* a seed by default (``seed_everything: 42``), CSV logging under ``outputs/<experiment>/version_N`` by default,
  a per-domain results table after testing, and ``--test_after_fit true`` to test the best checkpoint on every
  target domain right after training (the README's main job);
* ``--ckpt_path last`` resumes the newest ``checkpoints/last.ckpt`` of the experiment and keeps logging into its
  ``version_N`` (an error, not a fresh start, when there is none); a ``--ckpt_path`` that is not a file is an
  error before anything is written;
* ``rsmg predict`` writes ``predictions_<domain>.npz`` and ``.csv`` per target domain into the run directory,
  and for pixel scenes the classification map ``prediction_<domain>.tif`` (a GeoTIFF on the scene's grid;
  :class:`rsmg.callbacks.PredictionWriter`, :mod:`rsmg.callbacks.map_writer`).

Extra verbs: ``rsmg download`` (fetch + verify datasets), ``rsmg report`` (tables from finished runs),
``rsmg caption`` (captions from a local VLM). ``rsmg <verb> --help`` explains each.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

EXTRA_VERBS = {
    "download": ("rsmg.cli.download", "fetch a dataset from its official source and verify sha256"),
    "report": ("rsmg.cli.report", "aggregate finished runs into mean ± std tables and figures"),
    "caption": ("rsmg.cli.caption", "write captions for an image folder with a local vision-language model"),
}
LIGHTNING_VERBS = {
    "fit": "train (and with --test_after_fit true, test every target domain)",
    "validate": "evaluate on the source validation split",
    "test": "evaluate on every target domain and write the results table",
    "predict": "write per-pixel predictions of every target domain (predictions_<domain>.npz / .csv) and, "
    "for pixel scenes, a GeoTIFF classification map (prediction_<domain>.tif)",
}

USAGE = """usage: rsmg <command> [options]

Remote-sensing multimodality generalisation (HSI / LiDAR / SAR / optical + text).

Training and evaluation (LightningCLI; `rsmg <command> --help` lists every option):
{lightning}

Other commands:
{extra}

Examples:
  rsmg fit --config experiments/data/trento_to_muufl_lidar.yaml --config experiments/model/concat_cnn.yaml \\
           --config experiments/trainer/lidar.yaml --test_after_fit true   # one data, model, trainer piece each
  rsmg fit --config <the same pieces> --ckpt_path last   # resume the newest run
  rsmg test --config outputs/<experiment>/version_0/config.yaml --ckpt_path outputs/<...>/last.ckpt
  rsmg predict --config outputs/<experiment>/version_0/config.yaml --ckpt_path outputs/<...>/last.ckpt
  rsmg download trento --root ~/data/rsmg

Add --verbose to see Lightning's hardware and start-up lines.
"""


def _usage() -> str:
    lightning = "\n".join(f"  {k:<10}{v}" for k, v in LIGHTNING_VERBS.items())
    extra = "\n".join(f"  {k:<10}{v[1]}" for k, v in EXTRA_VERBS.items())
    return USAGE.format(lightning=lightning, extra=extra)


def build_cli(args: list[str] | None = None, *, run: bool = True, **kwargs: Any) -> Any:
    """Create the LightningCLI (imported lazily so ``rsmg download --help`` stays fast)."""
    from rsmg.cli.lightning_cli import RsmgCLI

    return RsmgCLI(args=args, run=run, **kwargs)


def print_config(args: list[str]) -> str:
    """The YAML ``rsmg ARGS --print_config`` writes, in-process: every key checked, no data read, nothing run.

    Benchmarks compare a cached run's configuration with the one they would run, and tests check that every
    grid cell parses; one parse each, without a subprocess. An unknown option raises rsmg's own error (naming
    the field and the fix); any other parse failure a ``ValueError`` with the parser's last lines.
    """
    import contextlib
    import io
    import warnings

    out, err = io.StringIO(), io.StringIO()
    code: object = 0
    with warnings.catch_warnings(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        warnings.filterwarnings("ignore", message=".*args parameter is intended")  # the caller's own argv
        try:
            build_cli([*args, "--print_config"])
        except SystemExit as exc:  # --print_config exits 0 after printing; a parse error exits non-zero
            code = exc.code
    if code not in (0, None) or not out.getvalue().strip():
        lines = [ln.strip() for ln in err.getvalue().splitlines() if ln.strip()]
        raise ValueError(
            f"rsmg {' '.join(args[:1])} --print_config failed (exit {code}): " + " ".join(lines[-3:])
        )
    return out.getvalue()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``rsmg`` console script and ``python -m rsmg``."""
    from_sys = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(_usage())
        raise SystemExit(0 if argv else 2)
    verb = argv[0]
    if verb in EXTRA_VERBS:
        import importlib

        module = importlib.import_module(EXTRA_VERBS[verb][0])
        raise SystemExit(module.main(argv[1:]))
    if verb in {"--version", "-V"}:
        from rsmg import __version__

        print(f"rsmg {__version__}")
        raise SystemExit(0)
    if verb not in LIGHTNING_VERBS:
        print(f"rsmg: unknown command {verb!r}\n", file=sys.stderr)
        print(_usage(), file=sys.stderr)
        raise SystemExit(2)
    if "--verbose" in argv:  # rsmg's own flag: LightningCLI must not see it
        argv.remove("--verbose")
        if from_sys:
            sys.argv.remove("--verbose")
    else:
        _quiet_lightning()
    try:
        ckpt = _checkpoint_arg(argv)
        if ckpt is not None:
            check_complete_checkpoint(ckpt)
        build_cli(None if from_sys else argv)
    except Exception as e:
        err = _rsmg_error(e)
        if err is None:
            raise
        print(f"rsmg {verb}: error: {err}", file=sys.stderr)  # bad input: one clear message, no traceback
        raise SystemExit(getattr(err, "exit_code", 1)) from None


def check_complete_checkpoint(path: Path) -> None:
    """A checkpoint file that is not a complete torch archive fails here in one line, not in torch's zip reader.

    ``torch.save`` writes a zip archive whose directory sits at the end, so a file cut short (a copy or a job
    killed mid-write) has none. Legacy (non-zip) pickles are left to torch. Checked before LightningCLI parses
    its arguments, since Lightning already opens the checkpoint while parsing.
    """
    import zipfile

    from rsmg.errors import DataError

    with path.open("rb") as f:
        head = f.read(4)
    if head[:2] == b"\x80\x02" or head[:1] == b"\x80":  # a legacy pickle checkpoint: torch reads it itself
        return
    if head != b"PK\x03\x04" or not zipfile.is_zipfile(path):
        size = path.stat().st_size
        what = "zip directory missing" if head == b"PK\x03\x04" else f"not a torch archive (starts {head!r})"
        raise DataError(
            f"not a complete checkpoint: {size:,} bytes, {what}",
            file=path,
            field="ckpt_path",
            expected="a checkpoint written by rsmg fit (a complete torch zip archive)",
            found=f"{size:,} bytes, {what}",
            fix="the file was cut short or is not a checkpoint: use another checkpoint (e.g. last.ckpt or a "
            "best-*.ckpt of the run), or re-run the fit",
        )


def _checkpoint_arg(argv: list[str]) -> Path | None:
    """The ``--ckpt_path`` file given on the command line, if it is an existing file."""
    for i, arg in enumerate(argv):
        value = arg.split("=", 1)[1] if arg.startswith("--ckpt_path=") else None
        if arg == "--ckpt_path" and i + 1 < len(argv):
            value = argv[i + 1]
        if value is not None and Path(value).is_file():
            return Path(value)
    return None


_LIGHTNING_NOISE = ("GPU available:", "TPU available:", "HPU available:", "💡 Tip:")


def _quiet_lightning() -> None:
    """Drop Lightning's hardware lines and product tip (``--verbose`` keeps them): a run's first lines are rsmg's."""
    import logging

    class _DropNoise(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return not str(record.getMessage()).startswith(_LIGHTNING_NOISE)

    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropNoise) for f in logger.filters):
            logger.addFilter(_DropNoise())


def _rsmg_error(exc: BaseException) -> BaseException | None:
    """The :class:`~rsmg.errors.RsmgError` behind ``exc``, if any.

    jsonargparse re-raises an error of a class constructor (e.g. a ``ConfigError`` of the datamodule) as a
    ``ValueError`` that lists every union subtype, chained ``from`` the original error.
    """
    from rsmg.errors import RsmgError

    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, RsmgError):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None
