"""``decay_norms_and_biases``: which parameters AdamW decays, checked by an optimizer step with zero gradients.

With zero gradients Adam's moments stay 0, so the only change a step makes is decoupled weight decay
(``p ← p · (1 − lr · wd)``): a parameter that moved was decayed, one that did not was exempt.
"""

from __future__ import annotations

import torch

from rsmg.data.spec import DataSpec
from rsmg.models.fvmgn import FVMGN
from rsmg.models.fvmgn_options import AlignmentOptions, MWDisOptions, SFIEOptions, TextOptions
from rsmg.tasks import ClassificationTask

SPEC = DataSpec(
    classes=("trees", "ground", "road", "buildings"),
    modalities={"lidar": 2},
    domains=("trento", "muufl"),
    source_domains=("trento",),
    patch_size=11,
)


def tiny_fvmgn(spec: DataSpec) -> FVMGN:
    return FVMGN(
        spec,
        text=TextOptions(tower="clip-bpe", tower_kwargs={"width": 16, "layers": 1, "heads": 2}),
        sfie=SFIEOptions(width=8, attn_heads=2),
        alignment=AlignmentOptions(embed_dim=16),
        mwdis=MWDisOptions(same_domain_fallback=True),
    )


def decayed_after_zero_grad_step(decay_norms_and_biases: bool) -> dict[str, bool]:
    """name → whether one AdamW step with zero gradients changed the (trainable) parameter."""
    torch.manual_seed(0)
    task = ClassificationTask(
        spec=SPEC, net=tiny_fvmgn, lr=0.1, weight_decay=0.5, decay_norms_and_biases=decay_norms_and_biases
    )
    opt = torch.optim.AdamW(task.parameter_groups(), lr=0.1)  # as configure_optimizers, without a trainer
    trainable = {n: p for n, p in task.named_parameters() if p.requires_grad}
    before = {n: p.detach().clone() for n, p in trainable.items()}
    for p in trainable.values():
        p.grad = torch.zeros_like(p)
    opt.step()
    return {n: not torch.equal(p.detach(), before[n]) for n, p in trainable.items()}


def test_default_decays_every_trainable_parameter():
    moved = decayed_after_zero_grad_step(True)
    assert [n for n in moved if n.endswith("logit_scale") and moved[n]], (
        "the temperature is decayed by default"
    )
    # a parameter that is exactly zero cannot move under multiplicative decay (biases initialised to 0)
    task = ClassificationTask(spec=SPEC, net=tiny_fvmgn)
    nonzero = {n for n, p in task.named_parameters() if p.requires_grad and p.detach().abs().sum() > 0}
    assert all(moved[n] for n in nonzero), [n for n in nonzero if not moved[n]]


def test_exempt_norms_biases_and_temperature():
    moved = decayed_after_zero_grad_step(False)
    task = ClassificationTask(spec=SPEC, net=tiny_fvmgn)
    params = {n: p for n, p in task.named_parameters() if p.requires_grad}
    scale = [n for n in params if n.endswith("logit_scale")]
    assert len(scale) == 1 and not moved[scale[0]], "the learnable temperature must not be decayed"
    norms = [n for n, p in params.items() if p.ndim == 1 and n.endswith("weight")]
    assert norms and not any(moved[n] for n in norms), "norm scales must not be decayed"
    assert not any(moved[n] for n, p in params.items() if p.ndim <= 1)
    assert all(moved[n] for n, p in params.items() if p.ndim > 1 and p.detach().abs().sum() > 0)


def test_every_trainable_parameter_is_handed_over_once():
    for flag in (True, False):
        task = ClassificationTask(spec=SPEC, net=tiny_fvmgn, decay_norms_and_biases=flag)
        handed = [id(p) for g in task.parameter_groups() for p in g["params"]]
        trainable = [id(p) for p in task.parameters() if p.requires_grad]
        assert sorted(handed) == sorted(trainable)
        assert len(task.parameter_groups()) == (1 if flag else 2)
