r"""Indian Pines in-scene accuracy: RBF-SVM on spectra, spectral-spatial CNN and FVMGN, two kinds of split.

Real data: the whole AVIRIS cube of the shared pack (145x145x200, 16 classes, catalog entry ``indian_pines``).
Split kinds (``experiments/indian_pines/``):

* ``disjoint``: whole 16x16 tiles for test, a patch_size // 2 buffer dropped around them, validation tiles
  carved from the rest the same way (no training patch contains a test pixel; the honest protocol);
* ``random``: the common per-pixel split (35 % train, 20 % of it validation, the rest test): **optimistic**,
  as test pixels lie inside training patches. Reported beside, never instead.

Methods: ``rbf-svm`` (:func:`svm_spectra`, scikit-learn, per-pixel spectra, C and gamma chosen on the
validation pixels only), ``concat cnn`` and ``fvmgn`` (``rsmg fit`` with the YAML pieces, checkpoint chosen on
validation OA). Every method of a seed sees the same split (``data.seed`` = the seed). The best baseline, the
one the paired differences are taken against, is the baseline with the highest mean *validation* OA: nothing
is chosen on test numbers.

Usage::

    OMP_NUM_THREADS=1 RSMG_DATA_ROOT=../shared/data .venv/bin/python benchmarks/indian_pines.py \
        --splits disjoint --methods rbf-svm 'concat cnn' fvmgn --seeds 0 1 2 --epochs 15
"""

from __future__ import annotations

import csv
import json
import shutil
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import yaml

from _common import (
    RESULTS,
    ROOT,
    command,
    grid_run_args,
    machine,
    recorded_wall,
    slug,
    timed_fit,
    write_result,
)
from _reuse import check_reuse
from _stats import mean_sd, paired_cell, paired_differences, per_class_table
from rsmg.cli.signature import Arg, cli

PIECES = ROOT / "experiments" / "indian_pines"
SPLITS = {"disjoint": "data_disjoint.yaml", "random": "data_random.yaml"}
SPLIT_LABEL = {"disjoint": "spatially disjoint (honest)", "random": "random per-pixel (optimistic)"}
NET = "--model.init_args.net.init_args."
# network method → (model piece, overrides); the ablations switch one FVMGN part off each
NETS: dict[str, tuple[str, list[str]]] = {
    "concat cnn": ("model_concat_cnn.yaml", []),
    "fvmgn": ("model_fvmgn.yaml", []),
    "fvmgn w/o MWDis": ("model_fvmgn.yaml", [NET + "mwdis.enabled", "false"]),
    "fvmgn image-only (no text)": ("model_fvmgn.yaml", [NET + "text.use", "none"]),
    "fvmgn w/o frequency branch": ("model_fvmgn.yaml", [NET + "frequency.enabled", "false"]),
    "fvmgn single-scale alignment": ("model_fvmgn.yaml", [NET + "alignment.multiscale", "false"]),
}
METHODS = ("rbf-svm", *NETS)
BASELINES = ("rbf-svm", "concat cnn")
SVM_C = (1.0, 10.0, 100.0, 1000.0)
SVM_GAMMA = (
    0.1,
    1.0,
    10.0,
)  # multiples of scikit-learn's "scale" gamma, 1 / (bands * variance) = 1 / bands here


def datamodule(split: str, seed: int, root: str | None = None, **overrides: Any) -> Any:
    """The ``CrossDomainDataModule`` of a split kind's YAML piece (same split as the ``rsmg fit`` runs), set up."""
    from rsmg.data.datamodule import CrossDomainDataModule

    piece = yaml.safe_load((PIECES / SPLITS[split]).read_text())["data"]["init_args"]
    dm = CrossDomainDataModule(**{**piece, "seed": seed, "root": root, **overrides})
    dm.setup("fit")
    return dm


