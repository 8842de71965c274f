"""FVMGN, its ablations and the concat baseline on every protocol runnable with the shared data.

Each (protocol, method, seed) is one ``rsmg fit ... --test_after_fit true`` run (same data, same protocol,
model selection on source validation only); the per-domain metrics.json files are aggregated into mean ± std
tables in ``benchmarks/results/fvmgn_accuracy/ablations.md``. Runs already finished are reused (delete ``--out`` to
start again), so the script can be interrupted and resumed.

Every protocol's table (issue 21): mean ± sample std (ddof = 1) over seeds, each seed's OA minus the concat
CNN's with the same seed (paired: same split and target sample), whether the runs were inductive or
transductive (their ``metrics.json``), the wall time each run took when it was trained (``bench_wall_s.txt``
beside it; runs older than that record say so), then the majority-class floor and per-class accuracy.

Usage::

    RSMG_DATA_ROOT=../shared/data .venv/bin/python benchmarks/fvmgn_accuracy.py            # full grid, 3 seeds
    RSMG_DATA_ROOT=../shared/data .venv/bin/python benchmarks/fvmgn_accuracy.py --seeds 42 --epochs 10 \
        --methods baseline fvmgn --protocols trento_to_muufl

The ``paper_*`` protocols are the paper's HSI + LiDAR settings (``experiments/data/paper_*.yaml``). They need the
benchmark cubes, which the shared data pack lacks: without them each is reported as *not run* with the files
that are missing and the ``rsmg download`` command that fetches them; with them (``--epochs 100`` for the
configs' own budget) they run like every other protocol.
"""

from __future__ import annotations

import shlex
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from _common import (
    BASELINE_LIDAR,
    FVMGN_LIDAR,
    ROOT,
    config_args,
    grid_run_args,
    machine,
    recorded_wall,
    slug,
    timed_fit,
    write_result,
)
from _reuse import check_reuse
from _stats import majority_reference, mean_sd, paired_cell, paired_differences, per_class_table
from rsmg.cli.signature import Arg, cli
from rsmg.data.catalog import missing_files
from rsmg.report.runs import read_run

GRID_RESULTS = "fvmgn_accuracy/ablations.md"  # the full grid; --results names a partial one
# each protocol's FVMGN setting as its experiments/ pieces (data, model, trainer)
FVMGN = FVMGN_LIDAR
BASE = BASELINE_LIDAR
HOUSTON = (
    "experiments/data/houston2013_vectors.yaml",
    "experiments/model/fvmgn_houston2013_vectors.yaml",
    "experiments/trainer/houston2013_vectors.yaml",
)
SALINAS = (
    "experiments/data/salinas_a.yaml",
    "experiments/model/fvmgn_salinas_a.yaml",
    "experiments/trainer/salinas_a.yaml",
)
PAPER_PIECES = (
    "experiments/model/fvmgn_paper.yaml",
    "experiments/trainer/paper.yaml",
)  # after data/paper_*.yaml
NET = "--model.init_args.net.init_args."


def concat_net(**inherited: object) -> list[str]:
    """The override that makes a protocol's FVMGN config train the concat-CNN baseline instead.

    ``inherited``: the ConcatCNN options that config's flat FVMGN options used to set. jsonargparse keeps the
    ``init_args`` a new ``class_path`` also accepts, so until FVMGN's options were nested (2026-12) its ``width``,
    ``mwdis_p`` and ``mwdis_same_domain_fallback`` reached the baseline; they are written out so that every
    baseline row is still the model its results were run with (docs/decisions.md#fvmgn-options). The paper
    protocols' baseline inherited MWDis (p = 0.5) that way; it no longer does (no such row had been run).
    """
    args = ", ".join(f"{k}: {str(v).lower() if isinstance(v, bool) else v}" for k, v in inherited.items())
    init = f", init_args: {{{args}}}" if args else ""
    return ["--model.init_args.net", f"{{class_path: rsmg.models.baseline.ConcatCNN{init}}}"]


