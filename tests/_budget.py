"""The smallest training budget that still runs a whole ``rsmg fit`` (CLI flags shared by the end-to-end tests)."""

SMOKE_BUDGET = (
    "--trainer.max_epochs",
    "1",
    "--trainer.limit_train_batches",
    "3",
    "--trainer.limit_val_batches",
    "2",
)
