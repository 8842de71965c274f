"""LightningCLI subclass of rsmg: links, defaults, preflight checks, resume and the test-after-fit step."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger

from rsmg.callbacks.figures import FigureCallback
from rsmg.callbacks.prediction_writer import PredictionWriter
from rsmg.callbacks.results import PerDomainResults
from rsmg.cli.main import check_complete_checkpoint
from rsmg.errors import ConfigError

# ckpt_path keywords that Lightning resolves itself; "last" is resolved by rsmg (RsmgCLI._resolve_last)
_LIGHTNING_KEYWORDS = ("best", "hpc")
_LAST_GLOB = "last*.ckpt"  # ModelCheckpoint's last.ckpt (and last-v1.ckpt, ...), as Lightning matches them


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _is_rank_zero() -> bool:
    """Whether this process is global rank zero (known from the environment before DDP is set up)."""
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    return int(getattr(rank_zero_only, "rank", 0)) == 0


class RsmgCLI(LightningCLI):
    """LightningCLI with the data spec linked into the model and a per-domain results table."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._added_prediction_writer = False
        kwargs.setdefault("subclass_mode_model", True)
        kwargs.setdefault("subclass_mode_data", True)
        kwargs.setdefault("seed_everything_default", 42)
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        kwargs.setdefault("auto_configure_optimizers", False)
        defaults = {
            "default_root_dir": "outputs",
            "logger": {
                "class_path": "lightning.pytorch.loggers.CSVLogger",
                "init_args": {"save_dir": "outputs", "name": "default"},
            },
        }
        defaults.update(kwargs.pop("trainer_defaults", {}) or {})
        kwargs["trainer_defaults"] = defaults
        kwargs.setdefault("model_class", LightningModule)
        kwargs.setdefault("datamodule_class", LightningDataModule)
        super().__init__(*args, **kwargs)

    def init_parser(self, **kwargs: Any) -> LightningArgumentParser:
        """Parsers that raise on bad input (``exit_on_error=False``), so :meth:`parse_arguments` can explain it."""
        kwargs.setdefault("exit_on_error", False)
        return super().init_parser(**kwargs)

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse; on failure name a misspelt option or YAML key and the closest valid keys (:mod:`rsmg.cli.suggest`).

        Any other parse error is reported as jsonargparse reports it (usage, message, exit status 2).
        """
        import sys

        from jsonargparse import ArgumentError

        from rsmg.cli.suggest import find_unknown, unknown_error

        try:
            super().parse_arguments(parser, args)
        except ArgumentError as e:
            argv = (
                [str(a) for a in (sys.argv[1:] if args is None else args)]
                if isinstance(args, list | None)
                else []
            )
            parsers = getattr(self, "_subcommand_parsers", None)  # absent with run=False: one flat parser
            subcommand = next((a for a in argv if a in parsers), None) if parsers else None
            if subcommand is not None and parsers:
                hit = find_unknown(parsers[subcommand], argv[argv.index(subcommand) + 1 :])
            else:
                hit = find_unknown(parser, argv)
            if hit is not None:
                raise unknown_error(hit, subcommand or "fit") from None
            target = (
                parsers[subcommand] if subcommand is not None and parsers else parser
            )  # its usage is shown
            target.exit_on_error = True
            target.error(str(e))

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Link ``data.spec`` → ``model.init_args.spec`` and add the results callback and options."""
        parser.link_arguments("data.spec", "model.init_args.spec", apply_on="instantiate")
        parser.add_lightning_class_args(PerDomainResults, "results")
        parser.add_lightning_class_args(FigureCallback, "figures")  # --figures.every '[confusion,map,tsne]'
        parser.add_argument(
            "--allow_untrained",
            type=bool,
            default=False,
            help="validate / test / predict without --ckpt_path (a model that was never trained: random weights)",
        )
        parser.add_argument(
            "--test_after_fit",
            type=bool,
            default=False,
            help="after `fit`, test the best (or last) checkpoint on every target domain and print the table",
        )

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """Instantiate the Trainer; for ``predict`` with a :class:`PredictionWriter` unless one is configured.

        ``trainer.predict`` hands its outputs to the Python caller only, so without a writer ``rsmg predict``
        computed every prediction and dropped it. A configured
        :class:`~lightning.pytorch.callbacks.BasePredictionWriter` (any subclass) replaces rsmg's.
        """
        self._added_prediction_writer = False
        if self.subcommand == "predict" and "callbacks" not in kwargs:
            configured = _as_list(self._get(self.config_init, "trainer", default={}).get("callbacks"))
            defaults = _as_list(self.trainer_defaults.get("callbacks"))
            if not any(isinstance(cb, BasePredictionWriter) for cb in configured + defaults):
                kwargs["callbacks"] = [*configured, PredictionWriter()]
                self._added_prediction_writer = True
        return super().instantiate_trainer(**kwargs)

    # ------------------------------------------------------------------ preflight: fail before any output
    def _preflight(self, stage: str) -> None:
        """Check what can be checked before the Trainer creates a run directory.

        Lightning creates the logger's ``version_N`` directory (and ``config.yaml``) before it calls
        ``datamodule.setup`` or opens the checkpoint; reading the checkpoint path and the data here first
        means that a wrong ``--ckpt_path``, broken data, an unwritable output directory or a checkpoint trained
        on other data stop the command with one message and leave nothing behind. ``setup`` of rsmg
        datamodules is idempotent, so the Trainer's own call costs nothing.
        """
        import tempfile

        from rsmg.errors import DataError

        ckpt = self._check_ckpt_path(stage)  # first: costs nothing, and the data need not be read for it
        if stage != "fit":
            self._keep_existing_run(stage)
        dm = self.datamodule
        if dm is not None and hasattr(dm, "setup"):
            dm.setup(stage)
        dirs = {"trainer.default_root_dir": str(self.trainer.default_root_dir)}
        for i, logger in enumerate(self.trainer.loggers):
            save_dir = getattr(logger, "save_dir", None)
            if isinstance(save_dir, str | os.PathLike):
                dirs[f"trainer.logger{'' if i == 0 else f'[{i}]'}.init_args.save_dir"] = os.fspath(save_dir)
        for key, d in dirs.items():
            if "://" in d:  # remote (fsspec) locations are checked by their own client
                continue
            probe = Path(d).expanduser().resolve()
            while not probe.exists() and probe != probe.parent:
                probe = probe.parent
            try:  # a real write: os.access() says yes for root on read-only / immutable directories
                fd, tmp = tempfile.mkstemp(prefix=".rsmg-write-test-", dir=probe)
                os.close(fd)
                os.unlink(tmp)
            except OSError as e:
                raise ConfigError(
                    "output directory is not writable",
                    file=d,
                    field=key,
                    expected="a directory rsmg can create files in",
                    found=f"{probe}: {e.strerror}",
                    fix=f"choose another directory with --{key} (or make {probe} writable)",
                ) from None
        spec = getattr(self.model, "spec", None)
        if ckpt is not None and spec is not None:
            import torch

            from rsmg.data.spec import DataSpec

            saved = torch.load(str(ckpt), map_location="cpu", weights_only=False, mmap=True).get("rsmg_spec")
            if saved is not None:
                old = DataSpec.from_dict(saved)
                for name in ("classes", "modalities", "band_names", "patch_size"):
                    if getattr(old, name) != getattr(spec, name):
                        raise DataError(
                            f"checkpoint does not match the data: {name} differ",
                            file=str(ckpt),
                            field=f"data.{name}",
                            expected=f"checkpoint: {getattr(old, name)}",
                            found=f"data config: {getattr(spec, name)}",
                            fix="use the data configuration the checkpoint was trained with (its config.yaml)",
                        )

    def _keep_existing_run(self, stage: str) -> None:
        """Send validate / test / predict output into a new sub-folder of a run directory that already has files.

        A saved ``config.yaml`` pins its logger's version, so ``rsmg test|predict --config <run>/config.yaml``
        would open the finished run's own directory, where Lightning's CSV logger deletes ``metrics.csv`` and
        the CLI overwrites ``config.yaml`` / ``hparams.yaml``. The output goes to ``<run>/<stage>_<k>/``
        instead (the first free ``k``), and the folder is printed.
        """
        for logger in self.trainer.loggers:
            version = getattr(logger, "_version", None)
            root = getattr(logger, "root_dir", None)
            if version is None or root is None:
                continue  # an unpinned version is always a new directory
            run = Path(root) / (version if isinstance(version, str) else f"version_{version}")
            if not run.is_dir() or not any(run.iterdir()):
                continue
            k = 0
            while (run / f"{stage}_{k}").exists():
                k += 1
            # CSVLogger / TensorBoardLogger take `version` only in their constructor and read `_version` lazily
            setattr(logger, "_version", f"{run.name}/{stage}_{k}")  # noqa: B010
            if _is_rank_zero():
                print(
                    f"rsmg {stage}: {run} holds a run; writing into {run / f'{stage}_{k}'} (nothing there changes)"
                )

    # ------------------------------------------------------------------ --ckpt_path: check, resolve, resume
    def _set_ckpt_path(self, value: str) -> None:
        """Replace ``ckpt_path`` in the parsed config (saved as ``config.yaml``) and in the call's arguments."""
        for config in (self.config, self.config_init):
            config.get(str(self.subcommand), config)["ckpt_path"] = value

    def _check_ckpt_path(self, stage: str) -> Path | None:
        """The local checkpoint file this command will load, checked to exist; ``None`` when there is none.

        ``last`` is resolved here (:meth:`_resolve_last`). Lightning's other keywords (``best``, ``hpc``),
        registry names and remote URLs are left to Lightning.

        Raises:
            ConfigError: the file does not exist, or ``last`` finds no checkpoint.
        """
        cfg = self.config.get(str(self.subcommand), self.config)
        value = cfg.get("ckpt_path")
        if value is None:
            if stage != "fit" and not cfg.get("allow_untrained"):
                raise ConfigError(
                    f"rsmg {stage} without --ckpt_path would use a model that was never trained (random weights)",
                    field="ckpt_path",
                    expected="a trained checkpoint, e.g. <run>/checkpoints/last.ckpt, or 'last'",
                    found="none",
                    fix="pass --ckpt_path <file> (or --ckpt_path last), or --allow_untrained true if random "
                    "weights are what you want",
                )
            return None
        text = os.fspath(value)
        if text == "last":
            path = self._resolve_last(stage)
            self._set_ckpt_path(str(path))
            return path
        if text in _LIGHTNING_KEYWORDS or "://" in text or text.startswith("registry"):
            return None
        path = Path(text)
        if not path.is_file():
            raise _missing_checkpoint(path, stage)
        check_complete_checkpoint(path)
        return path

    def _resolve_last(self, stage: str) -> Path:
        """The newest ``last.ckpt`` of this experiment, for ``--ckpt_path last``.

        Lightning looks for ``last`` only where *this* run's checkpoints will go; with the default logger that
        is a new ``version_N/checkpoints``, which is empty, so Lightning used to warn and train from scratch.
        rsmg looks where the experiment's runs put them: a ``ModelCheckpoint``'s fixed ``dirpath``, else every
        ``<save_dir>/<name>/<version>/checkpoints`` of the first logger (only its own version when the config
        fixes one), else ``<default_root_dir>/checkpoints`` without a logger; the newest file (mtime) wins,
        as in Lightning. ``fit`` then logs into the version directory of that checkpoint
        (:meth:`_continue_version`), so the resumed epochs land beside the interrupted ones.

        Raises:
            ConfigError: no last checkpoint in any of those directories.
        """
        trainer = self.trainer
        callbacks = [cb for cb in trainer.checkpoint_callbacks if isinstance(cb, ModelCheckpoint)]
        searched: list[str] = []
        found: list[Path] = []
        for cb in callbacks:
            if cb.dirpath is not None and "://" not in str(cb.dirpath):
                searched.append(str(cb.dirpath))
                found += Path(cb.dirpath).glob(_LAST_GLOB)
        versions_root: Path | None = None
        if not callbacks or any(cb.dirpath is None for cb in callbacks):
            if trainer.loggers:
                logger = trainer.loggers[0]
                save_dir = logger.save_dir if logger.save_dir is not None else trainer.default_root_dir
                root = Path(save_dir) / str(logger.name)
                fixed = getattr(logger, "_version", None)  # CSV / TensorBoard: None = "the next free version"
                if fixed is None:
                    versions_root = root
                    searched.append(str(root / "*" / "checkpoints"))
                    found += root.glob(f"*/checkpoints/{_LAST_GLOB}")
                else:
                    run = root / (fixed if isinstance(fixed, str) else f"version_{fixed}") / "checkpoints"
                    searched.append(str(run))
                    found += run.glob(_LAST_GLOB)
            else:
                searched.append(str(Path(trainer.default_root_dir) / "checkpoints"))
                found += (Path(trainer.default_root_dir) / "checkpoints").glob(_LAST_GLOB)
        found = [p for p in found if p.is_file()]
        if not found:
            fix = "drop --ckpt_path to start a new run, or point --ckpt_path at a checkpoint file"
            if stage != "fit":
                fix = "point --ckpt_path at a checkpoint file, e.g. <save_dir>/<name>/version_N/checkpoints/last.ckpt"
            raise ConfigError(
                "--ckpt_path last found no checkpoint" + (" to resume from" if stage == "fit" else ""),
                file=", ".join(searched) or None,
                field="ckpt_path",
                expected=f"a {_LAST_GLOB} (ModelCheckpoint with save_last: true) in a directory listed under file",
                found="none" if searched else "no checkpoint callback and no logger: nowhere to look",
                fix=fix,
            )
        path = max(found, key=lambda p: (p.stat().st_mtime_ns, str(p)))
        continued = None
        if stage == "fit" and versions_root is not None and path.parent.parent.parent == versions_root:
            continued = self._continue_version(path.parent.parent)
        if _is_rank_zero():
            where = f"; logging continues in {continued}" if continued is not None else ""
            print(f"rsmg {stage}: --ckpt_path last → {path}{where}")
        return path

    def _continue_version(self, run: Path) -> Path:
        """Make the loggers write into ``run`` (the version directory of the checkpoint being resumed).

        Sets the version of every CSV / TensorBoard logger that has none fixed and whose experiment has a
        ``run`` directory (the first logger's always has). A CSV logger deletes ``metrics.csv`` when it opens
        a directory that is not empty; :func:`_append_to_csv_metrics` makes it append instead.
        """
        version: int | str = run.name
        if run.name.startswith("version_") and run.name[len("version_") :].isdigit():
            version = int(run.name[len("version_") :])
        for i, logger in enumerate(self.trainer.loggers):
            if not hasattr(logger, "_version") or getattr(logger, "_version") is not None:  # noqa: B009
                continue
            root = getattr(logger, "root_dir", None)
            if i > 0 and (root is None or not (Path(root) / run.name).is_dir()):
                continue
            # CSVLogger / TensorBoardLogger take `version` only in their constructor and read `_version` lazily
            setattr(logger, "_version", version)  # noqa: B010
            if isinstance(logger, CSVLogger) and _is_rank_zero():
                _append_to_csv_metrics(logger)
        return run

    # ------------------------------------------------------------------ verbs
    def before_fit(self) -> None:
        """Preflight checks (see :meth:`_preflight`)."""
        self._preflight("fit")

    def before_validate(self) -> None:
        """Preflight checks (see :meth:`_preflight`)."""
        self._preflight("validate")

    def before_test(self) -> None:
        """Preflight checks (see :meth:`_preflight`)."""
        self._preflight("test")

    def before_predict(self) -> None:
        """Preflight checks; with rsmg's writer, predictions are not also kept in memory for the caller."""
        self._preflight("predict")
        if self._added_prediction_writer:  # the CLI discards trainer.predict's return value
            args = self.config_init.get(str(self.subcommand), self.config_init)
            if args.get("return_predictions") is None:
                args["return_predictions"] = False

    def after_fit(self) -> None:
        """Test the selected checkpoint on every target domain when ``--test_after_fit true``."""
        cfg = self.config.get(self.subcommand, self.config)
        if not cfg.get("test_after_fit"):
            return
        cb = self.trainer.checkpoint_callback
        ckpt = "best" if cb is not None and getattr(cb, "best_model_path", None) else None
        self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=ckpt)