# SFIE's plain trunk: stems, residual conv blocks and fusion, none of FVMGN's parts (MWDis first: [2:] keeps it)
TRUNK_ONLY = [
    NET + "mwdis.enabled",
    "false",
    NET + "frequency.enabled",
    "false",
    NET + "sfie.global_blocks",
    "false",
]
TRUNK_ONLY += [NET + "text.use", "none"]
TRUNK_1_SCALE = [*TRUNK_ONLY, NET + "sfie.scales", "1"]
# method -> (which model: the protocol's "fvmgn" config or its "baseline", extra CLI arguments)
METHODS: dict[str, tuple[str, list[str]]] = {
    "baseline (concat CNN)": ("baseline", []),
    "fvmgn": ("fvmgn", []),
    "fvmgn image-only (no text)": ("fvmgn", [NET + "text.use", "none"]),
    # the CE on the resampled view: the LiDAR config's value until issue 21 chose `original` on source validation
    # (results/source_choices/), the paper configs' (and the option default, the paper's reading)
    "fvmgn, CE on resampled view": ("fvmgn", [NET + "mwdis.logits", "resampled"]),
    "fvmgn w/o MWDis": ("fvmgn", [NET + "mwdis.enabled", "false"]),
    "fvmgn w/o frequency branch": ("fvmgn", [NET + "frequency.enabled", "false"]),
    "fvmgn FFT frequency branch": ("fvmgn", [NET + "frequency.kind", "fft"]),
    "fvmgn FFT amplitude+phase branch": ("fvmgn", [NET + "frequency.kind", "fft_phase"]),
    "fvmgn w/o global (attention) blocks": ("fvmgn", [NET + "sfie.global_blocks", "false"]),
    "fvmgn MWDis on stem features": ("fvmgn", [NET + "mwdis.at", "stem"]),
    "fvmgn MWDis detail-band swap": ("fvmgn", [NET + "mwdis.high_swap", "true"]),
    # donors of the receiver's class only: the LL statistics of a pixel patch carry class signal (its height)
    "fvmgn MWDis same-class donors": ("fvmgn", [NET + "mwdis.donor_class", "same"]),
    "fvmgn 1 attention head": ("fvmgn", [NET + "sfie.attn_heads", "1"]),
    "fvmgn 2 attention heads": ("fvmgn", [NET + "sfie.attn_heads", "2"]),
    "fvmgn 4 attention heads at every scale (the default until 2026-11-30)": (
        "fvmgn",
        [NET + "sfie.attn_heads", "4"],
    ),
    "fvmgn attention keys/values pooled 2× at scale 1": ("fvmgn", [NET + "sfie.attn_sr_ratios", "[2, 1]"]),
    "fvmgn shared texts only": ("fvmgn", [NET + "text.use", "shared"]),
    "fvmgn proprietary texts only": ("fvmgn", [NET + "text.use", "proprietary"]),
    "fvmgn single-scale alignment": ("fvmgn", [NET + "alignment.multiscale", "false"]),
    "fvmgn KL text-similarity alignment": ("fvmgn", [NET + "alignment.loss", "kl"]),
    # where the gap to the concat CNN comes from: SFIE's plain trunk (stem + residual conv blocks + fusion), then
    # FVMGN's parts added back one at a time
    "SFIE trunk only, 1 scale (no MWDis, frequency, attention, texts)": (
        "fvmgn",
        [*TRUNK_ONLY, NET + "sfie.scales", "1"],
    ),
    "SFIE trunk only, 2 scales": ("fvmgn", TRUNK_ONLY),
    # is it the LayerNorm on the fused embedding (scale-invariant: drops the feature vector's magnitude)?
    "SFIE trunk only, 1 scale, no fusion LayerNorm": (
        "fvmgn",
        [*TRUNK_ONLY, NET + "sfie.scales", "1", NET + "sfie.fuse_norm", "false"],
    ),
    "SFIE trunk + MWDis, 1 scale": ("fvmgn", [*TRUNK_ONLY[2:], NET + "sfie.scales", "1"]),
    "fvmgn 1 scale": ("fvmgn", [NET + "sfie.scales", "1"]),
    # the stem's first layer: a 1×1 conv + norm + GELU (the default) on 1–2 LiDAR rasters thresholds absolute
    # height / intensity; stem="auto" starts LiDAR stems with a 3×3 conv instead (HSI keeps its band projection)
    "SFIE trunk only, 1 scale, spatial stem": ("fvmgn", [*TRUNK_1_SCALE, NET + "sfie.stem", "spatial"]),
    "fvmgn, auto stems (3×3 first layer on LiDAR)": ("fvmgn", [NET + "sfie.stem", "auto"]),
    # or its depth / receptive field? The 1-scale trunk has 3 spatial 3×3 convs (7×7 receptive field): so does this
    "baseline, 3 conv blocks (7×7 receptive field, as SFIE's 1-scale trunk)": (
        "baseline",
        [NET + "depth", "3"],
    ),
    # checkpoint selection on spatially disjoint source validation (whole 16-px tiles, a patch_size - 1 buffer)
    # instead of random pixels whose patches overlap training patches; 16 px chosen on source pixel counts only
    # (Trento keeps 451 of 635 pool pixels for training with 147 validated, 32 px would keep 311)
    "baseline, spatially disjoint validation (16-px tiles)": (
        "baseline",
        ["--data.init_args.val_split", "blocks:16"],
    ),
    "fvmgn, spatially disjoint validation (16-px tiles)": (
        "fvmgn",
        ["--data.init_args.val_split", "blocks:16"],
    ),
    # AdamW without weight decay on biases, norm scales / shifts and the learnable temperature (timm's
    # filter_bias_and_bn, open_clip's exclusion); every other row decays all trainable parameters
    "baseline, norms and biases not decayed": (
        "baseline",
        ["--model.init_args.decay_norms_and_biases", "false"],
    ),
    "fvmgn, norms, biases and temperature not decayed": (
        "fvmgn",
        ["--model.init_args.decay_norms_and_biases", "false"],
    ),
    # closed-set classes: only names the target also has (MUUFL -> Trento drops grass and water from training and
    # from the answers); a no-op where the sources have no class the target lacks (those protocols `skip` them)
    "baseline, closed-set classes (sources and targets)": (
        "baseline",
        ["--data.init_args.class_scope", "sources_and_targets"],
    ),
    "fvmgn, closed-set classes (sources and targets)": (
        "fvmgn",
        ["--data.init_args.class_scope", "sources_and_targets"],
    ),
    # and the other way round: FVMGN's MWDis (its configs' p = 0.5, single-source donors) on the concat CNN
    "baseline + MWDis (resampled inputs)": (
        "baseline",
        [NET + "mwdis_p", "0.5", NET + "mwdis_same_domain_fallback", "true"],
    ),
}
SHORT = {"baseline (concat CNN)": "baseline", "fvmgn": "fvmgn"}
BASELINE = "baseline (concat CNN)"  # every row's paired differences are taken against it
DEFAULT_OUT = ROOT / "outputs" / "bench_fvmgn"
# rows that became another row: head width 16 (2 / 4 heads at 32 / 64 channels, as Swin / PVT keep the head width
# fixed) is FVMGN's default since 2026-11-30, so this row would train "fvmgn" a second time; older results files'
# commands still run and show its runs under "fvmgn"
ALIASES = {"fvmgn 2/4 attention heads per scale (head width 16)": "fvmgn"}


