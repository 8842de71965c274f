"""UC Merced with human captions, all 2,100 images (issue 22): image-only, text-only, fusions, the unified model.

Every method on the same pretrained towers (EfficientNet-Lite0 with ImageNet weights, stem + blocks 0-2 frozen;
frozen pretrained MiniLM), input size (128 px), split (1,680 / 210 / 210, seeded, stratified) and budget
(``experiments/scenes/trainer_cpu.yaml``); checkpoints chosen on validation accuracy, the test split read once.
Leakage control (``--leakage on``, the default) drops caption sentences that state the class and masks class
names (``rsmg.text.leakage``); ``off`` serves the raw human captions.

Beside the trained methods: the zero-shot caption line, which needs no training: each test image's captions
(the same ones the models read) embedded by MiniLM, averaged, and matched by cosine to the class prompts
"an aerial image of {class}".

Usage::

    RSMG_DATA_ROOT=../shared/data .venv/bin/python benchmarks/ucm_captions.py --seeds 0 --leakage on
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _common import ROOT, grid_run_args, machine, rsmg_fit, slug, write_result
from _stats import majority_reference, mean_sd, paired_cell, paired_differences, per_class_table

PIECES = ROOT / "experiments" / "captioned_scenes"
METHODS: dict[str, list[Path]] = {
    "image only": [ROOT / "experiments" / "scenes" / "model_erm.yaml"],
    "unified (fvmgn_captions)": [PIECES / "model_fvmgn_captions.yaml"],
    "text only": [PIECES / "model_caption_text.yaml"],
    "dual cross-attention": [PIECES / "model_caption_cross_attention.yaml"],
    "concat": [PIECES / "model_caption_concat.yaml"],
    "vote": [PIECES / "model_caption_vote.yaml"],
}


def run(method: str, seed: int, leakage: str, epochs: int | None, out: Path) -> tuple[Path | None, float]:
    """Train + test one cell (reused when its metrics.json exists)."""
    save = out / f"leakage_{leakage}"
    run_dir = save / slug(method) / f"seed{seed}"
    if (run_dir / "metrics.json").exists():
        return run_dir, float("nan")
    args = ["--config", str(PIECES / "data_ucm21.yaml")]
    for piece in METHODS[method]:
        args += ["--config", str(piece)]
    args += ["--config", str(ROOT / "experiments" / "scenes" / "trainer_cpu.yaml")]
    if leakage == "off":
        args += ["--data.init_args.text_transforms", "[]"]
    if epochs:
        args += ["--trainer.max_epochs", str(epochs)]
    args += [*grid_run_args(save, slug(method), seed), "--data.init_args.seed", "0"]
    t0 = time.perf_counter()
    ok = rsmg_fit(args, f"[leakage {leakage}] {method} seed {seed}")
    return (run_dir if ok else None), time.perf_counter() - t0


def zero_shot(leakage: str) -> dict[str, float]:
    """OA of matching each test image's mean caption embedding to class prompts (no training)."""
    import torch
    import torch.nn.functional as F

    from rsmg.data.scene_domains import SceneDomainDataModule
    from rsmg.text.class_texts import load_class_texts
    from rsmg.text.towers import create_text_tower

    dm = SceneDomainDataModule(
        ["ucm"], ["ucm"], class_set="ucm21", image_size=32, cache=False, test_fraction=0.1,
        val_fraction=1 / 9, captions=True, seed=0,
        text_transforms=["drop_verdicts", "mask_class_names"] if leakage == "on" else [],
    )  # fmt: skip
    dm.setup("test")
    ds = dm.test_dataset("ucm")
    tower = create_text_tower("minilm", pretrained=True, frozen=True)
    ct = load_class_texts("ucm21", list(dm.classes), [])
    names = [ct.shared[c].split(":")[0].replace("an aerial scene of ", "") for c in dm.classes]
    prompts = F.normalize(tower.encode([f"an aerial image of {n}" for n in names]).pooled, dim=-1)
    correct, n_caption = 0, 0
    assert ds.captions is not None
    for caps, label in zip(ds.captions, ds.labels.tolist(), strict=True):
        if not caps:
            continue  # no caption left: the line cannot answer (counted wrong below)
        n_caption += 1
        emb = F.normalize(tower.encode(list(caps)).pooled.mean(0, keepdim=True), dim=-1)
        correct += int(torch.argmax(emb @ prompts.T).item() == label)
    return {"oa": correct / len(ds), "with_caption": n_caption / len(ds), "n": float(len(ds))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--leakage", choices=["on", "off"], default="on")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench_ucm_captions")
    ap.add_argument("--name", default=None, help="results file under benchmarks/results/ (default derived)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    results: dict[str, dict[int, dict]] = {}
    walls: dict[str, list[float]] = {}
    for method in args.methods:
        for seed in args.seeds:
            d, wall = run(method, seed, args.leakage, args.epochs, args.out)
            walls.setdefault(method, []).append(wall)
            if d is not None:
                saved = json.loads((d / "metrics.json").read_text())
                results.setdefault(method, {})[seed] = {
                    **next(iter(saved["results"]["test"].values())),
                    "classes": saved["classes"],
                }
    zs = zero_shot(args.leakage)
    base = {s: r["oa"] * 100 for s, r in results.get("image only", {}).items()}
    lines = [
        f"# UC Merced with captions, 21 classes, leakage control {args.leakage}",
        "",
        "Command: `RSMG_DATA_ROOT=../shared/data .venv/bin/python benchmarks/ucm_captions.py --methods "
        + " ".join(f"'{m}'" for m in args.methods) + f" --seeds {' '.join(map(str, args.seeds))} --leakage "
        f"{args.leakage}`  ",
        f"Machine: {machine()}  ",
        f"Grid wall time: {(time.perf_counter() - t0) / 60:.1f} min (runs found in `--out` are reused).  ",
        "Every run: `experiments/captioned_scenes/data_ucm21.yaml` + the method's model piece + "
        "`experiments/scenes/trainer_cpu.yaml` (128 px, Lite0 stages:3 frozen, 5 epochs, lr 3e-4; the scene "
        "protocols' budget, not tuned here). Split fixed (data seed 0); model seeds as listed; checkpoint chosen "
        "on validation OA. Mean ± sample std over seeds; paired differences per seed against image only.",
        "",
        "| method | OA % | AA % | Kappa % | seeds | OA − image only (paired) | wall per run (s) |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]  # fmt: skip
    for method, by_seed in results.items():
        cells = [mean_sd([r[k] * 100 for r in by_seed.values()]) for k in ("oa", "aa", "kappa")]
        diff = "–" if method == "image only" else paired_cell(
            paired_differences({s: r["oa"] * 100 for s, r in by_seed.items()}, base)
        )  # fmt: skip
        w = [x for x in walls[method] if x == x]
        wall_cell = f"{sum(w) / len(w):.0f}" if w else "(reused)"
        lines.append(f"| {method} | {' | '.join(cells)} | {len(by_seed)} | {diff} | {wall_cell} |")
    lines += [
        f"| zero-shot captions → class prompts (no training) | {zs['oa'] * 100:.2f} | | | – | | |",
        "",
        f"Zero-shot line: {zs['with_caption'] * 100:.1f} % of the {int(zs['n'])} test images keep a caption "
        "after leakage control; the others count as wrong.",
        "",
    ]
    ref = majority_reference([next(iter(r.values())) for r in results.values()][:1]) if results else None
    if ref:
        lines += [ref, ""]
    lines += per_class_table({m: list(r.values()) for m, r in results.items()})
    name = args.name or f"captions_ucm/ucm21_leakage_{args.leakage}_seeds{''.join(map(str, args.seeds))}.md"
    write_result(name, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
