"""Cost of one training step of the scene classifiers on CPU: input size × frozen stages, per epoch.

Issue 20 asks that ERM with EfficientNet-Lite0 over the leave-one-dataset-out source set cost ≤ 2 minutes per
epoch on 2 CPU cores. This measures forward + backward + AdamW of the real models
(:class:`~rsmg.models.scene_models.SceneClassifier`, optionally
:class:`~rsmg.models.fvmgn_scenes.SceneFVMGN`) at batch 32 on random images (the cost does not depend on the
pixels), for input sizes and ``freeze="stages:N"`` settings, and projects one epoch over the largest LODO source
pool (target UC Merced: AID + RSSCN7, scene5; the training part after the 20 % validation split) plus its
validation pass.

The machine is shared and often oversubscribed, so the primary number is the *process CPU time* of a step on
**one** torch thread (``--threads 1``, the default): other processes delay it more than they add to it, whereas
with several threads OpenMP's spin-waiting for a descheduled partner thread inflates CPU time as well (seen
here: 6.3 CPU s per 128-px step on 2 threads at load 12, against 1.1 s on one thread). They still add some
(cache and memory contention: ERM's 128-px step measured 0.47 CPU s at load 4.8 and 0.86 s at load 3.2 in
another run), so models compared are stepped in turns and compared by ratios paired by round. "Epoch, one idle
core" = training steps × step CPU time + validation batches × eval-forward CPU time; on two idle cores it is
shorter. Wall times and the 1-minute load average are printed beside them.

Usage: ``RSMG_DATA_ROOT=../shared/data .venv/bin/python benchmarks/scene_step_cost.py --sizes 128 160 224``
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from _common import command, machine, write_result
from rsmg.cli.signature import cli
from rsmg.data.scene_domains import SceneDomainDataModule
from rsmg.data.spec import DataSpec
from rsmg.models.fvmgn_options import MWDisOptions, TextOptions


def lodo_pool(target: str) -> tuple[int, int]:
    """Training and validation images of the LODO protocol with ``target`` held out (scene5, no decoding)."""
    others = [d for d in ("ucm", "aid", "rsscn7") if d != target]
    dm = SceneDomainDataModule(others, [target], class_set="scene5", cache=False)
    dm.setup("fit")
    summary = dm.summary()
    return sum(summary[d]["train"] for d in others), sum(summary[d]["val"] for d in others)


def build(kind: str, spec: DataSpec, freeze: str) -> torch.nn.Module:
    """The model a YAML of experiments/scenes builds (random text tower: its cost is paid once, at build)."""
    if kind == "erm":
        from rsmg.models.scene_models import SceneClassifier

        return SceneClassifier(spec, pretrained=False, freeze=freeze)
    text = TextOptions(
        class_set="scene5", tower="clip-bpe", tower_kwargs={"width": 64, "layers": 1, "heads": 2}
    )
    if kind.startswith("fvmgn_captions"):
        from rsmg.models.fvmgn_captions import CaptionFVMGN

        # the caption tower is frozen and its features cached by text, so a tiny random tower costs what
        # MiniLM costs after the first epoch (one cache lookup per caption)
        mwdis = kind != "fvmgn_captions_no_mwdis"
        view = "resampled" if kind.endswith("_resampled_view") else "all"
        return CaptionFVMGN(
            spec,
            pretrained=False,
            freeze=freeze,
            mwdis=MWDisOptions(enabled=mwdis, at="frozen_prefix" if "_frozen_prefix" in kind else "input"),
            text=dataclasses.replace(text, use="shared"),
            second_view=view,
        )
    from rsmg.models.fvmgn_scenes import SceneFVMGN

    return SceneFVMGN(spec, pretrained=False, freeze=freeze, text=text)


def step_costs(
    models: dict[str, torch.nn.Module], spec: DataSpec, batch: int, steps: int
) -> dict[str, tuple[float, float, float, float, list[float]]]:
    """Median wall and CPU seconds of a training step, and of an eval forward at the same batch, per model.

    Also each round's step CPU seconds (after the warm-up), for ratios paired by round.

    The models take their steps in turns (one step each per round), so a change of load on the shared machine
    falls on all of them alike and their ratios stay side by side.
    """
    size = spec.patch_size
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(batch) % spec.num_classes
    data: dict[str, Any] = {
        "image_rgb": torch.randn(batch, 3, size, size, generator=g),
        "label": labels,
        "domain": torch.arange(batch) % len(spec.source_domains),
        "text": [f"caption {i % 8} of a scene with roads and trees" for i in range(batch)],
    }
    opts = {
        k: torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-3)
        for k, m in models.items()
    }
    walls: dict[str, list[float]] = {k: [] for k in models}
    cpus: dict[str, list[float]] = {k: [] for k in models}
    for _ in range(steps + 1):
        for k, model in models.items():
            model.train()
            t0, c0 = time.perf_counter(), time.process_time()
            out = model(data)
            loss = torch.nn.functional.cross_entropy(out.logits, labels)
            for v in out.aux_losses.values():
                loss = loss + 0.1 * v
            opts[k].zero_grad()
            loss.backward()
            opts[k].step()
            walls[k].append(time.perf_counter() - t0)
            cpus[k].append(time.process_time() - c0)
    ev_walls: dict[str, list[float]] = {k: [] for k in models}
    ev_cpus: dict[str, list[float]] = {k: [] for k in models}
    with torch.no_grad():
        for _ in range(2):
            for k, model in models.items():
                model.eval()
                t0, c0 = time.perf_counter(), time.process_time()
                model(data)
                ev_walls[k].append(time.perf_counter() - t0)
                ev_cpus[k].append(time.process_time() - c0)
    med = steps // 2
    return {
        k: (
            sorted(walls[k][1:])[med],
            sorted(cpus[k][1:])[med],
            min(ev_walls[k]),
            min(ev_cpus[k]),
            cpus[k][1:],
        )
        for k in models
    }


def paired_ratio(rounds: list[float], base: list[float]) -> str:
    """Median and quartiles of the per-round ratios ``rounds[r] / base[r]`` (the two stepped in the same round)."""
    import statistics

    r = [a / b for a, b in zip(rounds, base, strict=True)]
    q = statistics.quantiles(r, n=4) if len(r) > 1 else [r[0], r[0], r[0]]
    return f"{statistics.median(r):.2f}x (per-round quartiles {q[0]:.2f}–{q[2]:.2f})"


def ratio_lines(rows: list[tuple], base: str, keep: Callable[[str], bool]) -> list[str]:
    """``- model / base (size, freeze): ratio`` for the rows ``keep`` selects, paired by round with ``base``."""
    rounds = {(r[0], r[1], r[2]): r[-1] for r in rows}
    return [
        f"- {k} / {base} ({s} px, {f}): {paired_ratio(rounds[(k, s, f)], rounds[(base, s, f)])}"
        for k, s, f, *_ in rows
        if k != base and keep(k) and (base, s, f) in rounds
    ]


def extras_ratios(rows: list[tuple]) -> list[str]:
    """The unified model's training-time extras alone: each variant against ``fvmgn_captions_no_mwdis``."""
    lines = ratio_lines(rows, "fvmgn_captions_no_mwdis", lambda k: k.startswith("fvmgn_captions"))
    if not lines:
        return []
    head = "## The extras alone (MWDis + its second view: step CPU time against the same model without them)"
    lines += ["", *added_cost_lines(rows)]
    return [head, "", *lines, ""]