CLOSED_SET = frozenset(m for m in METHODS if "closed-set classes" in m)


@dataclass(frozen=True)
class Protocol:
    """One runnable protocol: the FVMGN config pieces, how the baseline differs, data overrides, the test domain.

    ``cross_scene`` protocols take ``--epochs`` and ``--target-split`` from the command line; in-scene ones keep
    their configs' epochs and test on the held-out rest of the scene. ``skip`` lists ablations that are no-ops
    in the protocol's config (e.g. w/o MWDis when the config has MWDis off), so no row duplicates another.
    ``needs`` names the datasets whose HSI and LiDAR files must be present (the paper settings' cubes).
    """

    fvmgn: tuple[str, ...]
    baseline: list[str]
    data: list[str]
    target: str
    cross_scene: bool
    description: str
    skip: frozenset[str] = frozenset()
    needs: tuple[str, ...] = ()


# LiDAR height only: the uncalibrated intensity of the two surveys (different sensors and gains) is dropped
HEIGHT_ONLY = ["--data.init_args.bands", "{lidar: [dsm]}", "--data.init_args.standardize", "{}"]
TRENTO_TO_MUUFL = ["--data.init_args.sources", "[trento]", "--data.init_args.targets", "[muufl]"]
MUUFL_TO_TRENTO = [
    "--data.init_args.sources",
    "[muufl]",
    "--data.init_args.targets",
    "[trento]",
    "--data.init_args.source_split",
    "per_class:100",
]

