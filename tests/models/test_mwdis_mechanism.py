"""What MWDis is for, shown on generated patches (issue 21): it removes a low-frequency shortcut.

The class is a spatial pattern (horizontal vs vertical stripes), but in the source domains the patch's mean
level is tied to the class too (+1.5 for one, −1.5 for the other): a shortcut that is easier to learn than the
orientation. In the target domain the levels are swapped. A CNN trained plainly learns the level and fails on
the target completely; the same CNN with MWDis, which gives a sample the wavelet low-frequency (LL) statistics
of a donor from another source domain, can no longer rely on the level and must learn the orientation. Generated
data, labelled as such: it states the mechanism, not an accuracy on real scenes.
"""

from __future__ import annotations

import pytest
import torch

from rsmg.data.spec import DataSpec
from rsmg.models.baseline import ConcatCNN

SIDE = 16


def stripes(n: int, level_sign: float, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` noisy stripe patches (class 0 horizontal, 1 vertical) whose mean level is ``±1.5·level_sign``."""
    y = torch.randint(0, 2, (n,), generator=g)
    phase = torch.rand(n, generator=g) * 2 * torch.pi
    wave = torch.sin(torch.arange(SIDE).float()[None, :] * 2 * torch.pi / 4 + phase[:, None])
    rows, cols = wave[:, :, None].expand(n, SIDE, SIDE), wave[:, None, :].expand(n, SIDE, SIDE)
    img = torch.where(y[:, None, None] == 0, rows, cols) + 0.3 * torch.randn(n, SIDE, SIDE, generator=g)
    img = img + (torch.where(y == 0, 1.5, -1.5) * level_sign)[:, None, None]
    return img[:, None], y


def source_and_target_accuracy(mwdis_p: float, steps: int = 120) -> tuple[float, float]:
    g = torch.Generator().manual_seed(0)
    spec = DataSpec(
        ("horizontal", "vertical"), {"lidar": 1}, ("s1", "s2", "t"), ("s1", "s2"), patch_size=SIDE
    )
    torch.manual_seed(0)
    model = ConcatCNN(spec, width=16, depth=2, dropout=0.0, mwdis_p=mwdis_p)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        x, y = stripes(64, 1.0, g)
        out = model({"image_lidar": x, "label": y, "domain": torch.randint(0, 2, (64,), generator=g)})
        loss = torch.nn.functional.cross_entropy(out.logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    g_test = torch.Generator().manual_seed(123)
    with torch.no_grad():
        accs = []
        for sign in (1.0, -1.0):  # source levels, then the target's swapped levels
            x, y = stripes(1000, sign, g_test)
            accs.append(float((model({"image_lidar": x}).logits.argmax(1) == y).float().mean()))
    return accs[0], accs[1]


@pytest.mark.slow
def test_mwdis_removes_a_low_frequency_shortcut():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        plain_src, plain_tgt = source_and_target_accuracy(0.0)
        mwdis_src, mwdis_tgt = source_and_target_accuracy(0.5)
    finally:
        torch.set_num_threads(n)
    assert plain_src > 0.95 and mwdis_src > 0.95  # both learn the source
    assert plain_tgt < 0.2, f"the plain CNN should have learnt the level shortcut: target acc {plain_tgt:.2f}"
    assert mwdis_tgt > 0.9, f"MWDis should have removed the shortcut: target acc {mwdis_tgt:.2f}"