def added_cost_lines(rows: list[tuple]) -> list[str]:
    """What the extras add to a step, in ERM steps: ``(model − no extras) / erm``, per round, when all three ran."""
    import statistics

    rounds = {(r[0], r[1], r[2]): r[-1] for r in rows}
    out = []
    for k, s, f, *_ in rows:
        base, erm = rounds.get(("fvmgn_captions_no_mwdis", s, f)), rounds.get(("erm", s, f))
        if (
            not k.startswith("fvmgn_captions")
            or k == "fvmgn_captions_no_mwdis"
            or base is None
            or erm is None
        ):
            continue
        r = [(a - b) / e for a, b, e in zip(rounds[(k, s, f)], base, erm, strict=True)]
        out.append(
            f"- {k}: the extras add {statistics.median(r):.2f} ERM steps ({s} px, {f}; median over rounds)"
        )
    return out


@dataclass(kw_only=True)
class Options:
    """Options of ``scene_step_cost.py``.

    Attributes:
        sizes: image sides in pixels
        freeze: backbone freezing settings (none, stages:N)
        models: fvmgn_captions: the unified model with MWDis on the input and every sample's second view (its
            config until docs/decisions.md#unified-model chose fvmgn_captions_frozen_prefix_resampled_view);
            _no_mwdis: without its training-time extras (MWDis, 2nd view); _resampled_view:
            second_view=resampled; _frozen_prefix: mwdis.at=frozen_prefix
        batch: images per step
        steps: timed steps (median, after one warm-up)
        target: LODO target whose source pool is projected (largest: ucm)
        threads: torch CPU threads
        out: results file under benchmarks/results/
    """

    sizes: list[int] = field(default_factory=lambda: [128, 160, 224])
    freeze: list[str] = field(
        default_factory=lambda: ["none", "stages:2", "stages:4", "stages:5", "stages:6"]
    )
    models: list[
        Literal[
            "erm",
            "fvmgn",
            "fvmgn_captions",
            "fvmgn_captions_no_mwdis",
            "fvmgn_captions_resampled_view",
            "fvmgn_captions_frozen_prefix",
            "fvmgn_captions_frozen_prefix_resampled_view",
        ]
    ] = field(default_factory=lambda: ["erm"])
    batch: int = 32
    steps: int = 3
    target: str = "ucm"
    threads: int = 1
    out: str = "scene_data/step_cost.md"