PROTOCOLS: dict[str, Protocol] = {
    "trento_to_muufl": Protocol(
        FVMGN,
        config_args(BASE),
        TRENTO_TO_MUUFL,
        "muufl",
        True,
        "cross-scene: train on Trento (819 labelled training px), test on unseen MUUFL; LiDAR height + "
        "intensity",
        CLOSED_SET,  # Trento's four shared classes are all in MUUFL
    ),
    "trento_to_muufl_height": Protocol(
        FVMGN,
        config_args(BASE),
        [*TRENTO_TO_MUUFL, *HEIGHT_ONLY],
        "muufl",
        True,
        "cross-scene: train on Trento, test on unseen MUUFL; LiDAR height above ground only (intensity "
        "dropped: the two surveys' intensities are uncalibrated, see the first table)",
        CLOSED_SET,
    ),
    "muufl_to_trento": Protocol(
        FVMGN,
        config_args(BASE),
        MUUFL_TO_TRENTO,
        "trento",
        True,
        "cross-scene: train on MUUFL (100 px per shared class), test on unseen Trento; LiDAR height + intensity",
    ),
    "muufl_to_trento_height": Protocol(
        FVMGN,
        config_args(BASE),
        [*MUUFL_TO_TRENTO, *HEIGHT_ONLY],
        "trento",
        True,
        "cross-scene: train on MUUFL (100 px per shared class), test on unseen Trento; LiDAR height only",
    ),
    "houston2013_vectors": Protocol(
        HOUSTON,
        [*config_args(HOUSTON), *concat_net(width=64)],
        [],
        "houston2013_vectors",
        False,
        "in-scene: real Houston 2013 HSI spectra (144 bands) + 21 LiDAR features of the 2,832 standard "
        "training px, seeded stratified 50 % train / 50 % test folds (fold = seed), 15 classes; 1×1 inputs, so "
        "the config has MWDis, the frequency branch and multi-scale alignment off",
        frozenset(
            {
                "fvmgn w/o MWDis",
                "fvmgn, CE on resampled view",
                "fvmgn MWDis on stem features",
                "fvmgn MWDis detail-band swap",
                "fvmgn w/o frequency branch",
                "fvmgn FFT frequency branch",
                "fvmgn FFT amplitude+phase branch",
                "fvmgn attention keys/values pooled 2× at scale 1",
                "fvmgn single-scale alignment",
                *CLOSED_SET,  # in-scene: the source is the target
            }
        ),
    ),
    "salinas_a": Protocol(
        SALINAS,
        [*config_args(SALINAS), *concat_net(mwdis_same_domain_fallback=True)],
        [],
        "salinas_a",
        False,
        "in-scene: real Salinas-A HSI (204 bands, 11×11 patches), 30 training px per class (seeded), test on "
        "the rest of the scene, 6 classes",
        CLOSED_SET,
    ),
}