def svm_spectra(dm: Any, *, max_train: int | None = None, seed: int = 0) -> dict[str, Any]:
    """RBF-SVM on per-pixel spectra of an in-scene datamodule: fit on train, choose C / gamma on val, test once.

    Spectra are z-scored with the training pixels' statistics (the datamodule's, computed on training pixels
    only). Every (C, gamma) of :data:`SVM_C` x :data:`SVM_GAMMA` is fitted on the training pixels and scored on
    the validation pixels; the best validation OA wins (ties: the first, i.e. smaller C, smaller gamma) and only
    that model predicts the test pixels.

    Args:
        dm: a set-up ``CrossDomainDataModule`` whose single source is also its single target, HSI only.
        max_train: subsample the training pixels (stratified by the seeded order) for a quick check.
        seed: seed of that subsample.

    Returns:
        ``oa`` / ``aa`` / ``kappa`` / ``per_class`` / ``n`` / ``confusion`` as in ``metrics.json``, plus
        ``classes``, ``val_oa``, ``C``, ``gamma``.
    """
    import torch
    from sklearn.svm import SVC

    from rsmg.metrics import metrics_from_confusion

    (name,) = dm.sources
    p = dm._prepared[name]
    mean, std = dm.stats["hsi"]
    cube = p.scene.modalities["hsi"].reshape(len(mean), -1)

    def xy(pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = (cube[:, pos].T - np.asarray(mean)[None]) / np.asarray(std)[None]
        return x.astype(np.float64), p.class_map[p.scene.labels.ravel()[pos]]

    train = p.train
    if max_train is not None and len(train) > max_train:
        train = np.sort(np.random.default_rng(seed).permutation(train)[:max_train])
    (xt, yt), (xv, yv), (xs, ys) = xy(train), xy(p.val), xy(p.test)
    best: tuple[float, float, float, Any] | None = None
    for c in SVM_C:
        for g in SVM_GAMMA:
            model = SVC(C=c, gamma=g / xt.shape[1], kernel="rbf").fit(xt, yt)
            val_oa = float((model.predict(xv) == yv).mean())
            if best is None or val_oa > best[0]:
                best = (val_oa, c, g, model)
    assert best is not None
    val_oa, c, g, model = best
    k = dm.num_classes
    cm = np.bincount(ys * k + model.predict(xs), minlength=k * k).reshape(k, k)
    out = metrics_from_confusion(torch.from_numpy(cm))
    return {
        **out,
        "confusion": cm.tolist(),
        "classes": list(dm.classes),
        "val_oa": val_oa,
        "C": c,
        "gamma": g,
    }


def fit_args(split: str, method: str, epochs: int) -> list[str]:
    """The ``rsmg fit`` arguments of one network cell (before run directory and seeds)."""
    model, overrides = NETS[method]
    pieces = [SPLITS[split], model, "trainer_cpu.yaml"]
    return [
        *(a for p in pieces for a in ("--config", str(PIECES / p))),
        *overrides,
        "--trainer.max_epochs",
        str(epochs),
    ]


def best_val_oa(run_dir: Path) -> float:
    """The validation OA of the checkpoint ModelCheckpoint kept (the maximum over epochs of ``val/oa``)."""
    with (run_dir / "metrics.csv").open() as f:
        vals = [float(r["val/oa"]) for r in csv.DictReader(f) if r.get("val/oa")]
    return max(vals)


def run_net(split: str, method: str, seed: int, epochs: int, out: Path) -> dict[str, Any] | None:
    """Train + test one network cell (reused when its metrics.json exists)."""
    save = out / split
    run_dir = save / slug(method) / f"seed{seed}"
    args = [*fit_args(split, method, epochs), *grid_run_args(save, slug(method), seed)]
    if (run_dir / "metrics.json").exists():
        check_reuse(run_dir, args)
        wall: float | None = recorded_wall(run_dir)  # NaN for a run trained before the record
    else:
        wall = timed_fit(args, f"[{split}] {method} seed {seed}", run_dir)
        if wall is None:
            return None
    saved = json.loads((run_dir / "metrics.json").read_text())
    test = next(iter(saved["results"]["test"].values()))
    return {**test, "classes": saved["classes"], "val_oa": best_val_oa(run_dir), "wall": wall, "dir": run_dir}


def run_svm(split: str, seed: int, root: str | None) -> dict[str, Any]:
    """One SVM cell on the same split as the networks of that seed."""
    t0 = time.perf_counter()
    res = svm_spectra(datamodule(split, seed, root))
    return {**res, "wall": time.perf_counter() - t0}


def coverage_lines(split: str, seeds: list[int], root: str | None) -> list[str]:
    """Pixels per class in train / val / test for each seed: which classes a split can test at all."""
    lines = ["| seed | part | " + " | ".join(str(i) for i in range(1, 17)) + " | total |",
             "|---|---|" + "---:|" * 17]  # fmt: skip
    for seed in seeds:
        counts = datamodule(split, seed, root).class_counts()["indian_pines"]
        for part in ("train", "val", "test"):
            lines.append(
                f"| {seed} | {part} | " + " | ".join(map(str, counts[part])) + f" | {sum(counts[part])} |"
            )
    return lines


def split_section(
    split: str, res: dict[str, dict[int, dict]], seeds: list[int], root: str | None
) -> list[str]:
    """One split kind: methods with spread, paired differences against the best baseline, per-class table."""
    val = {m: statistics.mean(r["val_oa"] for r in rs.values()) for m, rs in res.items() if rs}
    baselines = [m for m in BASELINES if m in val]
    best = max(baselines, key=lambda m: val[m]) if baselines else None
    ref = {s: r["oa"] * 100 for s, r in res.get(best, {}).items()} if best else {}
    lines = [
        f"## {split}: {SPLIT_LABEL[split]}",
        "",
        f"Best baseline by mean validation OA: **{best}**"
        + (f" ({val[best] * 100:.2f} %)" if best else "")
        + ".",
        "",
        f"| method | OA % | AA % | Kappa % | val OA % | seeds | OA − {best} per seed (paired) | wall per run (s) |",
        "|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for method, by_seed in res.items():
        if not by_seed:
            lines.append(f"| {method} | failed | | | | 0 | | |")
            continue
        cells = [mean_sd([r[k] * 100 for r in by_seed.values()]) for k in ("oa", "aa", "kappa", "val_oa")]
        diff = "–" if method == best else paired_cell(
            paired_differences({s: r["oa"] * 100 for s, r in by_seed.items()}, ref)
        )  # fmt: skip
        walls = [
            r["wall"] for r in by_seed.values() if r["wall"] == r["wall"]
        ]  # NaN: trained before the record
        wall = f"{statistics.mean(walls):.0f}" if walls else "(not recorded)"
        lines.append(f"| {method} | {' | '.join(cells)} | {len(by_seed)} | {diff} | {wall} |")
    svm = res.get("rbf-svm", {})
    if svm:
        chosen = ", ".join(f"seed {s}: C={r['C']:g}, gamma={r['gamma']:g}/bands" for s, r in svm.items())
        lines += ["", f"SVM hyper-parameters chosen on validation OA: {chosen}."]
    lines += ["", *per_class_table({m: list(r.values()) for m, r in res.items()})]
    lines += ["Class coverage (pixels per class id 1-16, see the catalog's class order):", ""]
    return [*lines, *coverage_lines(split, seeds, root), ""]


@dataclass(kw_only=True)
class Options:
    """Options of ``indian_pines.py``.

    Attributes:
        splits: split kinds to run (``disjoint``: the honest one; ``random``: optimistic, reported beside)
        methods: methods to run on every split
        seeds: seeds of the split and the model
        epochs: max_epochs of the network runs
        root: data root (default $RSMG_DATA_ROOT)
        out: folder of the network runs (a run found there is reused)
        name: results file benchmarks/results/<name>.md
    """

    splits: Annotated[list[str], Arg(choices=tuple(SPLITS))] = field(default_factory=lambda: list(SPLITS))
    methods: Annotated[list[str], Arg(choices=METHODS)] = field(default_factory=lambda: list(METHODS))
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    epochs: int = 10
    root: str | None = None
    out: Path = ROOT / "outputs" / "bench_indian_pines"
    name: str = "indian_pines/grid"


def main(args: Options) -> None:
    """Run (or reuse) every cell of the grid, then write the results file and copy the first seed's maps."""
    t0 = time.perf_counter()
    grid: dict[str, dict[str, dict[int, dict]]] = {}
    for split in args.splits:
        grid[split] = {m: {} for m in args.methods}
        for method in args.methods:
            for seed in args.seeds:
                r = (run_svm(split, seed, args.root) if method == "rbf-svm"
                     else run_net(split, method, seed, args.epochs, args.out))  # fmt: skip
                if r is not None:
                    grid[split][method][seed] = r
    lines = [
        "# Indian Pines (AVIRIS 1992): in-scene accuracy, spatially disjoint vs random per-pixel split",
        "",
        f"Command: `OMP_NUM_THREADS=1 {command()}`  ",
        f"Machine: {machine()}  ",
        f"Grid wall time: {(time.perf_counter() - t0) / 60:.1f} min (network runs found in `--out` are reused).  ",
        f"Networks: {args.epochs} epochs (`experiments/indian_pines/trainer_cpu.yaml`, --epochs), 7x7 patches, "
        "checkpoint with the best validation OA; SVM: per-pixel spectra, C in "
        f"{list(SVM_C)}, gamma in {list(SVM_GAMMA)} / bands, chosen on validation OA. "
        f"Mean ± sample std (ddof = 1) over seeds {args.seeds} (each seed: its own split and model seed, the same "
        "for every method); paired differences per seed. Nothing was chosen on test numbers.",
        "",
    ]
    for split in args.splits:
        lines += split_section(split, grid[split], args.seeds, args.root)
    out_dir = RESULTS / Path(args.name).parent
    out_dir.mkdir(parents=True, exist_ok=True)
    maps = []
    for split in args.splits:
        for method in NETS:
            first = grid[split].get(method, {}).get(min(args.seeds))
            src = first["dir"] / "figures" / "map_indian_pines.png" if first else None
            if src is not None and src.is_file():
                dst = out_dir / f"map_{split}_{slug(method)}_seed{min(args.seeds)}.png"
                shutil.copyfile(src, dst)
                maps.append(f"![{method}, {split}, seed {min(args.seeds)}]({dst.name})")
    if maps:
        lines += ["## Classification maps (test pixels; the run's figure callback)", "", *maps, ""]
    write_result(f"{args.name}.md", "\n".join(lines))


if __name__ == "__main__":
    main(cli(Options, description=__doc__))
