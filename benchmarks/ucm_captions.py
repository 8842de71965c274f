"""UC Merced with human captions, all 2,100 images (issue 22): image-only, text-only, fusions, the unified model.

Every method on the same pretrained towers (EfficientNet-Lite0 with ImageNet weights, stem + blocks 0-2 frozen;
frozen pretrained MiniLM), input size (128 px), split (1,680 / 210 / 210, seeded, stratified; ``--split karpathy``:
the standard split of UCM-captions' ``dataset.json``, runs and results under their own names) and budget
(``experiments/scenes/trainer_cpu.yaml``); checkpoints chosen on validation accuracy, the test split read once.
``--budgets 128:5 160:10`` fits each method at each input size and epoch count *without a test* and picks the
budget on validation OA; ``--image-size`` / ``--epochs`` then run a budget (its runs and results named apart).
``--held-out`` adds calibrated stacking (``rsmg.callbacks.CalibratedStacking``: γ from source validation logits).
Leakage control (``--leakage on``, the default) drops caption sentences that state the class and masks class
names (``rsmg.text.leakage``); ``off`` serves the raw human captions.

Beside the trained methods: the zero-shot caption line, which needs no training: each test image's captions
(the same ones the models read) embedded by MiniLM, averaged, and matched by cosine to the class prompts
"an aerial image of {class}".

Usage::

    RSMG_DATA_ROOT=../shared/data .venv/bin/python benchmarks/ucm_captions.py --seeds 0 --leakage on
    RSMG_DATA_ROOT=../shared/data .venv/bin/python benchmarks/ucm_captions.py --held-out --split karpathy --seeds 0
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import numpy as np

from _common import ROOT, grid_run_args, machine, recorded_wall, slug, timed_fit, write_result
from _reuse import check_reuse, fit_or_reuse
from _source_val import source_val_oa
from _stats import mean_sd, paired_cell, paired_differences, per_class_table, require_paired
from rsmg.cli.signature import Arg, cli

PIECES = ROOT / "experiments" / "captioned_scenes"
NET = "--model.init_args.net.init_args."
METHODS: dict[str, list[Path]] = {
    "image only": [ROOT / "experiments" / "scenes" / "model_erm.yaml"],
    "unified (fvmgn_captions)": [PIECES / "model_fvmgn_captions.yaml"],
    "text only": [PIECES / "model_caption_text.yaml"],
    "dual cross-attention": [PIECES / "model_caption_cross_attention.yaml"],
    "concat": [PIECES / "model_caption_concat.yaml"],
    "vote": [PIECES / "model_caption_vote.yaml"],
    # the unified model without its caption branch: image + MWDis + frequency pathway + class-text prototypes
    "image + class texts (fvmgn_scenes)": [ROOT / "experiments" / "scenes" / "model_fvmgn.yaml"],
}
EXTRA: dict[str, list[str]] = {
    "image + class texts (fvmgn_scenes)": [
        NET + "text.class_set", "ucm21", NET + "text.use", "shared", NET + "mwdis.same_domain_fallback", "true",
    ],
}  # fmt: skip
# methods whose classifier can name a class it never saw (class-text prototypes), for --held-out
ZERO_SHOT_METHODS = ("unified (fvmgn_captions)", "image + class texts (fvmgn_scenes)")
BUDGET_CLASHES = {  # flag -> Options field: what --budgets does not use
    "--held-out": "held_out",
    "--transfer": "transfer",
    "--image-size": "image_size",
    "--epochs": "epochs",
}
BUDGET_TOLERANCE = 0.48  # points of validation OA: one of UC Merced's 210 validation images
CALIBRATION = "--trainer.callbacks+=rsmg.callbacks.CalibratedStacking"  # gzsl.json: γ from source validation


SPLITS = {
    "seeded": "seeded stratified draw of the standard sizes (test 10 %, validation 1/9 of the rest)",
    "karpathy": "the `split` field of ucm_captions/dataset.json (experiments/captioned_scenes/split_karpathy.yaml)",
}


def split_tag(split: str) -> str:
    """The part of run folders and result names that keeps Karpathy-split runs apart from the seeded ones."""
    return "karpathy_" if split == "karpathy" else ""


def budget_tag(image_size: int | None, epochs: int | None) -> str:
    """The part of run folders and result names that keeps runs at another budget apart (empty: the pieces')."""
    return (f"{image_size}px_" if image_size else "") + (f"{epochs}ep_" if epochs else "")


def budget_args(image_size: int | None, epochs: int | None) -> list[str]:
    """Overrides of the pieces' input size and epochs (none given: the pieces' budget)."""
    size = ["--data.init_args.image_size", str(image_size)] if image_size else []
    return [*size, *(["--trainer.max_epochs", str(epochs)] if epochs else [])]


def run(
    method: str,
    seed: int,
    leakage: str,
    epochs: int | None,
    out: Path,
    held_out: bool = False,
    transfer: str | None = None,
    split: str = "seeded",
    image_size: int | None = None,
) -> tuple[Path | None, float]:
    """Train + test one cell (reused when its metrics.json exists)."""
    mode = f"transfer_{transfer}_" if transfer else ("zero_shot_" if held_out else "")
    save = out / f"{split_tag(split)}{budget_tag(image_size, epochs)}{mode}leakage_{leakage}"
    run_dir = save / slug(method) / f"seed{seed}"
    args = [*cell_args(method, leakage, held_out, transfer, split), *budget_args(image_size, epochs)]
    args += [*grid_run_args(save, slug(method), seed), "--data.init_args.seed", "0"]
    if held_out:
        args.append(CALIBRATION)
    if (run_dir / "metrics.json").exists():
        check_reuse(run_dir, args)
        return run_dir, recorded_wall(run_dir)  # NaN for a run from before walls were kept
    wall = timed_fit(args, f"[{mode}leakage {leakage}] {method} seed {seed}", run_dir)
    return (None, float("nan")) if wall is None else (run_dir, wall)


def cell_args(method: str, leakage: str, held_out: bool, transfer: str | None, split: str) -> list[str]:
    """A cell's pieces and overrides: what its fit and a later re-test of its checkpoint both read."""
    data = "data_ucm_to_aid_minitest.yaml" if transfer else "data_ucm21.yaml"
    args = ["--config", str(PIECES / data)]
    if split == "karpathy":
        args += ["--config", str(PIECES / "split_karpathy.yaml")]
    for piece in METHODS[method]:
        args += ["--config", str(piece)]
    if held_out:
        args += ["--config", str(PIECES / "zero_shot_ucm21.yaml")]
    args += ["--config", str(ROOT / "experiments" / "scenes" / "trainer_cpu.yaml"), *EXTRA.get(method, [])]
    if transfer:
        args += ["--data.init_args.class_set", transfer]
        if method in ZERO_SHOT_METHODS:  # their class texts follow the class set
            args += [NET + "text.class_set", transfer]
    if leakage == "off":
        args += ["--data.init_args.text_transforms", "[]"]
    return args


def test_without_captions(run_dir: Path) -> dict | None:
    """The run's selected checkpoint tested again with no caption at all (``eval_caption: none``)."""
    out = run_dir / "test_0" / "metrics.json"
    if not out.exists():
        ckpt = sorted((run_dir / "checkpoints").glob("best-*.ckpt"))
        if not ckpt:
            return None
        cmd = [
            *(sys.executable, "-m", "rsmg", "test", "--config", str(run_dir / "config.yaml")),
            *("--ckpt_path", str(ckpt[-1]), "--data.init_args.eval_caption", "none"),
            *("--trainer.enable_progress_bar", "false"),
        ]
        p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if p.returncode != 0 or not out.exists():
            print(f"test without captions failed for {run_dir}:\n{p.stderr[-2000:]}", flush=True)
            return None
    saved = json.loads(out.read_text())
    return next(iter(saved["results"]["test"].values()))


READS_CAPTIONS = ("unified (fvmgn_captions)", "text only", "dual cross-attention", "concat", "vote")


def transfer_report(args: Options, results: dict[str, dict[int, dict]], t0: float) -> list[str]:
    """UC Merced → AID minitest: OA with the test images' captions, and without any (same checkpoints)."""
    lines = [
        f"# UC Merced (human captions) → AID minitest (VLM captions), class set `{args.transfer}`, leakage "
        f"control {args.leakage}",
        "",
        "Command: `RSMG_DATA_ROOT=../shared/data .venv/bin/python benchmarks/ucm_captions.py --transfer "
        f"{args.transfer} --methods " + " ".join(f"'{m}'" for m in args.methods)
        + f" --seeds {' '.join(map(str, args.seeds))} --leakage {args.leakage}{options_tail(args)}`  ",
        f"Machine: {machine()}  ",
        f"Grid wall time: {(time.perf_counter() - t0) / 60:.1f} min (runs found in `--out` are reused).  ",
        f"Split: {SPLITS[args.split]}.  ",
        "Every run: `experiments/captioned_scenes/data_ucm_to_aid_minitest.yaml` + the method's model piece + "
        "`experiments/scenes/trainer_cpu.yaml`; checkpoint chosen on UC Merced validation images; the AID images "
        "are read only at test time, once with their captions and once without any (the same checkpoint). "
        "Mean ± sample std over model seeds.",
        "",
        "| method | OA % with captions | OA % without captions | AA % with captions | seeds | OA with captions − "
        f"{next(iter(results), '')} (paired) |",
        "|---|---:|---:|---:|---:|---|",
    ]  # fmt: skip
    base = {s: r["oa"] * 100 for s, r in next(iter(results.values()), {}).items()}
    for i, (method, by_seed) in enumerate(results.items()):
        oa = {s: r["oa"] * 100 for s, r in by_seed.items()}
        diff = "–" if i == 0 else paired_cell(paired_differences(oa, base))
        with_c = mean_sd(list(oa.values()))
        aa = mean_sd([r["aa"] * 100 for r in by_seed.values()])
        without = "same (reads no caption)"
        if method in READS_CAPTIONS:
            runs = [r.get("no_captions") for r in by_seed.values()]
            without = mean_sd([r["oa"] * 100 for r in runs if r]) if all(runs) else "failed"
        lines.append(f"| {method} | {with_c} | {without} | {aa} | {len(by_seed)} | {diff} |")
    # per_class_table starts with the majority-class floor
    lines += ["", *per_class_table({m: list(r.values()) for m, r in results.items()})]
    return lines


HELD_OUT = (
    "baseballdiamond",
    "denseresidential",
    "harbor",
    "overpass",
    "sparseresidential",
)  # zero_shot_ucm21.yaml


def calibrated(run_dir: Path, method: str, seed: int, args: Options) -> dict | None:
    """The run's ``gzsl.json`` (calibrated stacking); a run fitted without it is tested again with it, once.

    The re-test reads the cell's pieces as they are now (not the run's ``config.yaml``, which may hold option
    names renamed since) and writes into ``<run>/test_<k>/``.
    """
    found = sorted(run_dir.glob("gzsl.json")) + sorted(run_dir.glob("test_*/gzsl.json"))
    if not found:
        ckpt = sorted((run_dir / "checkpoints").glob("best-*.ckpt"))
        if not ckpt:
            return None
        logger = "--trainer.logger.init_args."
        cmd = [
            *(sys.executable, "-m", "rsmg", "test", *cell_args(method, args.leakage, True, None, args.split)),
            *budget_args(args.image_size, args.epochs),
            *("--seed_everything", str(seed), "--data.init_args.seed", "0", "--ckpt_path", str(ckpt[-1])),
            *(f"{logger}save_dir", str(run_dir.parents[1]), f"{logger}name", run_dir.parent.name),
            *(f"{logger}version", run_dir.name, CALIBRATION, "--trainer.enable_progress_bar", "false"),
        ]
        p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        found = sorted(run_dir.glob("test_*/gzsl.json"))
        if p.returncode != 0 or not found:
            print(f"calibrated test failed for {run_dir}:\n{p.stderr[-2000:]}", flush=True)
            return None
    return json.loads(found[0].read_text())


def zero_shot(leakage: str, held_out: bool, split: Literal["seeded", "karpathy"] = "seeded") -> dict:
    """The caption zero-shot line (no training): each test image's mean caption embedding → class prompts.

    Returns the confusion matrix over all 21 classes and the share of test images that keep a caption (an
    image without one counts as wrong: it is given the label -1).
    """
    import numpy as np
    import torch
    import torch.nn.functional as F

    from rsmg.data.scene_domains import SceneDomainDataModule
    from rsmg.text.class_texts import load_class_texts
    from rsmg.text.towers import create_text_tower

    dm = SceneDomainDataModule(
        ["ucm"], ["ucm"], class_set="ucm21", image_size=32, cache=False, test_fraction=0.1, split=split,
        val_fraction=1 / 9, captions=True, seed=0, held_out_classes=list(HELD_OUT) if held_out else None,
        text_transforms=["drop_verdicts", "mask_class_names"] if leakage == "on" else [],
    )  # fmt: skip
    dm.setup("test")
    ds = dm.test_dataset("ucm")
    tower = create_text_tower("minilm", pretrained=True, frozen=True)
    ct = load_class_texts("ucm21", list(dm.classes), [])
    names = [ct.display[c] for c in dm.classes]
    prompts = F.normalize(tower.encode([f"an aerial image of {n}" for n in names]).pooled, dim=-1)
    k = len(dm.classes)
    confusion = np.zeros((k, k), dtype=np.int64)
    n_caption = 0
    assert ds.captions is not None
    with torch.no_grad():
        for caps, label in zip(ds.captions, ds.labels.tolist(), strict=True):
            if not caps:
                continue  # no caption left after leakage control: no answer, counted wrong
            n_caption += 1
            emb = F.normalize(tower.encode(list(caps)).pooled.mean(0, keepdim=True), dim=-1)
            confusion[label, int(torch.argmax(emb @ prompts.T).item())] += 1
    missing = len(ds) - n_caption
    return {"confusion": confusion, "n": len(ds), "with_caption": n_caption / len(ds), "missing": missing,
            "classes": list(dm.classes)}  # fmt: skip


def gzsl(confusion: list[list[int]], classes: list[str], extra_wrong: dict[int, int] | None = None) -> tuple:
    """Seen accuracy, unseen accuracy and their harmonic mean H (all in %), predicting among all classes."""
    import numpy as np

    c = np.asarray(confusion)
    unseen = np.array([n in HELD_OUT for n in classes])
    rows = c.sum(axis=1).astype(float)
    for i, n in (extra_wrong or {}).items():
        rows[i] += n
    diag = np.diag(c)
    s = diag[~unseen].sum() / rows[~unseen].sum() * 100
    u = diag[unseen].sum() / rows[unseen].sum() * 100
    return s, u, (2 * s * u / (s + u) if s + u else 0.0)


def zero_shot_report(args: Options, results: dict[str, dict[int, dict]], t0: float) -> list[str]:
    """The held-out table: seen / unseen / H per method, raw and calibrated (mean ± sample std over seeds).

    Then the caption line (no training).
    """
    lines = [
        f"# UC Merced zero-shot: 5 classes held out of training, leakage control {args.leakage}, "
        f"{args.split} split",
        "",
        "Command: `RSMG_DATA_ROOT=../shared/data .venv/bin/python benchmarks/ucm_captions.py --held-out --methods "
        + " ".join(f"'{m}'" for m in args.methods) + f" --seeds {' '.join(map(str, args.seeds))} --leakage "
        f"{args.leakage}{options_tail(args)}`  ",
        f"Machine: {machine()}  ",
        f"Grid wall time: {(time.perf_counter() - t0) / 60:.1f} min (runs found in `--out` are reused).  ",
        f"Split: {SPLITS[args.split]}.  ",
        f"Held out (never trained or validated; all 100 images of each tested): {', '.join(HELD_OUT)}, fixed "
        "before any run (every fourth class alphabetically, from the third). Generalised zero-shot: every test "
        "image is classified among all 21 classes. The trained models' class-text prototypes include the held-out "
        "classes' texts during training (class-name-aware; no held-out image is seen). Calibrated rows: calibrated "
        "stacking (Chao et al., ECCV 2016), γ subtracted from the seen-class logits, γ chosen per run on its source "
        "validation logits only (at most 5 % of those seen-class images sent to an unseen class; no label read; "
        "docs/decisions.md#gzsl-calibration).",
        "",
        "| method | seen acc. % | unseen acc. % | H % | OA % | seeds |",
        "|---|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    h_cal: dict[str, dict[int, float]] = {}  # calibrated H per seed, for the paired differences
    per_class: dict[str, list[dict]] = {}
    for method, by_seed in results.items():
        trip = [gzsl(r["confusion"], r["classes"]) for r in by_seed.values()]
        cells = [mean_sd([t[i] for t in trip]) for i in range(3)]
        oa = mean_sd([r["oa"] * 100 for r in by_seed.values()])
        lines.append(f"| {method} (class-name-aware, raw) | {' | '.join(cells)} | {oa} | {len(by_seed)} |")
        cal = [r.get("gzsl") for r in by_seed.values()]
        if not all(cal):
            lines.append(f"| {method} (class-name-aware, calibrated) | failed | | | | |")
            continue
        cms = [np.asarray(next(iter(g["test"].values()))["calibrated"]["confusion"]) for g in cal]  # type: ignore[index]
        trip = [gzsl(cm.tolist(), g["classes"]) for cm, g in zip(cms, cal, strict=True)]  # type: ignore[index]
        h_cal[method] = {seed: t[2] for seed, t in zip(by_seed, trip, strict=True)}
        per_class[f"{method}, calibrated"] = [
            {"classes": g["classes"], "confusion": cm.tolist(), "per_class": np.diag(cm) / cm.sum(axis=1)}  # type: ignore[index]
            for cm, g in zip(cms, cal, strict=True)
        ]
        cells = [mean_sd([t[i] for t in trip]) for i in range(3)]
        oa = mean_sd([np.trace(cm) / cm.sum() * 100 for cm in cms])
        gamma = mean_sd([g["gamma"] for g in cal])  # type: ignore[index]
        lines.append(
            f"| {method} (class-name-aware, calibrated, γ {gamma}) | {' | '.join(cells)} | {oa} | {len(cal)} |"
        )
    zs = zero_shot(args.leakage, held_out=True, split=args.split)
    c = zs["confusion"]
    s, u, h = gzsl(c.tolist(), zs["classes"])  # images without a caption are not in the matrix: count them
    total = c.sum() + zs["missing"]
    lines += [
        f"| zero-shot captions → class prompts (no training; captioned images only) | {s:.2f} | {u:.2f} | {h:.2f} | "
        f"{c.trace() / total * 100:.2f} | – |",
        "",
        f"{zs['with_caption'] * 100:.1f} % of the {zs['n']} test images keep a caption after leakage control; in the "
        "caption line's OA the others count as wrong, its seen/unseen columns cover the captioned ones only.",
    ]  # fmt: skip
    if per_class:
        ref = next(iter(per_class.values()))[0]
        counts = np.asarray(ref["confusion"]).sum(axis=1)
        always = np.zeros((len(counts), len(counts)), dtype=int)
        always[:, int(counts.argmax())] = counts  # every test image answered with the most frequent class
        ms, mu, mh = gzsl(always.tolist(), ref["classes"])
        lines += [
            "",
            f"Always answering the most frequent test class (the reference below): seen {ms:.2f} %, "
            f"unseen {mu:.2f} %, H {mh:.2f} %.",
        ]
    if h_cal:
        first = next(iter(h_cal))
        lines += [
            "",
            "Calibrated H % per seed; paired differences against the first method and the caption line:",
            "",
        ]
        lines += [
            "| method | " + " | ".join(f"seed {k}" for k in h_cal[first]) + f" | − {first} | − caption line |"
        ]
        lines += ["|---|" + "---:|" * len(h_cal[first]) + "---|---|"]
        for method, hs in h_cal.items():
            vs_first = "–" if method == first else paired_cell(paired_differences(hs, h_cal[first]))
            vs_zs = paired_cell({k: v - h for k, v in hs.items()})
            lines.append(
                f"| {method} | {' | '.join(f'{v:.2f}' for v in hs.values())} | {vs_first} | {vs_zs} |"
            )
    return [*lines, "", *per_class_table(per_class)]


@dataclass(kw_only=True)
class Options:
    """Options of ``ucm_captions.py``.

    Attributes:
        methods: methods to run (none given: every method of the protocol)
        seeds: seeds of every method
        leakage: the leakage control of the captions
        held_out: zero-shot protocol (zero_shot_ucm21.yaml)
        transfer: UC Merced → AID minitest
        split: the UC Merced split: seeded (stratified draw, standard sizes) or karpathy (dataset.json's field)
        epochs: epochs of every fit (none: the experiment's)
        image_size: input size of every fit (none: the data piece's, 128 px)
        budgets: candidate budgets ``SIZE:EPOCHS``, cheapest first: fit each method at each without a test and
            choose on validation OA (``--image-size`` / ``--epochs`` then run the chosen one)
        out: folder of the runs
        name: results file under benchmarks/results/ (none: derived)
    """

    methods: Annotated[list[str], Arg(choices=tuple(METHODS))] = field(default_factory=list)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    leakage: Literal["on", "off"] = "on"
    held_out: bool = False
    transfer: Literal["ucm_aid", "ucm_aid2"] | None = None
    split: Literal["seeded", "karpathy"] = "seeded"
    epochs: int | None = None
    image_size: int | None = None
    budgets: list[str] = field(default_factory=list)
    out: Path = ROOT / "outputs" / "bench_ucm_captions"
    name: str | None = None

    def __post_init__(self) -> None:
        for budget in self.budgets:
            parse_budget(budget)  # refuse a malformed budget before any fit
        clash = [f for f, on in BUDGET_CLASHES.items() if self.budgets and getattr(self, on)]
        if clash:
            raise SystemExit(
                f"--budgets fits image-only-style cells at each listed budget; it ignores {', '.join(clash)}: "
                "leave them out (run the chosen budget afterwards with --image-size and --epochs)"
            )
        if not self.methods:  # the protocol's methods
            default = [m for m in METHODS if m not in ("concat", "vote")] if self.transfer else list(METHODS)
            self.methods = list(ZERO_SHOT_METHODS) if self.held_out else default


def options_tail(args: Options) -> str:
    """The ``--split`` / ``--image-size`` / ``--epochs`` part of a recorded command (empty for the defaults)."""
    split = f" --split {args.split}" if args.split != "seeded" else ""
    size = f" --image-size {args.image_size}" if args.image_size else ""
    return split + size + (f" --epochs {args.epochs}" if args.epochs else "")


def budget_words(args: Options) -> str:
    """What the runs' budget is and where it came from, for a results file's header."""
    if not (args.image_size or args.epochs):
        return "128 px, Lite0 stages:3 frozen, 5 epochs, lr 3e-4; the scene protocols' budget, not tuned here"
    size = f"{args.image_size} px" if args.image_size else "the data piece's 128 px"
    epochs = f"{args.epochs} epochs" if args.epochs else "the trainer piece's 5 epochs"
    return (
        f"{size}, Lite0 stages:3 frozen, {epochs}, lr 3e-4, set by `--image-size` / `--epochs`; `--budgets` "
        "compares budgets on validation (`captions_ucm/budget_*.md` says which it chose)"
    )


def parse_budget(text: str) -> tuple[int, int]:
    """``"160:10"`` → (160, 10): input size in px, epochs."""
    size, _, epochs = text.partition(":")
    if not (size.isdigit() and epochs.isdigit()):
        raise SystemExit(f"--budgets: {text!r} is not SIZE:EPOCHS (for example 160:10)")
    return int(size), int(epochs)


def budget_run(method: str, budget: str, seed: int, args: Options) -> Path | None:
    """Fit one method at one budget *without a test* (its validation OA chooses), or reuse it."""
    size, epochs = parse_budget(budget)
    save = args.out / f"{split_tag(args.split)}budget_leakage_{args.leakage}" / slug(method)
    name = f"{size}px_{epochs}ep"
    run_dir = save / name / f"seed{seed}"
    fit = [*cell_args(method, args.leakage, False, None, args.split), *budget_args(size, epochs)]
    fit += [*grid_run_args(save, name, seed, test=False), "--data.init_args.seed", "0"]
    return fit_or_reuse(run_dir, fit, f"[budget {budget}] {method} seed {seed}")


def budget_report(args: Options, t0: float) -> list[str]:
    """Fit every method at every budget untested; the table of validation OA and the budget the rule picks."""
    from scene_budget import choose

    lines = [
        f"# UC Merced budget chosen on validation (no test image read), leakage control {args.leakage}",
        "",
        "Command: `RSMG_DATA_ROOT=../shared/data .venv/bin/python benchmarks/ucm_captions.py --budgets "
        + " ".join(args.budgets) + " --methods " + " ".join(f"'{m}'" for m in args.methods)
        + f" --seeds {' '.join(map(str, args.seeds))} --leakage {args.leakage}{options_tail(args)}`  ",
        f"Machine: {machine()}  ",
        f"Grid wall time: {(time.perf_counter() - t0) / 60:.1f} min (runs found in `--out` are reused).  ",
        f"Split: {SPLITS[args.split]}.  ",
        "Every run: the method's cell (pieces as in `ucm21_*` results) with `--data.init_args.image_size SIZE "
        "--trainer.max_epochs EPOCHS` and `--test_after_fit false`: **no test number was computed**. Score: the "
        "best epoch's validation OA (`val/oa`, what checkpoint selection keeps; 210 validation images, one image "
        f"= {100 / 210:.2f} points). Rule, fixed before the runs: the budget with the best mean over seeds, except "
        f"that a cheaper one (listed earlier) within {BUDGET_TOLERANCE} points of it wins. Mean ± sample std; "
        "paired differences per seed against the first budget.",
        "",
    ]  # fmt: skip
    for method in args.methods:
        scores: dict[str, dict[int, float]] = {}
        walls: dict[str, list[float]] = {}
        for budget in args.budgets:
            for seed in args.seeds:
                d = budget_run(method, budget, seed, args)
                if d is not None:
                    scores.setdefault(budget, {})[seed] = source_val_oa(d)
                    walls.setdefault(budget, []).append(recorded_wall(d))
        require_paired({b: scores.get(b, {}) for b in args.budgets}, f"the budgets of {method}")
        first = args.budgets[0]
        lines += [
            f"## {method}",
            "",
            "| budget (px:epochs) | best validation OA % | seeds | − "
            + first
            + " (paired) | wall per run (s) |",
            "|---|---:|---:|---|---:|",
        ]
        for budget, by_seed in scores.items():
            diff = "–" if budget == first else paired_cell(paired_differences(by_seed, scores.get(first, {})))
            w = [x for x in walls[budget] if x == x]
            wall = f"{sum(w) / len(w):.0f}" if w else "–"
            lines.append(
                f"| {budget} | {mean_sd(list(by_seed.values()))} | {len(by_seed)} | {diff} | {wall} |"
            )
        cost = {b: i for i, b in enumerate(args.budgets)}
        chosen = choose({b: list(v.values()) for b, v in scores.items()}, cost, BUDGET_TOLERANCE)
        size, epochs = parse_budget(chosen)
        lines += [
            "",
            f"**Chosen on validation:** {chosen} (run it with `--image-size {size} --epochs {epochs}`).",
            "",
        ]
    return lines


def result_name(args: Options) -> str:
    """The results file under ``benchmarks/results/``: ``--name``, else one per protocol, split and seeds."""
    if args.name:
        return args.name
    seeds = "".join(map(str, args.seeds))
    tail = f"leakage_{args.leakage}_seeds{seeds}.md"
    k = split_tag(args.split) + budget_tag(args.image_size, args.epochs)
    if args.budgets:
        return f"captions_ucm/budget_{split_tag(args.split)}{tail}"
    if args.transfer:
        return f"captions_ucm/ucm_to_aid_minitest_{args.transfer}_{k}{tail}"
    return f"captions_ucm/ucm21_{k}{'zero_shot_' if args.held_out else ''}{tail}"


def main(args: Options) -> None:
    t0 = time.perf_counter()
    if args.budgets:
        write_result(result_name(args), "\n".join(budget_report(args, t0)) + "\n")
        return
    results: dict[str, dict[int, dict]] = {}
    walls: dict[str, list[float]] = {}
    for method in args.methods:
        for seed in args.seeds:
            d, wall = run(
                method,
                seed,
                args.leakage,
                args.epochs,
                args.out,
                args.held_out,
                args.transfer,
                args.split,
                args.image_size,
            )
            walls.setdefault(method, []).append(wall)
            if d is not None:
                saved = json.loads((d / "metrics.json").read_text())
                results.setdefault(method, {})[seed] = {
                    **next(iter(saved["results"]["test"].values())),
                    "classes": saved["classes"],
                }
                if args.transfer and method in READS_CAPTIONS:
                    results[method][seed]["no_captions"] = test_without_captions(d)
                if args.held_out:
                    results[method][seed]["gzsl"] = calibrated(d, method, seed, args)
    if args.transfer:
        lines = transfer_report(args, results, t0)
        write_result(result_name(args), "\n".join(lines) + "\n")
        return
    if args.held_out:
        lines = zero_shot_report(args, results, t0)
        write_result(result_name(args), "\n".join(lines) + "\n")
        return
    zs = zero_shot(args.leakage, held_out=False, split=args.split)
    zs_oa = np.trace(zs["confusion"]) / zs["n"] * 100
    base = {s: r["oa"] * 100 for s, r in results.get("image only", {}).items()}
    lines = [
        f"# UC Merced with captions, 21 classes, leakage control {args.leakage}",
        "",
        "Command: `RSMG_DATA_ROOT=../shared/data .venv/bin/python benchmarks/ucm_captions.py --methods "
        + " ".join(f"'{m}'" for m in args.methods) + f" --seeds {' '.join(map(str, args.seeds))} --leakage "
        f"{args.leakage}{options_tail(args)}`  ",
        f"Machine: {machine()}  ",
        f"Grid wall time: {(time.perf_counter() - t0) / 60:.1f} min (runs found in `--out` are reused).  ",
        f"Split: {SPLITS[args.split]}.  ",
        "Every run: `experiments/captioned_scenes/data_ucm21.yaml` + the method's model piece + "
        f"`experiments/scenes/trainer_cpu.yaml` ({budget_words(args)}). Split fixed (data seed 0); model seeds "
        "as listed; checkpoint chosen on validation OA. Mean ± sample std over seeds; paired differences per seed "
        "against image only.",
        "",
        "| method | OA % | AA % | Kappa % | seeds | OA − image only (paired) | wall per run (s), when recorded |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]  # fmt: skip
    for method, by_seed in results.items():
        cells = [mean_sd([r[k] * 100 for r in by_seed.values()]) for k in ("oa", "aa", "kappa")]
        diff = "–" if method == "image only" else paired_cell(
            paired_differences({s: r["oa"] * 100 for s, r in by_seed.items()}, base)
        )  # fmt: skip
        w = [x for x in walls[method] if x == x]
        wall_cell = f"{sum(w) / len(w):.0f}" if w else "(not recorded)"
        lines.append(f"| {method} | {' | '.join(cells)} | {len(by_seed)} | {diff} | {wall_cell} |")
    lines += [
        f"| zero-shot captions → class prompts (no training) | {zs_oa:.2f} | | | – | | |",
        "",
        f"Zero-shot line: {zs['with_caption'] * 100:.1f} % of the {int(zs['n'])} test images keep a caption "
        "after leakage control; the others count as wrong.",
        "",
    ]
    lines += per_class_table({m: list(r.values()) for m, r in results.items()})
    write_result(result_name(args), "\n".join(lines) + "\n")


if __name__ == "__main__":
    main(cli(Options, description=__doc__))