def _paper_protocol(config: Path) -> Protocol:
    """``config``: the setting's data piece, ``experiments/data/paper_<source>_to_<target>.yaml``."""
    source, target = config.stem.removeprefix("paper_").split("_to_")
    pieces = (str(config.relative_to(ROOT)), *PAPER_PIECES)
    return Protocol(
        pieces,
        [*config_args(pieces), *concat_net(width=64)],  # the plain baseline: MWDis is FVMGN's part
        [],
        target,
        True,
        f"the paper's setting: HSI + LiDAR, train on {source}, test on the unseen {target} scene "
        f"(`{config.relative_to(ROOT)}`; HSI of both sensors interpolated onto one wavelength grid)",
        # closed-set already (class_scope in their YAMLs); the CE reads the resampled view already (option default)
        skip=CLOSED_SET | {"fvmgn, CE on resampled view"},
        needs=(source, target),
    )


PROTOCOLS.update(
    {c.stem: _paper_protocol(c) for c in sorted((ROOT / "experiments/data").glob("paper_*.yaml"))}
)


def not_run(protocol: str) -> list[str] | None:
    """A 'not run' section naming the missing files and the fetch command, or None when runnable."""
    proto = PROTOCOLS[protocol]
    missing = [p for name in proto.needs for p in missing_files(name, ["hsi", "lidar"])]
    if not missing:
        return None
    return [
        f"## {protocol.replace('_', ' ')} (test domain: {proto.target})",
        "",
        proto.description + ".",
        "",
        "Not run: missing "
        + ", ".join(f"`{p}`" for p in missing)
        + ". Fetch and verify them with "
        + " and ".join(f"`rsmg download {n} --root $RSMG_DATA_ROOT`" for n in proto.needs)
        + ", then rerun this script.",
        "",
    ]


# The paper's tables could not be retrieved (papers.md); when they are, they go here, labelled as other data.
PAPER: dict[str, str] = {}


def fit_args(protocol: str, method: str, epochs: int, target_split: str) -> list[str]:
    """The ``rsmg fit`` arguments of one grid cell (without the run directory and seed)."""
    proto = PROTOCOLS[protocol]
    which, extra = METHODS[method]
    config = config_args(proto.fvmgn) if which == "fvmgn" else proto.baseline
    cmd = [*config, *proto.data, *extra]
    if proto.cross_scene:
        cmd += ["--trainer.max_epochs", str(epochs), "--data.init_args.target_split", target_split]
    return cmd


def run(
    protocol: str, method: str, seed: int, epochs: int, out: Path, target_split: str
) -> tuple[Path | None, float, bool]:
    """Train + test one cell (reused when its metrics.json exists); (run dir or None, wall seconds, trained now).

    The wall time of a reused run is the one recorded when it was trained (NaN for runs older than the record).
    """
    split = target_split if PROTOCOLS[protocol].cross_scene else "config"
    run_dir = out / slug(split) / protocol / slug(method) / f"seed{seed}"
    cmd = fit_args(protocol, method, epochs, target_split)
    cmd += grid_run_args(out / slug(split) / protocol, slug(method), seed)
    if (run_dir / "metrics.json").exists():
        check_reuse(run_dir, cmd)
        return run_dir, recorded_wall(run_dir), False
    wall = timed_fit(cmd, f"[{protocol}] {method} seed {seed}", run_dir)
    return (run_dir, wall, True) if wall is not None else (None, float("nan"), True)


def load(run_dir: Path, seed: int, wall: float) -> dict | None:
    """A run's test result (its one target domain) with classes, protocol, seed and wall seconds.

    The protocol is the run's ``metrics.json`` record, or, for runs older than the record, what ``rsmg report``
    infers from its ``config.yaml`` (marked "inferred"). None (a failed cell, said on stderr) when the directory
    cannot be counted, e.g. a ``fast_dev_run``.
    """
    r = read_run(run_dir)
    if r.status != "finished":
        print(f"{run_dir}: not counted ({r.status}): {r.reason}", file=sys.stderr)
        return None
    test = next(iter(r.results.values()))
    protocol = r.protocol + (" (inferred)" if r.protocol_inferred else "")
    return {**test, "classes": r.classes, "protocol": protocol, "seed": seed, "wall": wall}


