r"""DTAug test-time augmentation: accuracy vs cost on the real MUUFL target scene.

For every number of views K ∈ {1, 2, 4, 8} and DDIM steps S ∈ {2, 5, 10, 25}, a seeded subsample of MUUFL
test pixels (real LiDAR, the cross-scene protocol of ``experiments/data/trento_to_muufl_lidar.yaml``) is
classified from the original patch plus K diffusion reconstructions (``rsmg.diffusion.DiffusionAugmenter``,
noise to ``strength`` then S DDIM steps; mean of probabilities, as ``DiffusionTTA``), and compared with plain
inference of the same classifier.

* **Cost** = time of TTA inference (augmenter + K+1 classifier forwards + aggregation) / time of plain
  inference (one classifier forward), both on the same batches, in the same run, measured back to back for
  every (K, S) (plain: median of several passes), so load changes hit both.
* **Accuracy**: views are seeded per (seed, sample, view), so the first K views of a K=8 augmenter *are* the
  views of a K-view augmenter (checked in the run); accuracy for every K is read from one K=8 pass per S.
  Timing is done separately for every (K, S).

Prior: ``--prior`` (an exported prior or a prior-task checkpoint, ``rsmg.diffusion.loading.load_prior``); by
default a tiny prior is trained here for ``--prior-steps`` steps on Trento source patches (labelled as such:
far from converged). Classifier: ``--ckpt`` (a ``ClassificationTask`` checkpoint; the network is rebuilt from
the ``config.yaml`` two levels up); by default a concat CNN trained here for a few epochs on Trento.

Usage::

    RSMG_DATA_ROOT=../shared/data .venv/bin/python benchmarks/tta_cost.py
    RSMG_DATA_ROOT=../shared/data .venv/bin/python benchmarks/tta_cost.py \
        --ckpt outputs/baseline_trento_to_muufl/version_1/checkpoints/last.ckpt \
        --prior outputs/dtaug_prior_trento_lidar/seed42/checkpoints/last.ckpt --n 2048
"""

from __future__ import annotations

import functools
import importlib
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from _common import RESULTS, command, machine, write_result
from _flops import count_flops, load1, pick_threads, sync, time_call
from rsmg.callbacks.diffusion_tta import aggregate_views
from rsmg.cli.signature import cli
from rsmg.data.augment import augment_batch
from rsmg.data.datamodule import CrossDomainDataModule
from rsmg.data.scene import SceneDataset
from rsmg.diffusion import DiffusionAugmenter, DiffusionPrior
from rsmg.diffusion.loading import load_prior
from rsmg.io import atomic_open
from rsmg.metrics import metrics_from_confusion
from rsmg.models.baseline import ConcatCNN
from rsmg.tasks import ClassificationTask

Batch = dict[str, torch.Tensor]
TINY_UNET: dict[str, Any] = {"block_out_channels": [32, 64], "layers_per_block": 1, "norm_num_groups": 8}


# ----------------------------------------------------------------------------------------- data / models
def gather(ds: Any, idx: list[int], device: torch.device) -> Batch:
    return {k: v.to(device) for k, v in dict(ds.__getitems__(idx)).items() if isinstance(v, torch.Tensor)}


def split(batch: Batch, size: int) -> list[Batch]:
    n = int(batch["label"].shape[0])
    return [{k: v[i : i + size] for k, v in batch.items()} for i in range(0, n, size)]


def random_batches(pool: Batch, batch: int, steps: int, seed: int) -> Any:
    g = torch.Generator().manual_seed(seed)
    n = int(pool["label"].shape[0])
    for epoch in range(steps):
        idx = torch.randint(0, n, (batch,), generator=g).to(pool["label"].device)
        b: dict[str, object] = {k: v[idx] for k, v in pool.items()}
        yield augment_batch(b, seed=seed, epoch=epoch)  # the training pipeline's dihedral flips


