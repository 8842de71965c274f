"""MWDis donor picking: the vectorised picker against the per-sample loop it replaced, across batch sizes.

Why this exists: on an H200 (bf16, batch 2048; the file ``fvmgn_speed_h200_batch2048_before_fixes.md`` of
commit 9a4a317's ``benchmarks/results/``) MWDis took 77 ms of a 114 ms FVMGN training step (68 %), against 8 %
at batch 64 (with this picker: 7 % of a 37 ms step, ``results/gpu/fvmgn_speed_h200_batch2048.md``). MWDis'
tensor work runs on the GPU; its donor choice runs on the CPU (a few bytes per sample, and a CPU generator keeps
it reproducible). The old picker drew a B×B score matrix and looped over the batch in Python, so its cost grew
with B² / B and did not shrink with a faster GPU. The new :meth:`rsmg.models.wavelet.MWDis.pick_donors` sorts
the source samples by domain and maps one uniform draw per sample past its own domain's block: O(B log B), no
Python loop.

This script times both on the CPU (where the picking runs on every machine), on real-looking domain labels
(two source domains and a target domain; and one source domain with ``same_domain_fallback``, the LiDAR
cross-scene experiments' case), and the whole ``MWDis.resample`` on a batch of real-sized LiDAR patches
(2×11×11, generated values: throughput only) with each picker. It also checks the new picker's donors obey the
same rules as the old one's (other source domain; any other source sample under the fallback).

Usage: ``.venv/bin/python benchmarks/mwdis_donors.py [--batches 64 512 2048 8192]``
Writes ``benchmarks/results/fvmgn_speed/mwdis_donor_picking.md``.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import torch

from _common import command, machine, write_result
from _flops import load1, pick_threads
from rsmg.cli.signature import cli
from rsmg.models.wavelet import MWDis


def loop_pick_donors(
    self: MWDis, domain: torch.Tensor, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """The picker MWDis used until this change (B×B random scores, a Python loop over the batch)."""
    d = domain.detach().to("cpu", torch.long).reshape(-1)
    b = d.numel()
    donor = torch.full((b,), -1, dtype=torch.long)
    if b < 2 or self.p == 0.0:
        return donor
    is_src = d < self.num_source_domains
    chosen = torch.rand(b, generator=generator) < self.p
    scores = torch.rand(b, b, generator=generator)
    eye = torch.eye(b, dtype=torch.bool)
    other_domain = (d[:, None] != d[None, :]) & is_src[None, :] & is_src[:, None]
    any_other = is_src[None, :] & is_src[:, None] & ~eye
    for i in range(b):
        if not (chosen[i] and is_src[i]):
            continue
        cand = other_domain[i]
        if not cand.any() and self.same_domain_fallback:
            cand = any_other[i]
        if cand.any():
            donor[i] = int(torch.where(cand, scores[i], torch.full_like(scores[i], -1.0)).argmax())
    return donor


def timed(fn: Callable[[], object], reps: int) -> float:
    fn()
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def check_rules(m: MWDis, dom: torch.Tensor, donor: torch.Tensor) -> None:
    ok = donor >= 0
    assert (dom[donor[ok]] < m.num_source_domains).all(), "donor outside the source domains"
    assert (dom[ok] < m.num_source_domains).all(), "a target sample was resampled"
    other_exists = torch.tensor(
        [bool(((dom != dom[i]) & (dom < m.num_source_domains)).any()) for i in range(len(dom))]
    )
    assert (dom[donor[ok & other_exists]] != dom[ok & other_exists]).all(), "same-domain donor"
    assert (donor[ok] != torch.nonzero(ok).reshape(-1)).all(), "a sample lent to itself"


@dataclass(kw_only=True)
class Options:
    """Options of ``mwdis_donors.py`` (``--help`` shows them under the module docstring).

    Attributes:
        batches: batch sizes timed
        reps: calls per timing (median, after one warm-up)
        threads: torch CPU threads (0: auto, see _flops.pick_threads)
        name: result file benchmarks/results/<name>.md
    """

    batches: list[int] = field(default_factory=lambda: [64, 512, 2048, 8192])
    reps: int = 5
    threads: int = 1
    name: str = "fvmgn_speed/mwdis_donor_picking"


def main(args: Options) -> None:
    threads = pick_threads(args.threads)
    cases: dict[str, tuple[dict[str, Any], Callable[[int], torch.Tensor]]] = {
        "2 source domains + target": (dict(num_source_domains=2), lambda b: torch.arange(b) % 3),
        "1 source domain, same-domain fallback": (
            dict(num_source_domains=1, same_domain_fallback=True),
            lambda b: torch.zeros(b, dtype=torch.long),
        ),
    }
    rows = []
    for case, (kw, make_dom) in cases.items():
        for b in args.batches:
            m = MWDis(p=0.5, **kw).train()
            dom = make_dom(b)
            check_rules(m, dom, m.pick_donors(dom, generator=torch.Generator().manual_seed(0)))
            x = {"lidar": torch.randn(b, 2, 11, 11, generator=torch.Generator().manual_seed(1))}
            new_pick = timed(functools.partial(m.pick_donors, dom), args.reps)
            old_pick = timed(functools.partial(loop_pick_donors, m, dom), args.reps)
            new_res = timed(functools.partial(m.resample, x, dom), args.reps)
            with mock.patch.object(MWDis, "pick_donors", loop_pick_donors):
                check_rules(m, dom, m.pick_donors(dom))
                old_res = timed(functools.partial(m.resample, x, dom), args.reps)
            row = (case, b, old_pick, new_pick, old_res, new_res, load1())
            rows.append(row)
            print(
                f"[{case}] B={b}: pick loop {old_pick * 1e3:.2f} ms, vectorised {new_pick * 1e3:.3f} ms | "
                f"resample {old_res * 1e3:.2f} → {new_res * 1e3:.2f} ms  load {row[-1]:.2f}",
                flush=True,
            )
    lines = [
        "# MWDis donor picking: vectorised vs the per-sample loop it replaced",
        "",
        f"Command: `{command(data=False)}`  ",
        f"Machine: {machine()}  ",
        f"Threads: {threads}. Medians of {args.reps} calls after one warm-up. Donor picking runs on the CPU on "
        "every machine (a GPU run waits for it once per step). Patches: generated 2×11×11 values (the real "
        "LiDAR patch shape), throughput only; MWDis p = 0.5, Haar, one level.",
        "",
        "| domains in the batch | batch | pick: loop (ms) | pick: vectorised (ms) | speed-up | "
        "resample with loop (ms) | resample vectorised (ms) | load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case, b, op, np_, orr, nr, ld in rows:
        lines.append(
            f"| {case} | {b:,} | {op * 1e3:,.2f} | {np_ * 1e3:,.3f} | {op / np_:,.0f}× | {orr * 1e3:,.2f} | "
            f"{nr * 1e3:,.2f} | {ld:.2f} |"
        )
    lines += [
        "",
        "Both pickers obey the same rules (checked for every row: donors are source samples of another source "
        "domain, or any other source sample under the fallback; target samples are never resampled); they "
        "draw different random streams, so individual donors differ. `tests/models/test_wavelet.py` checks "
        "the new picker draws every allowed donor and only those, uniformly.",
    ]
    write_result(f"{args.name}.md", "\n".join(lines))


if __name__ == "__main__":
    main(cli(Options, description=__doc__))