def protocol_cell(runs: list[dict]) -> str:
    """The protocol of a row's runs (transductive bold); counts when its seeds differ (reused older runs)."""
    kinds = [r["protocol"] for r in runs]
    bold = {k: k if k.startswith("inductive") else f"**{k}**" for k in kinds}
    if len(set(kinds)) == 1:
        return bold[kinds[0]]
    return ", ".join(f"{bold[k]} ×{kinds.count(k)}" for k in sorted(set(kinds)))


def paired_oa(runs: list[dict], baseline: list[dict]) -> str:
    """Each seed's OA minus the baseline's with the same seed; said when the two rows' protocols differ."""
    diffs = paired_differences(
        {r["seed"]: r["oa"] * 100 for r in runs}, {r["seed"]: r["oa"] * 100 for r in baseline}
    )
    cell = paired_cell(diffs)
    kind = lambda rs: {r["protocol"].removesuffix(" (inferred)") for r in rs}  # noqa: E731
    if diffs and kind(runs) != kind(baseline):
        cell += f" — baseline runs: {protocol_cell(baseline)}"
    return cell


def wall_cell(runs: list[dict]) -> str:
    """Mean fit + test seconds of the runs whose wall time was recorded when they were trained."""
    known = [r["wall"] for r in runs if r["wall"] == r["wall"]]  # NaN: trained before the record
    if not known:
        return "(not recorded)"
    part = f" ({len(known)} of {len(runs)} recorded)" if len(known) < len(runs) else ""
    return f"{statistics.mean(known):.0f}{part}"


def table(results: dict[str, list[dict]], protocol: str) -> list[str]:
    """One protocol's main table: spread over seeds, protocol, paired differences against the baseline, wall."""
    proto = PROTOCOLS[protocol]
    base = results.get(BASELINE, [])
    lines = [
        f"## {protocol.replace('_', ' ')} (test domain: {proto.target})",
        "",
        proto.description + ".",
        "",
        "| method | protocol | OA % | AA % | Kappa % | seeds | OA − baseline per seed (paired) | wall per run (s) |",
        "|---|---|---:|---:|---:|---:|---|---:|",
    ]
    for method, runs in results.items():
        if not runs:
            lines.append(f"| {method} | | failed | | | 0 | | |")
            continue
        cells = [mean_sd([r[k] * 100 for r in runs]) for k in ("oa", "aa", "kappa")]
        diff = "–" if method == BASELINE else paired_oa(runs, base)
        row = [method, protocol_cell(runs), *cells, str(len(runs)), diff, wall_cell(runs)]
        lines.append(f"| {' | '.join(row)} |")
    return [*lines, ""]


def summary(grid: dict[str, dict[str, list[dict]]]) -> list[str]:
    """FVMGN against the baseline on every protocol that has both: the grid at a glance."""
    both = [p for p, res in grid.items() if res.get(BASELINE) and res.get("fvmgn")]
    if len(both) < 2:
        return []
    lines = [
        "## Summary: FVMGN against the concat CNN",
        "",
        "| protocol | FVMGN runs | concat CNN OA % | FVMGN OA % | FVMGN − concat CNN per seed (paired) |",
        "|---|---|---:|---:|---|",
    ]
    for p in both:
        base, fv = grid[p][BASELINE], grid[p]["fvmgn"]
        oa = [mean_sd([r["oa"] * 100 for r in runs]) for runs in (base, fv)]
        lines.append(
            f"| {p.replace('_', ' ')} | {protocol_cell(fv)} | {' | '.join(oa)} | {paired_oa(fv, base)} |"
        )
    return [*lines, ""]