def train_prior(
    dm: CrossDomainDataModule,
    pool: Batch,
    steps: int,
    batch: int,
    device: torch.device,
    unet: dict[str, Any] = TINY_UNET,
) -> tuple[DiffusionPrior, float]:
    torch.manual_seed(0)
    prior = DiffusionPrior.from_spec(dm.spec, unet=unet).to(device).train()
    opt = torch.optim.AdamW(prior.parameters(), lr=5e-4)
    losses = []
    for b in random_batches(pool, batch, steps, seed=1):
        loss = prior.loss(prior.stack(b))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss))
    return prior.eval(), float(np.mean(losses[-20:]))


def train_cnn(dm: CrossDomainDataModule, pool: Batch, epochs: int, device: torch.device) -> nn.Module:
    torch.manual_seed(0)
    net = ConcatCNN(dm.spec, width=32, depth=2, dropout=0.1).to(device).train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    n = int(pool["label"].shape[0])
    for b in random_batches(pool, 64, epochs * max(1, n // 64), seed=2):
        loss = F.cross_entropy(net(b).logits, b["label"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return net.eval()


def load_classifier(path: Path, dm: CrossDomainDataModule, device: torch.device) -> tuple[nn.Module, str]:
    cfg_path = path.parent.parent / "config.yaml"
    if not cfg_path.is_file():
        raise SystemExit(
            f"{cfg_path} not found: it names the network of the checkpoint (model.init_args.net)"
        )
    cfg = yaml.safe_load(cfg_path.read_text())
    net_cfg = (cfg.get("model", {}).get("init_args", {}) or {}).get("net") or {}
    class_path = net_cfg.get("class_path", "rsmg.models.baseline.ConcatCNN")
    module, _, name = class_path.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    factory = functools.partial(cls, **(net_cfg.get("init_args") or {}))
    try:
        task = ClassificationTask.load_from_checkpoint(path, spec=dm.spec, net=factory, map_location=device)
    except RuntimeError as exc:  # weights of an older version of the network code
        raise SystemExit(f"{path} does not load into the current {class_path}: {str(exc)[:600]}") from exc
    return task.net.to(device).eval(), f"{class_path} {net_cfg.get('init_args') or {}} from `{path}`"


# ----------------------------------------------------------------------------------------- inference
@torch.inference_mode()
def plain(net: nn.Module, batches: list[Batch]) -> list[torch.Tensor]:
    return [net(b).logits.float().softmax(-1) for b in batches]


@torch.inference_mode()
def tta(net: nn.Module, aug: DiffusionAugmenter, batches: list[Batch]) -> list[torch.Tensor]:
    out = []
    for b in batches:
        logits = [net(b).logits]
        for view in aug(b, b["index"]):
            logits.append(net({**b, **view}).logits)
        out.append(aggregate_views(torch.stack(logits), "mean_prob"))
    return out


@torch.inference_mode()
def all_view_logits(net: nn.Module, aug: DiffusionAugmenter, batches: list[Batch]) -> torch.Tensor:
    """``(1+K)×N×C`` logits: the original, then every view, for the whole subsample."""
    per_batch = []
    for b in batches:
        logits = [net(b).logits.float()]
        for view in aug(b, b["index"]):
            logits.append(net({**b, **view}).logits.float())
        per_batch.append(torch.stack(logits))
    return torch.cat(per_batch, dim=1)


def scores(probs: torch.Tensor, labels: torch.Tensor, k: int) -> dict[str, float]:
    cm = torch.zeros(k, k, dtype=torch.long)
    idx = labels.cpu() * k + probs.argmax(-1).cpu()
    cm += torch.bincount(idx, minlength=k * k).reshape(k, k)
    m = metrics_from_confusion(cm)
    return {"oa": float(m["oa"]), "aa": float(m["aa"]), "kappa": float(m["kappa"])}  # type: ignore[arg-type]


def ci95(p: float, n: int) -> float:
    return 1.96 * (p * (1 - p) / max(1, n)) ** 0.5


# ----------------------------------------------------------------------------------------- plot
def plot(
    rows: list[dict[str, Any]],
    plain_oa: float,
    n: int,
    ks: list[int],
    steps: list[int],
    title: str,
    path: Path,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.8), constrained_layout=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, k in enumerate(ks):
        rk = sorted((r for r in rows if r["k"] == k), key=lambda r: r["steps"])
        xs, ys = [r["ratio"] for r in rk], [100 * r["oa"] for r in rk]
        ax.plot(xs, ys, "o-", color=colors[i % len(colors)], label=f"K = {k} views")
        for r, x, y in zip(rk, xs, ys, strict=True):
            ax.annotate(
                f"{r['steps']}",
                (x, y),
                textcoords="offset points",
                xytext=(3, 4 + 8 * i),  # one label row per K, so labels of coinciding points stay readable
                fontsize=8,
                color=colors[i % len(colors)],
            )
        ax2.plot([r["steps"] for r in rk], xs, "o-", color=colors[i % len(colors)], label=f"K = {k}")
    ax.axhline(100 * plain_oa, color="k", ls="--", lw=1, label="plain inference OA")
    ax.errorbar(
        [1],
        [100 * plain_oa],
        yerr=[100 * ci95(plain_oa, n)],
        fmt="k*",
        ms=10,
        capsize=4,
        label=f"plain inference (cost 1×), 95 % interval for n = {n}",
    )
    for a in (ax, ax2):
        (a.axvline if a is ax else a.axhline)(12, color="r", ls=":", lw=1.2, label="target: 12× plain")
        a.grid(True, which="both", alpha=0.3)
    ax.set_xscale("log")
    ax.set_xlabel("cost: TTA inference time / plain inference time (log scale)")
    ax.set_ylabel("overall accuracy on the MUUFL subsample (%)")
    ax.set_title("accuracy vs cost (numbers next to points: DDIM steps, colour = K)")
    ax.legend(fontsize=8, loc="best")
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xticks(steps)
    ax2.set_xticklabels([str(s) for s in steps])
    ax2.xaxis.set_minor_formatter(NullFormatter())
    ax2.set_xlabel("DDIM denoising steps (log scale)")
    ax2.set_ylabel("cost (× plain inference, log scale)")
    ax2.set_title("cost vs steps per number of views K")
    ax2.legend(fontsize=8, loc="upper left")
    fig.suptitle(title, fontsize=10)
    with atomic_open(path) as f:
        fig.savefig(f, format="png", dpi=120)
    plt.close(fig)


# ----------------------------------------------------------------------------------------- main
@dataclass(kw_only=True)
class Options:
    """Options of ``tta_cost.py``.

    Attributes:
        prior: exported prior or prior-task checkpoint (none: train a tiny one)
        ckpt: ClassificationTask checkpoint (none: train a concat CNN here)
        n: MUUFL test pixels in the subsample (none: 2048 on CUDA, 64 on CPU)
        time_n: pixels of the subsample used for timing (none: all on CUDA, 32 on CPU)
        batch: inference batch (samples; TTA runs B·K trajectories)
        ks: views K
        steps: DDIM steps S
        strength: noise strength (experiments/dtaug/tta.yaml: 0.3)
        seed: seed of the subsample and the views
        prior_steps: AdamW steps of the in-script prior
        unet_channels: block widths of the in-script prior's UNet (a cheaper prior: e.g. 16 32)
        name: result files: benchmarks/results/<name>.md and <name>.png
        prior_batch: batch of the in-script prior
        cnn_epochs: epochs of the in-script classifier
        plain_reps: passes of plain inference per (K, S) (median)
        threads: CPU threads (0: auto, see _flops.pick_threads)
        device: auto, cpu, cuda, ...
    """

    prior: Path | None = None
    ckpt: Path | None = None
    n: int | None = None
    time_n: int | None = None
    batch: int = 256
    ks: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    steps: list[int] = field(default_factory=lambda: [2, 5, 10, 25])
    strength: float = 0.3
    seed: int = 0
    prior_steps: int = 150
    unet_channels: list[int] = field(default_factory=lambda: list(TINY_UNET["block_out_channels"]))
    name: str = "dtaug/tta_cost"
    prior_batch: int = 16
    cnn_epochs: int = 10
    plain_reps: int = 11
    threads: int = 0
    device: str = "auto"


def main(args: Options) -> None:
    t_start = time.perf_counter()
    threads = pick_threads(args.threads)
    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    cuda = device.type == "cuda"
    n = args.n or (2048 if cuda else 64)
    dev_name = torch.cuda.get_device_name(device) if cuda else "CPU"
    mach = machine()
    print(f"device {dev_name}; {threads}; {mach}", flush=True)

    dm = CrossDomainDataModule(
        sources=["trento"],
        targets=["muufl"],
        modalities=["lidar"],
        ndsm_bands=["dsm"],
        standardize={"lidar": ["intensity"]},
        batch_size=64,
    )
    ckpt_state = None
    if args.ckpt is not None:
        ckpt_state = torch.load(args.ckpt, map_location="cpu", weights_only=False)
        if (
            "CrossDomainDataModule" in ckpt_state
        ):  # the normalisation statistics the classifier was trained with
            dm.load_state_dict(ckpt_state["CrossDomainDataModule"])
    dm.setup("fit")
    src = dm.train_dataloader().dataset
    assert isinstance(src, SceneDataset), "one source scene (Trento) gives one SceneDataset"
    pool = gather(src, list(range(len(src))), device)
    target = dm.test_dataset("muufl")
    rng = np.random.default_rng(args.seed)
    idx = sorted(rng.choice(len(target), size=min(n, len(target)), replace=False).tolist())
    sub = gather(target, idx, device)
    batches = split(sub, args.batch)
    time_n = min(args.time_n or (len(idx) if cuda else 32), len(idx))
    time_batches = split({k: v[:time_n] for k, v in sub.items()}, args.batch)
    labels = sub["label"]
    k_cls = dm.spec.num_classes
    print(
        f"MUUFL subsample: {len(idx)} of {len(target)} test pixels (seed {args.seed}); timing on {time_n}",
        flush=True,
    )

    if args.prior is not None:
        prior = load_prior(args.prior, map_location=device).to(device).eval()
        prior.check_compatible(dm.spec)
        prior_desc = f"loaded from `{args.prior}`"
    else:
        t0 = time.perf_counter()
        unet = {**TINY_UNET, "block_out_channels": list(args.unet_channels)}
        unet["norm_num_groups"] = min(8, *args.unet_channels)
        prior, loss = train_prior(dm, pool, args.prior_steps, args.prior_batch, device, unet)
        prior_desc = (
            f"**tiny prior trained inside this script** (UNet {list(args.unet_channels)}, "
            f"{args.prior_steps} AdamW steps of {args.prior_batch} Trento source patches, final loss "
            f"{loss:.3f}, {time.perf_counter() - t0:.0f} s): far from converged, so accuracy numbers say "
            "little about DTAug itself; the cost numbers do not depend on training"
        )
        print(f"prior: {prior_desc}", flush=True)
    if args.ckpt is not None:
        net, net_desc = load_classifier(args.ckpt, dm, device)
    else:
        net = train_cnn(dm, pool, args.cnn_epochs, device)
        net_desc = (
            f"**concat CNN (width 32, depth 2) trained inside this script** for {args.cnn_epochs} epochs "
            f"on the {len(src)} Trento training pixels (no model selection)"
        )
    print(f"classifier: {net_desc}", flush=True)
    b0 = time_batches[0]
    with torch.inference_mode():
        net_flops = count_flops(lambda: net(b0)) / b0["label"].shape[0]
        t1 = torch.full((b0["label"].shape[0],), 100, device=device, dtype=torch.long)
        unet_flops = count_flops(lambda: prior(prior.stack(b0), t1)) / b0["label"].shape[0]

    # ---------------------------------------------------------------- accuracy (one K=max pass per S)
    kmax = max(args.ks)
    plain_probs = torch.cat(plain(net, batches))
    base = scores(plain_probs, labels, k_cls)
    print(f"plain: OA {100 * base['oa']:.2f} %", flush=True)
    acc: dict[tuple[int, int], dict[str, float]] = {}
    for s in args.steps:
        aug = DiffusionAugmenter(prior, strength=args.strength, steps=s, views=kmax, seed=args.seed)
        logits = all_view_logits(net, aug, batches)
        for k in args.ks:
            acc[(k, s)] = scores(aggregate_views(logits[: k + 1], "mean_prob"), labels, k_cls)
        print(
            f"accuracy S={s}: " + ", ".join(f"K={k} OA {100 * acc[(k, s)]['oa']:.2f} %" for k in args.ks),
            f" load {load1():.2f}",
            flush=True,
        )
    # prefix check: the views of a K-view augmenter are the first K views of the K=max augmenter
    with torch.inference_mode():
        small = DiffusionAugmenter(
            prior, strength=args.strength, steps=args.steps[0], views=1, seed=args.seed
        )
        big = DiffusionAugmenter(
            prior, strength=args.strength, steps=args.steps[0], views=kmax, seed=args.seed
        )
        bb = {k: v[:8] for k, v in b0.items()}
        v_small, v_big = small(bb, bb["index"])[0], big(bb, bb["index"])[0]
        prefix_err = max((v_small[k] - v_big[k]).abs().max().item() for k in v_small)
    if prefix_err > 1e-3:
        raise AssertionError(
            f"views of a 1-view augmenter differ from the first view of a {kmax}-view one "
            f"by {prefix_err:.2e}: per-K accuracy cannot be read from one pass"
        )

    # ---------------------------------------------------------------- cost, every (K, S), same batches
    def plain_time() -> float:
        plain(net, time_batches)  # warm
        return statistics.median(
            time_call(lambda: plain(net, time_batches), device) for _ in range(args.plain_reps)
        )

    rows = []
    for s in args.steps:
        for k in args.ks:
            aug = DiffusionAugmenter(prior, strength=args.strength, steps=s, views=k, seed=args.seed)
            tp = plain_time()
            tt = time_call(functools.partial(tta, net, aug, time_batches), device)
            if tt < 0.5:  # short: repeat and take the median
                tt = statistics.median(
                    [
                        tt,
                        *(
                            time_call(functools.partial(tta, net, aug, time_batches), device)
                            for _ in range(2)
                        ),
                    ]
                )
            a = acc[(k, s)]
            rows.append({"k": k, "steps": s, "plain": tp, "tta": tt, "ratio": tt / tp, "load": load1(), **a})
            print(
                f"K={k} S={s}: plain {tp * 1e3:.1f} ms, TTA {tt * 1e3:.1f} ms -> {tt / tp:.1f}x | "
                f"OA {100 * a['oa']:.2f} % | load {rows[-1]['load']:.2f}",
                flush=True,
            )
    sync(device)

    # ---------------------------------------------------------------- report
    cfg = [r for r in rows if r["k"] == 4 and r["steps"] <= 10]
    met = [r for r in cfg if r["ratio"] <= 12]
    png = RESULTS / f"{args.name}.png"
    png.parent.mkdir(parents=True, exist_ok=True)
    title = (
        f"DTAug TTA on real MUUFL LiDAR ({len(idx)} test pixels), {dev_name}, strength {args.strength}; "
        f"classifier: {'checkpoint' if args.ckpt else 'concat CNN trained in-script'}, prior: "
        f"{'loaded' if args.prior else 'tiny, trained in-script'}"
    )
    plot(rows, base["oa"], len(idx), args.ks, args.steps, title, png)
    ideal = {(r["k"], r["steps"]): 1 + r["k"] + r["k"] * r["steps"] * unet_flops / net_flops for r in rows}
    lines = [
        "# DTAug test-time augmentation: accuracy vs cost (real MUUFL target)",
        "",
        f"Command: `{command()}`  ",
        f"Machine: {mach}  ",
        f"Device: {dev_name}; {threads}; run time {time.perf_counter() - t_start:.0f} s.  ",
        f"Data (real): Trento → MUUFL LiDAR (height above ground + intensity standardised with "
        f"`{dm.standardize_stats}` statistics, {dm.protocol}), shared classes "
        f"{list(dm.spec.classes)}; a seeded subsample (seed {args.seed}) of {len(idx):,} of the {len(target):,} "
        f"labelled MUUFL test pixels; timing on the first {time_n} of them in batches of ≤ {args.batch}"
        + (
            ""
            if cuda
            else " (CPU defaults are small so the script runs in ~3 minutes; use `--n 2048` on a GPU)"
        )
        + ".  ",
        f"Classifier: {net_desc}; {net_flops / 1e6:.1f} MFLOP per sample.  ",
        f"Prior: {prior_desc}; UNet {unet_flops / 1e6:.1f} MFLOP per sample per step.  ",
        f"TTA: `DiffusionAugmenter(strength={args.strength}, steps=S, views=K, seed={args.seed})`, mean of "
        "probabilities over the original + K views. The first K views of the K = "
        f"{kmax} augmenter equal a K-view augmenter's views (checked: max diff {prefix_err:.1e}), so accuracy comes "
        "from one pass per S; cost is timed for every (K, S).",
        "",
        f"Plain inference: OA {100 * base['oa']:.2f} % (± {100 * ci95(base['oa'], len(idx)):.1f} %, 95 % binomial "
        f"interval on {len(idx)} pixels), AA {100 * base['aa']:.2f} %, kappa {100 * base['kappa']:.2f} %.",
        "",
        "| K views | DDIM steps | OA % | AA % | kappa % | plain (ms) | TTA (ms) | cost (× plain) | FLOP-ideal "
        "cost | load |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *[
            f"| {r['k']} | {r['steps']} | {100 * r['oa']:.2f} | {100 * r['aa']:.2f} | {100 * r['kappa']:.2f} | "
            f"{r['plain'] * 1e3:.1f} | {r['tta'] * 1e3:.1f} | {r['ratio']:.1f}× | {ideal[(r['k'], r['steps'])]:.0f}× | "
            f"{r['load']:.2f} |"
            for r in sorted(rows, key=lambda r: (r["k"], r["steps"]))
        ],
        "",
        "FLOP-ideal cost = 1 + K + K·S·(UNet FLOPs / classifier FLOPs): what the ratio would be if time followed "
        "counted FLOPs. It shows why TTA is expensive here: every view costs S UNet evaluations, and the UNet is "
        f"{unet_flops / net_flops:.1f}× the classifier's FLOPs per sample.",
        "",
        "Target: K = 4 with ≤ 10 steps costs ≤ 12× plain inference — "
        + (
            f"met for S ∈ {[r['steps'] for r in met]}."
            if met
            else "NOT met (K = 4: " + ", ".join(f"S={r['steps']}: {r['ratio']:.0f}×" for r in cfg) + "). "
            f"Each view costs S UNet evaluations of {unet_flops / net_flops:.1f}× the classifier's FLOPs; by FLOPs "
            "alone the target needs UNet / classifier ≤ (12 − 1 − K)/(K·S) = "
            + ", ".join(f"{(12 - 1 - 4) / (4 * s):.2f} for S={s}" for s in args.steps if s <= 10)
            + ", i.e. a prior much cheaper than the classifier (or fewer views / steps)."
        ),
        "",
        f"Accuracy differences between cells are within noise unless larger than about ± "
        f"{100 * ci95(base['oa'], len(idx)):.0f} points at this subsample size.",
        "",
        f"![accuracy vs cost]({png.name})",
        "",
        "## Key numbers",
        "",
        f"- device: {dev_name}",
        f"- plain OA (n = {len(idx)}): {100 * base['oa']:.2f} %",
        *[
            f"- TTA cost K=4 S={r['steps']}: {r['ratio']:.1f}× plain, OA {100 * r['oa']:.2f} % (load {r['load']:.2f})"
            for r in cfg
        ],
        f"- target K=4, S ≤ 10, cost ≤ 12×: {'met' if met else 'NOT met'}",
        "",
    ]
    write_result(f"{args.name}.md", "\n".join(lines))
    print(f"plot written to {png}")


if __name__ == "__main__":
    main(cli(Options, description=__doc__))
