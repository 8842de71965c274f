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

    def after_fit(self) -> None:
        """Test the selected checkpoint on every target domain when ``--test_after_fit true``."""
        cfg = self.config.get(self.subcommand, self.config)
        if not cfg.get("test_after_fit"):
            return
        cb = self.trainer.checkpoint_callback
        ckpt = "best" if cb is not None and getattr(cb, "best_model_path", None) else None
        self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=ckpt)