def recorded_walls(grid: dict[str, dict[str, list[dict]]]) -> str:
    """The summed fit + test wall time of the runs in the results file, as recorded when each was trained."""
    every = [r["wall"] for res in grid.values() for runs in res.values() for r in runs]
    known = [x for x in every if x == x]
    return (
        f"Summed wall time of the {len(every)} runs in this file: {sum(known) / 3600:.2f} h "
        f"({len(known)} with a recorded time; the others were trained before the record).  "
    )


def command_line(args: Options) -> str:
    """The ``Command:`` of the results file: every option that changes what runs, or where."""
    out = f" --out {shlex.quote(str(args.out))}" if args.out.resolve() != DEFAULT_OUT.resolve() else ""
    return (
        "RSMG_DATA_ROOT=../shared/data .venv/bin/python benchmarks/fvmgn_accuracy.py "
        f"--seeds {' '.join(map(str, args.seeds))} --epochs {args.epochs} "
        f"--methods {' '.join(repr(m) for m in args.methods)} --protocols {' '.join(args.protocols)} "
        f"--target-split {args.target_split}"
        + out
        + (f" --results {args.results}" if args.results != GRID_RESULTS else "")
        + (
            f" --in-scene-methods {' '.join(repr(m) for m in args.in_scene_methods)}"
            if args.in_scene_methods
            else ""
        )
    )


# what --methods / --in-scene-methods accept: the short names, full names, and the rows that became another row
METHOD_NAMES = tuple(dict.fromkeys([*SHORT.values(), *METHODS, *ALIASES]))


@dataclass(kw_only=True)
class Options:
    """Options of ``fvmgn_accuracy.py``.

    Attributes:
        seeds: seeds of the model and the split (seed_everything, data.seed)
        epochs: max_epochs of the cross-scene runs (in-scene protocols keep their configs' epochs)
        methods: subset of ['baseline', 'fvmgn'] or full names (the rows of the results file's Methods table)
        protocols: protocols to run (``paper_*``: the paper's settings, reported as not run without their cubes)
        in_scene_methods: methods for the in-scene protocols (none given: the same as --methods)
        target_split: target pixels to test on: 'all' (whole scene) or 'fraction:F' (seeded stratified sample,
            faster)
        out: folder of the runs (a run found there is reused; delete it to start again)
        results: file under benchmarks/results/ (another name keeps a partial grid from replacing the full table)
    """

    seeds: list[int] = field(default_factory=lambda: [42, 43, 44])
    epochs: int = 30
    methods: Annotated[list[str], Arg(choices=METHOD_NAMES, metavar="METHOD")] = field(
        default_factory=lambda: list(METHODS)
    )
    protocols: Annotated[list[str], Arg(choices=tuple(PROTOCOLS))] = field(
        default_factory=lambda: list(PROTOCOLS)
    )
    in_scene_methods: Annotated[list[str] | None, Arg(choices=METHOD_NAMES, metavar="METHOD")] = None
    target_split: str = "all"
    out: Path = DEFAULT_OUT
    results: str = GRID_RESULTS


