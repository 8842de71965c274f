"""LightningCLI subclass of rsmg: links, defaults and the test-after-fit step."""

from __future__ import annotations

from typing import Any

from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from rsmg.callbacks.figures import FigureCallback
from rsmg.callbacks.results import PerDomainResults


class RsmgCLI(LightningCLI):
    """LightningCLI with the data spec linked into the model and a per-domain results table."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
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

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Link ``data.spec`` → ``model.init_args.spec`` and add the results callback and options."""
        parser.link_arguments("data.spec", "model.init_args.spec", apply_on="instantiate")
        parser.add_lightning_class_args(PerDomainResults, "results")
        parser.add_lightning_class_args(FigureCallback, "figures")  # --figures.every '[confusion,map,tsne]'
        parser.add_argument(
            "--test_after_fit",
            type=bool,
            default=False,
            help="after `fit`, test the best (or last) checkpoint on every target domain and print the table",
        )

    # ------------------------------------------------------------------ preflight: fail before any output
    def _preflight(self, stage: str) -> None:
        """Check what can be checked before the Trainer creates a run directory.

        Lightning creates the logger's ``version_N`` directory (and ``config.yaml``) before it calls
        ``datamodule.setup``; reading the data here first means that broken data, an unwritable output
        directory or a checkpoint trained on other data stop the command with one message and leave nothing
        behind. ``setup`` of rsmg datamodules is idempotent, so the Trainer's own call costs nothing.
        """
        import os
        import tempfile
        from pathlib import Path

        from rsmg.errors import ConfigError, DataError

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
        cfg = self.config.get(self.subcommand, self.config)
        ckpt = cfg.get("ckpt_path")
        spec = getattr(self.model, "spec", None)
        if ckpt and spec is not None and Path(str(ckpt)).is_file():
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
        """Preflight checks (see :meth:`_preflight`)."""
        self._preflight("predict")

    def after_fit(self) -> None:
        """Test the selected checkpoint on every target domain when ``--test_after_fit true``."""
        cfg = self.config.get(self.subcommand, self.config)
        if not cfg.get("test_after_fit"):
            return
        cb = self.trainer.checkpoint_callback
        ckpt = "best" if cb is not None and getattr(cb, "best_model_path", None) else None
        self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=ckpt)