def main(args: Options) -> None:
    torch.set_num_threads(args.threads)
    n_train, n_val = lodo_pool(args.target)
    rows = []
    for size in args.sizes:
        spec = DataSpec(
            classes=("field", "river or lake", "forest", "residential", "parking"),
            modalities={"rgb": 3},
            domains=("aid", "rsscn7", "ucm"),
            source_domains=("aid", "rsscn7"),
            patch_size=size,
        )
        for freeze in args.freeze:
            models: dict[str, torch.nn.Module] = {}
            for kind in args.models:
                torch.manual_seed(0)
                models[kind] = build(kind, spec, freeze)
            costs = step_costs(models, spec, args.batch, args.steps)
            load = os.getloadavg()[0]
            for name, (wall, cpu, ev_wall, ev_cpu, rounds) in costs.items():
                steps = -(-n_train // args.batch)
                epoch_cpu = steps * cpu + n_val / args.batch * ev_cpu
                epoch_wall = steps * wall + n_val / args.batch * ev_wall
                rows.append((name, size, freeze, cpu, wall, ev_cpu, epoch_cpu, epoch_wall, load, rounds))
                print(
                    f"{name} {size}px {freeze}: step {cpu:.2f} CPU s ({wall:.2f} wall), eval {ev_cpu:.2f} CPU s; "
                    f"epoch {epoch_cpu / 60:.1f} min from CPU time, {epoch_wall / 60:.1f} wall (load {load:.2f})",
                    flush=True,
                )
    lines = [
        "# Scene classifiers: training-step cost on CPU by input size and frozen stages",
        "",
        f"Command: `{command()}`  ",
        f"Machine: {machine()}  ",
        f"Epoch projected over the LODO source pool with target {args.target} (scene5): {n_train:,} training + "
        f"{n_val:,} validation images, batch {args.batch} (eval forward at the same batch). Random weights and "
        f"images (cost does not depend on them); EfficientNet-Lite0, channels_last; {args.threads} torch "
        f"thread(s); median of {args.steps} steps after one warm-up. The models take their steps in turns (one "
        "each per round), so a change of load falls on all of them alike: compare them by the ratios, paired by "
        "round. Absolute CPU times rise with the machine's load (cache and memory contention), so they compare "
        "across files only roughly.",
        "",
        "| model | px | frozen | step CPU s | step wall s | eval fwd CPU s | epoch, one idle core (min) "
        "| epoch wall (min) | load |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
        *[
            f"| {k} | {s} | {f} | {c:.2f} | {w:.2f} | {ec:.2f} | {epc / 60:.1f} | {epw / 60:.1f} | {ld:.2f} |"
            for k, s, f, c, w, ec, epc, epw, ld, _ in rows
        ],
        "",
        "## Ratios (step CPU time against the first model at the same size and freeze setting, paired by round)",
        "",
        *ratio_lines(rows, rows[0][0], lambda k: True),
        "",
        *extras_ratios(rows),
        "## Key numbers",
        "",
        *[
            f"- {k} {s} px {f}: {epc / 60:.1f} min/epoch on one idle core (CPU time; {epw / 60:.1f} wall here)"
            for k, s, f, c, w, ec, epc, epw, ld, _ in rows
        ],
        "",
    ]
    write_result(args.out, "\n".join(lines))


if __name__ == "__main__":
    main(cli(Options, description=__doc__))