def main(args: Options) -> None:
    """Run (or reuse) every cell of the grid, then write the results file."""
    inverse = {v: k for k, v in SHORT.items()}
    target_desc = (
        "all labelled pixels"
        if args.target_split == "all"
        else f"a seeded stratified sample ({args.target_split}) of the labelled pixels"
    )
    methods = list(dict.fromkeys(ALIASES.get(m, inverse.get(m, m)) for m in args.methods))
    in_scene = list(dict.fromkeys(ALIASES.get(m, inverse.get(m, m)) for m in args.in_scene_methods or []))
    t_grid = time.perf_counter()
    lines = [
        "# FVMGN accuracy: every protocol runnable with the shared data pack",
        "",
        f"Command: `{command_line(args)}`  ",
        f"Machine: {machine()}  ",
        "Cross-scene protocols: LiDAR height above ground (nDSM where the catalog says the raster is an absolute "
        "DSM) + intensity (robust z-score, `data.standardize_stats` of the configs; a row whose runs used a "
        "target's own statistics says **transductive**), or height only (`_height`), shared class set, "
        f"{args.epochs} epochs, OA / AA / Kappa on {target_desc} of the unseen "
        "target scene. In-scene protocols (Houston 2013 vectors, Salinas-A): the configs' own epochs, split "
        "and classes. Mean ± sample std (ddof = 1) over seeds; model selection on source validation pixels only; "
        "paired differences: each seed's OA minus the concat CNN's with the same seed (same split and target "
        "sample). Protocol: each run's `metrics.json` record (inductive: no statistic of a test scene shapes its "
        'inputs; "inferred": the run predates the record, read from its `config.yaml`). Wall: fit + test '
        "seconds per run, recorded when it was trained.  ",
        "The HSI cubes of Trento / MUUFL / Houston 2013 are not in the shared data pack, so only the `paper_*` "
        "sections are the paper's HSI+LiDAR cross-scene protocol, and they run only where the cubes have been "
        "fetched (`rsmg download`); every other table is **not comparable to the paper's tables** (which could "
        "not be retrieved: papers.md).",
        "",
    ]
    sections: list[str] = []
    grid: dict[str, dict[str, list[dict]]] = {}
    trained = 0
    for protocol in args.protocols:
        skipped = not_run(protocol)
        if skipped is not None:
            print(f"[{protocol}] not run: benchmark cubes missing")
            print("\n".join(skipped))
            sections += skipped
            continue
        results: dict[str, list[dict]] = {}
        todo = methods if PROTOCOLS[protocol].cross_scene or not args.in_scene_methods else in_scene
        for method in todo:
            if method in PROTOCOLS[protocol].skip:
                continue
            results[method] = []
            for seed in args.seeds:
                d, wall, fresh = run(protocol, method, seed, args.epochs, args.out, args.target_split)
                trained += fresh
                loaded = load(d, seed, wall) if d is not None else None
                if loaded is not None:
                    results[method].append(loaded)
        grid[protocol] = results
        sections += table(results, protocol)
        runs = [r for rs in results.values() for r in rs]
        if runs and majority_reference(runs) is None:  # every table states its floor, or says why it cannot
            sections += [
                "Reference: majority-class floor unknown (these runs' metrics.json hold no confusion).",
                "",
            ]
        sections += per_class_table(results)
    if not grid:  # nothing ran: keep the results file (it may hold measured tables) as it is
        raise SystemExit(
            f"no protocol could run (missing files above); benchmarks/results/{args.results} unchanged"
        )
    lines += [
        f"Grid wall time: {(time.perf_counter() - t_grid) / 60:.1f} min for {trained} newly trained runs (runs "
        "found in `--out` are reused, not retrained).  ",
        recorded_walls(grid),
        "",
        *summary(grid),
        *sections,
    ]
    lines += method_table([*dict.fromkeys([*methods, *in_scene])])
    write_result(args.results, "\n".join(lines))


def method_table(methods: list[str]) -> list[str]:
    """How to reproduce a row: the model each method starts from and the overrides it adds."""
    out = [
        "## Methods",
        "",
        "Each FVMGN row is `rsmg fit --config <protocol's FVMGN config pieces>` plus these overrides; the baseline "
        f"runs `{' '.join(config_args(BASE, absolute=False))}` cross-scene and the in-scene configs with the net "
        "swapped for `rsmg.models.baseline.ConcatCNN`. Protocols add their data overrides (`_height`: the same as "
        "`experiments/data/lidar_height_only.yaml`).",
        "",
        "| method | model | overrides |",
        "|---|---|---|",
    ]
    for m in methods:
        which, extra = METHODS[m]
        pairs = " ".join(f"`{k} {v}`" for k, v in zip(extra[::2], extra[1::2], strict=True)) or "—"
        out.append(f"| {m} | {'concat CNN' if which == 'baseline' else 'FVMGN'} | {pairs} |")
    return [*out, ""]


if __name__ == "__main__":
    main(cli(Options, description=__doc__))
