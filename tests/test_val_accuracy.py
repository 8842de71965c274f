"""``val/oa`` of ClassificationTask (torchmetrics' micro accuracy): correct / total over the epoch's batches.

On real Trento LiDAR patches with a briefly trained concat CNN, so that predictions vary and micro (OA) and
macro (AA) accuracy differ. DDP sums the counts over ranks (tests/test_ddp.py runs the fit on 2 processes).
"""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import pytest
import torch

from _paths import SHARED_DATA
from rsmg.data.datamodule import CrossDomainDataModule
from rsmg.models.baseline import ConcatCNN
from rsmg.tasks import ClassificationTask

pytestmark = pytest.mark.skipif(
    not SHARED_DATA.exists(), reason=f"shared data pack not found at {SHARED_DATA}"
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.manual_seed(0)
    dm = CrossDomainDataModule(
        sources=["trento"],
        targets=["muufl"],
        modalities=["lidar"],
        root=str(SHARED_DATA),
        patch_size=7,
        target_split="per_class:40",
        eval_batch_size=50,  # several validation batches, the last one shorter
        ndsm_bands=["dsm"],
        standardize={"lidar": ["intensity"]},
    )
    task = ClassificationTask(spec=dm.spec, net=lambda s: ConcatCNN(s, width=8), lr=1e-2)
    _trainer(tmp_path_factory.mktemp("val"), max_epochs=1, limit_train_batches=5).fit(task, datamodule=dm)
    return dm, task


def _trainer(root, **kwargs) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
        **kwargs,
    )


def _hand_count(task, dm, batches: int | None = None) -> tuple[int, int, np.ndarray, np.ndarray]:
    correct = total = 0
    preds, labels = [], []
    task.eval()
    with torch.no_grad():
        for i, batch in enumerate(dm.val_dataloader()):
            if batches is not None and i >= batches:
                break
            pred = task(batch).logits.argmax(1)
            correct += int((pred == batch["label"]).sum())
            total += int(batch["label"].numel())
            preds.append(pred.numpy())
            labels.append(batch["label"].numpy())
    return correct, total, np.concatenate(preds), np.concatenate(labels)


def test_val_oa_is_correct_over_total_of_the_epoch(trained, tmp_path):
    dm, task = trained
    correct, total, preds, labels = _hand_count(task, dm)
    assert total > 2 * 50 and total % 50  # uneven batches really are counted
    (logged,) = _trainer(tmp_path).validate(task, datamodule=dm, verbose=False)
    # the number the hand-made counter logged: float64 ratio, logged as float32
    assert logged["val/oa"] == pytest.approx(float(np.float32(correct / total)), abs=0)
    aa = np.mean([(preds[labels == c] == c).mean() for c in np.unique(labels)])
    assert abs(aa - correct / total) > 1e-3  # micro (OA) is what is logged, not the class mean (AA)


def test_val_oa_starts_afresh_each_epoch(trained, tmp_path):
    dm, task = trained
    _trainer(tmp_path).validate(task, datamodule=dm, verbose=False)  # a full epoch first
    correct, total, _, _ = _hand_count(task, dm, batches=1)
    (logged,) = _trainer(tmp_path, limit_val_batches=1).validate(task, datamodule=dm, verbose=False)
    assert logged["val/oa"] == pytest.approx(float(np.float32(correct / total)), abs=0)


def test_val_metric_state_is_not_in_checkpoints(trained):
    _, task = trained
    assert not [k for k in task.state_dict() if "val_oa" in k]  # checkpoints keep their keys
