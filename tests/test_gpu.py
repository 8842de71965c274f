"""GPU checks: the same code on a CUDA device. Skipped, with the reason, on CPU-only machines (e.g. CI).

Run on a GPU node with ``.venv/bin/python -m pytest -m gpu -q``; record results with
``benchmarks/run_all.py`` (device name in every results file).
"""

import lightning.pytorch as pl
import pytest
import torch

from _paths import SHARED_DATA
from rsmg.data.datamodule import CrossDomainDataModule
from rsmg.models.baseline import ConcatCNN
from rsmg.models.fvmgn import FVMGN
from rsmg.models.fvmgn_options import MWDisOptions, SFIEOptions, TextOptions
from rsmg.tasks import ClassificationTask

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not torch.cuda.is_available(), reason="no CUDA device on this machine (CPU-only); run on a GPU node"
    ),
    pytest.mark.skipif(not SHARED_DATA.exists(), reason=f"shared data pack not found at {SHARED_DATA}"),
]


def _dm():
    return CrossDomainDataModule(
        sources=["trento"],
        targets=["muufl"],
        modalities=["lidar"],
        root=str(SHARED_DATA),
        target_split="per_class:200",
        ndsm_bands=["dsm"],
        standardize={"lidar": ["intensity"]},
        batch_size=64,
    )


def test_bf16_fit_on_gpu_then_same_metrics_on_cpu(tmp_path):
    pl.seed_everything(0)
    dm = _dm()
    task = ClassificationTask(spec=dm.spec, net=lambda s: ConcatCNN(s, width=16))
    trainer = pl.Trainer(
        max_epochs=2,
        accelerator="gpu",
        devices=1,
        precision="bf16-mixed",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(task, datamodule=dm)
    assert all(torch.isfinite(p).all() for p in task.parameters())
    trainer32 = pl.Trainer(accelerator="gpu", devices=1, logger=False, enable_progress_bar=False)
    trainer32.test(task, datamodule=dm, verbose=False)
    gpu = task.test_results["muufl"]
    pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False).test(
        task, datamodule=dm, verbose=False
    )
    cpu = task.test_results["muufl"]
    assert abs(gpu["oa"] - cpu["oa"]) <= 2 / cpu["n"]  # at most a couple of float-rounding flips


def test_fvmgn_forward_backward_on_gpu():
    dm = _dm()
    dm.setup("fit")
    batch = {k: v.cuda() for k, v in next(iter(dm.train_dataloader())).items()}
    net = (
        FVMGN(
            dm.spec,
            text=TextOptions(
                tower="clip-bpe", pretrained=False, tower_kwargs={"width": 64, "layers": 1, "heads": 2}
            ),
            sfie=SFIEOptions(width=16),
            mwdis=MWDisOptions(same_domain_fallback=True),
        )
        .cuda()
        .train()
    )
    out = net(batch)
    loss = torch.nn.functional.cross_entropy(out.logits, batch["label"]) + sum(out.aux_losses.values())
    loss.backward()
    assert torch.isfinite(loss)
    params = [p for p in net.encoder.parameters() if p.requires_grad]
    assert sum(p.grad is not None for p in params) >= 0.9 * len(params)
