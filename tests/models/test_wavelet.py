"""MWDis: exact round trip, source-domain-only resampling, eval identity, differentiability, size errors."""

from __future__ import annotations

import pytest
import torch

from rsmg.errors import ConfigError, DataError
from rsmg.models.wavelet import MWDis


def _stats(m: MWDis, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    ll, _ = m.decompose(x)
    return ll.mean(dim=(-2, -1)), ll.std(dim=(-2, -1), unbiased=False)


@pytest.mark.parametrize(
    ("wavelet", "levels", "size"),
    [("haar", 1, 11), ("haar", 2, 11), ("haar", 1, 7), ("db2", 1, 13), ("haar", 1, 12)],
)
def test_perfect_reconstruction(wavelet, levels, size):
    torch.manual_seed(0)
    m = MWDis(wavelet=wavelet, levels=levels, patch_size=size)
    x = torch.randn(3, 5, size, size) * 4 + 2
    ll, highs = m.decompose(x)
    assert len(highs) == levels and all(len(h) == 3 for h in highs)
    torch.testing.assert_close(m.reconstruct(ll, highs, (size, size)), x, atol=1e-5, rtol=0)


def test_resampling_off_reconstructs_input():
    """p=1 but nothing changed (ll_mix=0, high_jitter=0): the transform path alone must be exact."""
    torch.manual_seed(0)
    m = MWDis(p=1.0, ll_mix=0.0, high_jitter=0.0, num_source_domains=2).train()
    x = {"hsi": torch.randn(4, 6, 11, 11), "lidar": torch.randn(4, 1, 11, 11)}
    out = m.resample(x, torch.tensor([0, 0, 1, 1]))
    assert (out.donor >= 0).all()
    for k in x:
        torch.testing.assert_close(out.images[k], x[k], atol=1e-5, rtol=0)


def test_eval_and_p0_are_identity():
    x = {"hsi": torch.randn(4, 3, 11, 11)}
    dom = torch.tensor([0, 0, 1, 1])
    m = MWDis(p=1.0, num_source_domains=2).eval()
    assert m(x, dom)["hsi"] is x["hsi"]
    assert MWDis(p=0.0, num_source_domains=2).train()(x, dom)["hsi"] is x["hsi"]


def test_resampling_mixes_only_other_source_domains():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    m = MWDis(p=1.0, high_jitter=0.0, num_source_domains=2).train()
    dom = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2])  # domain 2 is a target domain
    x = {
        "hsi": torch.randn(8, 4, 12, 12) * torch.arange(1, 9).view(8, 1, 1, 1)
        + torch.arange(8).view(8, 1, 1, 1)
    }
    out = m.resample(x, dom, generator=g)
    donor = out.donor
    assert (donor[:6] >= 0).all(), "p=1: every source sample is resampled"
    assert (dom[donor[:6]] != dom[:6]).all(), "donor from a different domain"
    assert (dom[donor[:6]] < 2).all(), "donor from a source domain"
    assert (donor[6:] == -1).all() and torch.equal(out.images["hsi"][6:], x["hsi"][6:]), "targets untouched"
    mu, sd = _stats(m, out.images["hsi"])
    mu0, sd0 = _stats(m, x["hsi"])
    torch.testing.assert_close(mu[:6], mu0[donor[:6]], atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(sd[:6], sd0[donor[:6]], atol=1e-4, rtol=1e-5)


def test_same_donor_for_all_modalities_and_high_bands_rescaled():
    torch.manual_seed(0)
    m = MWDis(p=1.0, ll_mix=0.0, high_jitter=0.5, num_source_domains=2).train()
    x = {"hsi": torch.randn(4, 3, 12, 12), "lidar": torch.randn(4, 1, 12, 12)}
    out = m.resample(x, torch.tensor([0, 0, 1, 1]))
    for k in x:
        ll0, h0 = m.decompose(x[k])
        ll1, h1 = m.decompose(out.images[k])
        torch.testing.assert_close(ll1, ll0, atol=1e-5, rtol=0)  # ll_mix=0 keeps LL
        assert not torch.allclose(h1[0][0], h0[0][0])  # detail bands rescaled


def test_high_swap_takes_the_donors_detail_bands_and_keeps_own_layout():
    """``high_swap``: detail coefficients come from the donor (a source sample of another domain), LL stays."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(2)
    m = MWDis(p=1.0, ll_mix=0.0, high_jitter=0.0, high_swap=True, num_source_domains=2, levels=2).train()
    dom = torch.tensor([0, 0, 1, 1, 2])  # domain 2 is a target: neither receives nor lends
    x = {"hsi": torch.randn(5, 3, 12, 12), "lidar": torch.randn(5, 1, 12, 12)}
    out = m.resample(x, dom, generator=g)
    donor = out.donor
    assert (donor[:4] >= 0).all() and (dom[donor[:4]] != dom[:4]).all() and donor[4] == -1
    for k in x:
        ll0, h0 = m.decompose(x[k])
        ll1, h1 = m.decompose(out.images[k])
        torch.testing.assert_close(ll1[:4], ll0[:4], atol=1e-5, rtol=0)  # own coarse layout
        for lv in range(2):
            for o in range(3):
                torch.testing.assert_close(h1[lv][o][:4], h0[lv][o][donor[:4]], atol=1e-5, rtol=0)
        assert torch.equal(out.images[k][4], x[k][4])  # the target sample is untouched
    # off: the sample keeps its own detail bands (with jitter 0, the whole sample is unchanged)
    m.high_swap = False
    same = m.resample(x, dom, generator=torch.Generator().manual_seed(2)).images
    torch.testing.assert_close(same["hsi"], x["hsi"], atol=1e-5, rtol=0)


def test_per_modality_donors_are_drawn_independently():
    torch.manual_seed(0)
    dom = torch.tensor([0] * 8 + [1] * 8)
    # even size: re-decomposing the output gives back exactly the new LL band (no boundary crop)
    x = {name: torch.randn(16, c, 12, 12) for name, c in (("hsi", 3), ("lidar", 1), ("sar", 2))}
    gen = torch.Generator().manual_seed(0)
    shared = MWDis(p=1.0, num_source_domains=2).train().resample(x, dom, generator=gen)
    assert all(torch.equal(d, shared.donor) for d in shared.donors.values())
    m = MWDis(p=1.0, high_jitter=0.0, num_source_domains=2, donors="per_modality").train()
    out = m.resample(x, dom, generator=torch.Generator().manual_seed(0))
    d = out.donors
    assert torch.equal(d["hsi"], out.donor) and not torch.equal(d["hsi"], d["lidar"])
    # each modality carries the LL statistics of its own donor, always from the other domain
    for name, x_m in x.items():
        assert (d[name] >= 0).all() and (dom[d[name]] != dom).all()
        mu, _ = _stats(m, out.images[name])
        torch.testing.assert_close(mu, _stats(m, x_m)[0][d[name]], atol=1e-4, rtol=1e-5)
    with pytest.raises(ConfigError, match="donors"):
        MWDis(donors="random")


def test_single_source_domain_needs_fallback():
    x = {"hsi": torch.randn(4, 3, 11, 11)}
    dom = torch.zeros(4, dtype=torch.long)
    assert (MWDis(p=1.0).train().resample(x, dom).donor == -1).all()
    donor = MWDis(p=1.0, same_domain_fallback=True).train().resample(x, dom).donor
    assert (donor >= 0).all() and (donor != torch.arange(4)).all()


def _candidates(dom: torch.Tensor, i: int, n_source: int, fallback: bool) -> set[int]:
    """Brute-force reference: the donors sample ``i`` may draw (MWDis docstring)."""
    if dom[i] >= n_source:
        return set()
    src = [j for j in range(len(dom)) if dom[j] < n_source]
    other = {j for j in src if dom[j] != dom[i]}
    return other or ({j for j in src if j != i} if fallback else set())


@pytest.mark.parametrize("fallback", [False, True])
def test_donors_are_uniform_over_exactly_the_allowed_candidates(fallback):
    """Every drawn donor is allowed, every allowed donor is drawn, about equally often (vectorised picker)."""
    g = torch.Generator().manual_seed(0)
    n_source = 3
    for trial in range(6):
        b = int(torch.randint(2, 24, (1,), generator=g))
        dom = torch.randint(0, 4, (b,), generator=g)  # domain 3 is a target domain
        if trial == 0:
            dom[:] = 1  # one source domain only: only the fallback can resample
        m = MWDis(p=1.0, num_source_domains=n_source, same_domain_fallback=fallback)
        draws = torch.stack([m.pick_donors(dom, generator=g) for _ in range(600)])
        for i in range(b):
            cand = _candidates(dom, i, n_source, fallback)
            seen = draws[:, i]
            if not cand:
                assert (seen == -1).all(), f"sample {i} (domain {int(dom[i])}) has no allowed donor"
                continue
            assert (seen >= 0).all(), "p = 1: every sample with a candidate is resampled"
            assert set(seen.tolist()) == cand, f"sample {i}: drawn {set(seen.tolist())} vs allowed {cand}"
            freq = torch.bincount(seen, minlength=b)[sorted(cand)].double() / len(seen)
            assert (freq - 1 / len(cand)).abs().max() < 0.1, f"sample {i}: donors not uniform: {freq}"


def test_donor_picking_scales_to_large_batches():
    """O(B log B): 200k samples in well under a second (the B×B loop it replaced took minutes)."""
    import time

    dom = torch.randint(0, 3, (200_000,))
    m = MWDis(p=0.5, num_source_domains=2, same_domain_fallback=True)
    t0 = time.perf_counter()
    donor = m.pick_donors(dom)
    assert time.perf_counter() - t0 < 2.0
    ok = donor >= 0
    assert 0.3 < ok.double().mean() < 0.4  # p = 0.5 of the two thirds that are source samples
    assert (dom[donor[ok]] != dom[ok]).all() and (dom[donor[ok]] < 2).all()


def test_differentiable():
    m = MWDis(p=1.0, num_source_domains=2).train()
    x = torch.randn(4, 3, 11, 11, requires_grad=True)
    m({"hsi": x}, torch.tensor([0, 1, 0, 1]))["hsi"].square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0 and x.grad.isfinite().all()


def test_size_errors():
    with pytest.raises(ConfigError, match="wavelet_levels"):
        MWDis(levels=3, patch_size=7)
    with pytest.raises(ConfigError, match="wavelet"):
        MWDis(wavelet="nope")
    with pytest.raises(DataError, match="too small"):
        MWDis(levels=2).decompose(torch.randn(1, 1, 3, 3))


def test_half_precision_and_autocast():
    """ptwt only takes float32/64: bfloat16 inputs and AMP regions must still work and keep their dtype."""
    m = MWDis()
    x = torch.randn(2, 3, 11, 11)
    ll, highs = m.decompose(x.bfloat16())
    assert ll.dtype == torch.bfloat16
    rec = m.reconstruct(ll, highs, (11, 11))
    assert rec.dtype == torch.bfloat16
    torch.testing.assert_close(rec.float(), x, atol=0.1, rtol=0.05)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ll, highs = m.decompose(x)
        torch.testing.assert_close(m.reconstruct(ll, highs, (11, 11)), x, atol=1e-5, rtol=0)


@pytest.mark.parametrize("mode", ["reflect", "zero", "symmetric", "periodic", "constant"])
@pytest.mark.parametrize("size", [(11, 11), (12, 12), (7, 10)])
@pytest.mark.parametrize("levels", [1, 2])
def test_fast_haar_equals_ptwt(mode, size, levels):
    from rsmg.models.wavelet import MWDis

    torch.manual_seed(0)
    x = torch.randn(3, 4, *size, dtype=torch.float64, requires_grad=True)
    fast, ref = MWDis(levels=levels, mode=mode), MWDis(levels=levels, mode=mode, fast_haar=False)
    (ll_f, hi_f), (ll_r, hi_r) = fast.decompose(x), ref.decompose(x)
    torch.testing.assert_close(ll_f, ll_r, atol=1e-10, rtol=0)
    for a, b in zip(hi_f, hi_r, strict=True):
        for u, v in zip(a, b, strict=True):
            torch.testing.assert_close(u, v, atol=1e-10, rtol=0)
    y_f, y_r = fast.reconstruct(ll_f, hi_f, size), ref.reconstruct(ll_r, hi_r, size)
    torch.testing.assert_close(y_f, y_r, atol=1e-10, rtol=0)
    torch.testing.assert_close(y_f, x, atol=1e-10, rtol=0)  # perfect reconstruction
    (g_f,) = torch.autograd.grad(y_f.square().sum() + ll_f.sum(), x)
    (g_r,) = torch.autograd.grad(y_r.square().sum() + ll_r.sum(), x)
    torch.testing.assert_close(g_f, g_r, atol=1e-10, rtol=0)


@pytest.mark.parametrize("fallback", [False, True])
def test_same_class_donors_follow_every_rule_within_each_class(fallback):
    """``donor_class="same"``: a donor has the receiver's label, and the domain rules still hold."""
    g = torch.Generator().manual_seed(0)
    m = MWDis(p=1.0, num_source_domains=2, same_domain_fallback=fallback, donor_class="same")
    for _ in range(50):
        dom = torch.randint(0, 3, (30,), generator=g)  # domain 2 is a target domain
        y = torch.randint(0, 4, (30,), generator=g)
        donor = m.pick_donors(dom, labels=y, generator=g)
        ok = donor >= 0
        assert (y[donor[ok]] == y[ok]).all() and (donor[ok] != torch.nonzero(ok).reshape(-1)).all()
        assert (dom[ok] < 2).all() and (dom[donor[ok]] < 2).all()
        for i in range(30):
            if dom[i] == 2:
                continue
            same = (y == y[i]) & (dom < 2) & (torch.arange(30) != i)
            other = same & (dom != dom[i])
            # p = 1: resampled exactly when the class has a candidate (another domain, or any under fallback)
            assert bool(ok[i]) == bool(other.any() or (fallback and same.any())), i
            if other.any():
                assert dom[donor[i]] != dom[i]


def test_same_class_donors_equal_any_class_donors_when_the_batch_has_one_class():
    """The random draws are shared: with one class in the batch both modes pick the same donors."""
    dom = torch.randint(0, 3, (40,), generator=torch.Generator().manual_seed(1))
    y = torch.zeros(40, dtype=torch.long)
    any_ = MWDis(p=0.5, num_source_domains=2).pick_donors(dom, generator=torch.Generator().manual_seed(2))
    same = MWDis(p=0.5, num_source_domains=2, donor_class="same").pick_donors(
        dom, labels=y, generator=torch.Generator().manual_seed(2)
    )
    assert torch.equal(any_, same) and (any_ >= 0).any()


def test_same_class_donors_need_labels_and_a_valid_choice():
    m = MWDis(p=1.0, num_source_domains=2, donor_class="same").train()
    x = {"lidar": torch.randn(4, 1, 11, 11)}
    with pytest.raises(ValueError, match="labels"):
        m(x, torch.tensor([0, 1, 0, 1]))
    out = m.resample(x, torch.tensor([0, 1, 0, 1]), labels=torch.tensor([0, 0, 1, 1]))
    assert out.donor.tolist() == [1, 0, 3, 2]
    with pytest.raises(ConfigError, match="mwdis_donor_class"):
        MWDis(donor_class="other")  # type: ignore[arg-type]


def test_patch_size_errors_name_a_fix_that_works():
    """A 1-px patch used to be told 'use levels <= 0, a shorter wavelet (haar)' while levels 0 is refused."""
    from rsmg.models.wavelet import check_wavelet

    with pytest.raises(ConfigError, match=r"mwdis\.enabled: false") as e:
        check_wavelet("haar", 1, 1, field="mwdis.levels")
    assert "levels <= 0" not in str(e.value)
    with pytest.raises(ConfigError, match=r"levels <= 2 or larger patches") as e:
        check_wavelet("haar", 3, 5, field="wavelet_levels")  # already haar: no 'shorter wavelet' advice
    assert "haar)" not in str(e.value)
    with pytest.raises(ConfigError, match=r"shortest wavelet \(haar\)"):
        check_wavelet("db4", 2, 11, field="wavelet_levels")