def _missing_checkpoint(path: Path, stage: str) -> ConfigError:
    """The error for a ``--ckpt_path`` that is not a file, with the checkpoints that are there."""
    import difflib

    where = path if path.is_dir() else path.parent
    names = sorted(p.name for p in where.glob("*.ckpt")) if where.is_dir() else []
    found = "a directory" if path.is_dir() else "no such file"
    if names:
        close = difflib.get_close_matches(path.name, names, n=3)
        found += f"; {where} has {', '.join(close or names[:5])}" + (
            "" if close or len(names) <= 5 else ", …"
        )
    fix = "correct the path, or use --ckpt_path last for the newest last.ckpt of this experiment"
    if stage == "fit":
        fix += ", or drop --ckpt_path to train from scratch"
    return ConfigError(
        "checkpoint path is a directory" if path.is_dir() else "checkpoint file not found",
        file=path,
        field="ckpt_path",
        expected="an existing checkpoint file (e.g. <save_dir>/<name>/version_N/checkpoints/last.ckpt), "
        "'last' or 'best'",
        found=found,
        fix=fix,
    )


def _append_to_csv_metrics(logger: CSVLogger) -> None:
    """Open a resumed run's CSV logger so that it appends to the existing ``metrics.csv``.

    Lightning's CSV writer deletes ``metrics.csv`` when its directory is not empty, which would drop the
    interrupted epochs' rows. The file is moved aside (atomic rename, so a crash leaves it under
    ``.metrics.csv.rsmg-resume``, never lost) while the writer opens, put back, and the writer is told the
    file's columns, so new rows are appended (and the header is rewritten if new metrics appear).
    """
    import csv
    import warnings

    metrics = Path(logger.log_dir) / "metrics.csv"
    aside = metrics.with_name(".metrics.csv.rsmg-resume")
    if aside.is_file() and not metrics.is_file():  # an earlier resume died right here: put the file back
        os.replace(aside, metrics)
    if not metrics.is_file() or getattr(logger, "_experiment", None) is not None:
        return
    os.replace(metrics, aside)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*exists and is not empty")  # it is not deleted
            writer = logger.experiment
    finally:
        os.replace(aside, metrics)
    with metrics.open(newline="") as f:
        header = next(csv.reader(f), [])
    if hasattr(writer, "metrics_keys"):
        writer.metrics_keys = list(header)
