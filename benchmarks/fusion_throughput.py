"""Caption-model throughput: rsmg's ``CaptionClassifier(fusion="cross_attention")`` vs the reference design.

Both models, built in one process at the reference sizes and timed interleaved on the same generated batch
(*generated inputs: random 224×224 RGB images and random captions, throughput only*):

* **rsmg** — :class:`rsmg.models.caption_models.CaptionClassifier` with ``image_encoder="vit_base"`` (ViT-B/16,
  197×768 tokens), the ``clip-bpe`` text tower at CLIP ViT-B/32 text sizes (width 512, 12 layers, 8 heads,
  77-token context), ``fusion="cross_attention"``, width 512, 4 heads, 2 shared levels; random init.
* **reference** — a re-implementation, in this script, of the fusion of Cai et al. (arXiv 2412.02531) as
  described in ``docs/papers.md`` §2, on the *same* encoders (same ViT-B/16, same 512-wide text tower, so only
  fusion, masking and pooling differ): per level text self-attention → text-queries-image cross-attention →
  residual + LayerNorm → MLP 512-1024-512 → image-queries-text cross-attention → back-projection 512→768 +
  residual + LayerNorm; 2 shared-weight levels, 4 heads, attention dropout 0.05, dropout 0.1; mean-pool both
  streams, concatenate (1280) → linear. With the reference's defects: ``nn.MultiheadAttention`` with
  ``batch_first=False`` fed ``B×L×D`` tensors in the text self-attention (each caption attends across the
  batch), no padding masks anywhere (captions padded to 77 tokens), padding included in the mean pooling,
  ``nn.MultiheadAttention`` called with its defaults (``need_weights=True``). Readings where §2 is silent: the
  cross-attentions get correctly ordered (sequence-first) tensors, the image tokens are projected 768→512 before
  they query the text, and only the sub-layers §2 names get residuals.

Training step = forward + cross-entropy + backward + gradient clipping (0.8, as both configs) + AdamW;
inference = forward under ``inference_mode``. The text tower is frozen in both (rsmg default;
``--train-text`` trains it in both). Peak memory is measured per model in a fresh subprocess (CUDA
``max_memory_allocated`` or sampled peak RSS), run while the main process builds and warms up, before any
timing. MFU = counted FLOPs of one training step (``FlopCounterMode``, forward
+ backward) / step time / matmul peak measured in this run. A "fusion only" table times the two fusion
modules alone on the same token tensors, where the designs actually differ.

Usage: ``.venv/bin/python benchmarks/fusion_throughput.py [--batch 4 --iters 2]`` (GPU: e.g. ``--batch 64
--iters 20``).
"""

from __future__ import annotations

import functools
import json
import random
import statistics
import subprocess
import sys
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from _common import ROOT, command, machine, write_result
from _flops import PeakMemory, count_flops, fmt_flops, load1, matmul_peak_flops, mfu, pick_threads, time_call
from rsmg.cli.signature import Arg, cli
from rsmg.data.spec import DataSpec
from rsmg.models.base import ModelOutput
from rsmg.models.caption_models import CaptionClassifier
from rsmg.models.cross_attention import DualCrossAttentionFusion
from rsmg.models.image_encoders import create_image_encoder
from rsmg.text.towers import create_text_tower

NUM_CLASSES = 30  # AID
VOCAB = (
    "the image shows a dense residential area with rows of houses trees roads and a parking lot next to "
    "several large industrial buildings with flat grey roofs while a river crosses farmland fields and a "
    "bridge connects the two banks near a port with ships storage tanks and a railway station"
)


# ----------------------------------------------------------------------------------------- reference
class ReferenceLevel(nn.Module):
    """One level of the reference fusion (``docs/papers.md`` §2), defects included (see module docstring)."""

    def __init__(
        self,
        img_dim: int = 768,
        width: int = 512,
        heads: int = 4,
        attn_dropout: float = 0.05,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.text_self = nn.MultiheadAttention(width, heads, dropout=attn_dropout)  # batch_first=False
        self.text_to_image = nn.MultiheadAttention(
            width, heads, dropout=attn_dropout, kdim=img_dim, vdim=img_dim
        )
        self.norm_text = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, 2 * width), nn.GELU(), nn.Dropout(dropout), nn.Linear(2 * width, width)
        )
        self.image_in = nn.Linear(img_dim, width)
        self.image_to_text = nn.MultiheadAttention(width, heads, dropout=attn_dropout)
        self.back = nn.Linear(width, img_dim)
        self.norm_image = nn.LayerNorm(img_dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``image`` B×N×768, ``text`` B×77×512, both batch-first; returns both streams, batch-first."""
        t, _ = self.text_self(
            text, text, text
        )  # defect: B×L×D read as L×N×E, captions attend across the batch
        ts, im = t.transpose(0, 1), image.transpose(0, 1)  # cross-attentions: sequence-first, no masks
        c, _ = self.text_to_image(ts, im, im)
        ts = self.norm_text(ts + self.drop(c))
        ts = self.mlp(ts)
        q = self.image_in(im)
        i, _ = self.image_to_text(q, ts, ts)
        im = self.norm_image(im + self.drop(self.back(i)))
        return im.transpose(0, 1), ts.transpose(0, 1)


class ReferenceFusion(nn.Module):
    """Two shared-weight reference levels, unmasked mean pooling, concatenation (768 + 512)."""

    def __init__(self, img_dim: int = 768, width: int = 512, heads: int = 4, levels: int = 2) -> None:
        super().__init__()
        self.level = ReferenceLevel(img_dim, width, heads)
        self.levels = levels

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Fused ``B×1280`` vector."""
        for _ in range(self.levels):
            image, text = self.level(image, text)
        return torch.cat([image.mean(1), text.mean(1)], dim=-1)  # padding included in the text mean


class ReferenceModel(nn.Module):
    """ViT-B/16 tokens + 77×512 text hidden states → reference fusion → linear head."""

    def __init__(self, train_text: bool) -> None:
        super().__init__()
        self.image_encoder = create_image_encoder("vit_base", in_chans=3)
        self.text_tower = create_text_tower(
            "clip-bpe", pretrained=False, frozen=not train_text, width=512, layers=12, heads=8
        )
        self.fusion = ReferenceFusion()
        self.drop = nn.Dropout(0.1)
        self.head = nn.Linear(768 + 512, NUM_CLASSES)

    def forward(self, batch: dict[str, Any]) -> ModelOutput:
        """Same batch contract as rsmg models (``image_rgb``, ``text``)."""
        tokens = self.image_encoder(batch["image_rgb"])
        ids = self.text_tower.tokenize(batch["text"], padding="max_length")  # always 77 tokens, like CLIP
        hidden = self.text_tower(ids).hidden  # mask ignored
        return ModelOutput(logits=self.head(self.drop(self.fusion(tokens, hidden))))


def build(kind: str, train_text: bool, device: torch.device) -> nn.Module:
    torch.manual_seed(0)
    if kind == "reference":
        model: nn.Module = ReferenceModel(train_text)
    else:
        spec = DataSpec(
            classes=tuple(f"class_{i}" for i in range(NUM_CLASSES)),
            modalities={"rgb": 3},
            patch_size=224,
            has_text=True,
        )
        model = CaptionClassifier(
            spec,
            image_encoder="vit_base",
            modality="rgb",
            text_tower="clip-bpe",
            text_pretrained=False,
            freeze_text=not train_text,
            fusion="cross_attention",
            width=512,
            heads=4,
            levels=2,
            share_levels=True,
            attn_dropout=0.05,
            dropout=0.1,
        )
    return model.to(device)


# ----------------------------------------------------------------------------------------- inputs / steps
def make_batch(batch: int, device: torch.device, seed: int = 0) -> dict[str, Any]:
    rng = random.Random(seed)
    words = VOCAB.split()
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(25, 60))) for _ in range(batch)]
    g = torch.Generator().manual_seed(seed)
    return {
        "image_rgb": torch.randn(batch, 3, 224, 224, generator=g).to(device),
        "text": texts,
        "label": torch.randint(0, NUM_CLASSES, (batch,), generator=g).to(device),
    }


class Runner:
    """Training step and inference of one model, with its optimiser."""

    def __init__(self, model: nn.Module, amp: torch.dtype | None, device: torch.device) -> None:
        self.model, self.amp, self.device = model, amp, device
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(self.params, lr=1e-4, weight_decay=1e-4)

    def _ctx(self) -> torch.autocast:
        return torch.autocast(
            self.device.type, dtype=self.amp or torch.bfloat16, enabled=self.amp is not None
        )

    def train_step(self, batch: dict[str, Any]) -> None:
        """Forward, cross-entropy, backward, clip 0.8, AdamW."""
        self.model.train()
        with self._ctx():
            loss = F.cross_entropy(self.model(batch).logits.float(), batch["label"])
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.params, 0.8)
        self.opt.step()

    def infer(self, batch: dict[str, Any]) -> None:
        """Forward in eval mode."""
        self.model.eval()
        with torch.inference_mode(), self._ctx():
            self.model(batch)


def pick_device(arg: str) -> torch.device:
    if arg == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(arg)


def pick_amp(arg: str, device: torch.device) -> torch.dtype | None:
    if arg == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    return {"none": None, "bf16": torch.bfloat16}[arg]


# ----------------------------------------------------------------------------------------- memory (subprocess)
def memory_child(args: Options) -> None:
    """Build one model, run inference then two training steps; print peak memory as JSON (own process).

    CPU: RSS sampled by :class:`_flops.PeakMemory` (``ru_maxrss`` is useless here: a fork-exec'd child
    inherits the parent's high-water mark). CUDA: ``max_memory_allocated``, reset per phase.
    """
    device = pick_device(args.device)
    amp = pick_amp(args.amp, device)
    assert args.memory_of is not None  # main() calls this only in the child that launch_memory starts
    model = build(args.memory_of, args.train_text, device)
    run = Runner(model, amp, device)
    batch = make_batch(args.batch, device)
    with PeakMemory(device) as infer:
        run.infer(batch)
    with PeakMemory(device) as train:
        for _ in range(2):  # the second step holds activations, gradients and AdamW state at once
            run.train_step(batch)
    out = {"infer_mib": infer.peak_mib, "train_mib": train.peak_mib}
    print("MEMORY " + json.dumps(out), flush=True)


def launch_memory(kind: str, args: Options) -> subprocess.Popen[str]:
    """Start the memory measurement of one model in its own process (untimed, so it may overlap set-up)."""
    cmd = [sys.executable, __file__, "--memory-of", kind, "--batch", str(args.batch), "--device", args.device]
    cmd += ["--amp", args.amp, "--threads", str(torch.get_num_threads())]
    if args.train_text:
        cmd.append("--train-text")
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


def collect_memory(proc: subprocess.Popen[str]) -> dict[str, float]:
    out, err = proc.communicate()
    for line in out.splitlines():
        if line.startswith("MEMORY "):
            return json.loads(line[len("MEMORY ") :])
    print(err[-3000:], file=sys.stderr)
    return {"infer_mib": float("nan"), "train_mib": float("nan")}


# ----------------------------------------------------------------------------------------- main
@dataclass(kw_only=True)
class Options:
    """Options of ``fusion_throughput.py``.

    Attributes:
        batch: samples per step (CPU default 4; e.g. 64 on a GPU)
        iters: timed iterations per model and mode (GPU: e.g. 20)
        warmup: untimed iterations first
        fusion_iters: timed iterations of the fusion-only table
        train_text: train the text tower too (both models)
        amp: autocast dtype (auto: bf16 on CUDA, none on CPU)
        device: auto, cpu, cuda, ...
        threads: CPU threads (0: auto, see _flops.pick_threads)
        peak_seconds: seconds of the matmul peak measurement
        skip_memory: no per-model memory subprocesses
        memory_of: the model whose memory this (child) process measures
    """

    batch: int = 4
    iters: int = 2
    warmup: int = 1
    fusion_iters: int = 3
    train_text: bool = False
    amp: Literal["auto", "none", "bf16"] = "auto"
    device: str = "auto"
    threads: int = 0
    peak_seconds: float = 2.0
    skip_memory: bool = False
    memory_of: Annotated[Literal["rsmg", "reference"] | None, Arg(hidden=True)] = None


def main(args: Options) -> None:
    threads = pick_threads(args.threads)
    if args.memory_of:
        memory_child(args)
        return
    device = pick_device(args.device)
    amp = pick_amp(args.amp, device)
    dtype = amp or torch.float32
    dname = str(dtype).replace("torch.", "")
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    mach = machine()
    print(f"device {dev_name}, compute dtype {dname}; {threads}; {mach}", flush=True)
    kinds = ("rsmg", "reference")
    # peak memory: one fresh process per model, running while this one builds and warms up (nothing is timed
    # until they have finished)
    procs = {k: launch_memory(k, args) for k in kinds} if not args.skip_memory else {}

    batch = make_batch(args.batch, device)
    runs = {k: Runner(build(k, args.train_text, device), amp, device) for k in kinds}
    params = {k: sum(p.numel() for p in r.model.parameters()) for k, r in runs.items()}
    trainable = {k: sum(p.numel() for p in r.params) for k, r in runs.items()}
    # the FLOP-counted step and inference are the first warm-up
    flops = {k: count_flops(functools.partial(r.train_step, batch)) for k, r in runs.items()}
    flops_inf = {k: count_flops(functools.partial(r.infer, batch)) for k, r in runs.items()}
    for r in runs.values():
        for _ in range(args.warmup - 1):
            r.train_step(batch)
            r.infer(batch)
    mem = {k: collect_memory(p) for k, p in procs.items()}
    peak0, peak0_load = matmul_peak_flops(device, dtype, 2048, args.peak_seconds), load1()
    print(f"matmul peak (start of timing): {peak0 / 1e9:,.1f} GFLOP/s  load {peak0_load:.2f}", flush=True)

    times: dict[tuple[str, str], list[float]] = {(k, m): [] for k in kinds for m in ("train", "infer")}
    loads: list[float] = []
    for it in range(args.iters):  # interleaved: a load change hits both models alike
        for k, r in runs.items():
            times[(k, "train")].append(time_call(functools.partial(r.train_step, batch), device))
            times[(k, "infer")].append(time_call(functools.partial(r.infer, batch), device))
            loads.append(load1())
            print(
                f"iter {it} {k}: train {times[(k, 'train')][-1]:.3f} s, infer {times[(k, 'infer')][-1]:.3f} s"
                f"  load {loads[-1]:.2f}",
                flush=True,
            )
    med = {key: statistics.median(v) for key, v in times.items()}

    # fusion modules alone, on the same token tensors
    g = torch.Generator().manual_seed(3)
    img_tok = torch.randn(args.batch, 197, 768, generator=g).to(device)
    txt_tok = torch.randn(args.batch, 77, 512, generator=g).to(device)
    mask = torch.zeros(args.batch, 77, dtype=torch.bool)
    for i in range(args.batch):
        mask[i, : 48 + i % 10] = True  # ≈ 29 of 77 positions are padding (papers.md)
    mask = mask.to(device)
    torch.manual_seed(0)
    fusions: dict[str, nn.Module] = {
        "rsmg": DualCrossAttentionFusion(768, 512, 512, 4, 2, True, 0.05, 0.1, 2.0).to(device),
        "reference": ReferenceFusion().to(device),
    }
    head = nn.Linear(1280, NUM_CLASSES).to(device)

    def fusion_fwd(k: str) -> torch.Tensor:
        f = fusions[k]
        out = f(img_tok, txt_tok, mask).fused if k == "rsmg" else f(img_tok, txt_tok)
        return head(out)

    def fusion_train(k: str) -> None:
        fusions[k].train()
        with torch.autocast(device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
            loss = F.cross_entropy(fusion_fwd(k).float(), batch["label"])
        fusions[k].zero_grad(set_to_none=True)
        loss.backward()

    def fusion_infer(k: str) -> None:
        fusions[k].eval()
        with (
            torch.inference_mode(),
            torch.autocast(device.type, dtype=amp or torch.bfloat16, enabled=amp is not None),
        ):
            fusion_fwd(k)

    ftimes: dict[tuple[str, str], list[float]] = {(k, m): [] for k in kinds for m in ("train", "infer")}
    for k in kinds:
        fusion_train(k)
        fusion_infer(k)
    fflops = {k: count_flops(functools.partial(fusion_train, k)) for k in kinds}
    for _ in range(args.fusion_iters):
        for k in kinds:
            ftimes[(k, "train")].append(time_call(functools.partial(fusion_train, k), device))
            ftimes[(k, "infer")].append(time_call(functools.partial(fusion_infer, k), device))
    fmed = {key: statistics.median(v) for key, v in ftimes.items()}
    fusion_load = load1()
    print(
        "fusion only: "
        + ", ".join(f"{k} {m} {v * 1e3:.1f} ms" for (k, m), v in fmed.items())
        + f"  load {fusion_load:.2f}",
        flush=True,
    )

    peak1, peak1_load = matmul_peak_flops(device, dtype, 2048, args.peak_seconds), load1()
    print(f"matmul peak (end): {peak1 / 1e9:,.1f} GFLOP/s  load {peak1_load:.2f}", flush=True)
    peak = max(peak0, peak1)

    b = args.batch
    sps = {key: b / v for key, v in med.items()}
    ratio_train = sps[("rsmg", "train")] / sps[("reference", "train")]
    ratio_infer = sps[("rsmg", "infer")] / sps[("reference", "infer")]
    # run-to-run spread: largest (max - min) / median of one model's iteration times, per mode
    spread = {
        m: max((max(times[(k, m)]) - min(times[(k, m)])) / med[(k, m)] for k in kinds)
        for m in ("train", "infer")
    }

    def verdict(ratio: float, mode: str) -> str:
        if ratio >= 1.0:
            return "met"
        if 1.0 - ratio < spread[mode]:
            return f"not resolved: below 1.0 by less than the run-to-run spread ±{100 * spread[mode]:.0f} %"
        return "NOT met"

    mfu_r = {k: mfu(flops[k], med[(k, "train")], peak) for k in kinds}
    mfu_i = {k: mfu(flops_inf[k], med[(k, "infer")], peak) for k in kinds}
    mem_kind = (
        "CUDA max_memory_allocated"
        if device.type == "cuda"
        else "peak RSS of a fresh process per model, sampled"
    )
    name = {"rsmg": "rsmg CaptionClassifier (cross_attention)", "reference": "reference re-implementation"}

    def memcell(k: str, key: str) -> str:
        return f"{mem[k][key]:,.0f} MiB" if k in mem else "—"

    lines = [
        "# Caption-model throughput: rsmg dual cross-attention vs the reference design",
        "",
        f"Command: `{command(data=False)}`  ",
        f"Machine: {mach}  ",
        f"Device: {dev_name}; {threads}; compute dtype {dname}{' (autocast)' if amp else ''}; batch {b}; medians of "
        f"{args.iters} interleaved iterations after {args.warmup} warm-up; load average = 1-min value.  ",
        "Data: **generated inputs, throughput only** — random 224×224 RGB images and random captions of 25–60 "
        "words (rsmg pads to the longest caption of the batch and masks; the reference pads to 77 and does "
        "not mask).  ",
        "Models: ViT-B/16 (timm `vit_base_patch16_224`, 197×768 tokens) + CLIP-size text tower (width 512, 12 "
        "layers, 8 heads, 77 tokens, frozen"
        + (", trained" if args.train_text else "")
        + "), fusion width 512, "
        "4 heads, 2 shared levels, random init; see the script docstring for the reference's design and defects.  ",
        f"Matmul peak measured in this run (2048² {dname}): {peak0 / 1e9:,.1f} GFLOP/s before the timing (load "
        f"{peak0_load:.2f}), {peak1 / 1e9:,.1f} GFLOP/s at end (load {peak1_load:.2f}); MFU uses the higher.",
        "",
        "## Whole model",
        "",
        f"| model | params (trainable) | train samples/s | infer samples/s | FLOPs / train step | MFU train | "
        f"MFU infer | peak memory infer / train ({mem_kind}) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *[
            f"| {name[k]} | {params[k] / 1e6:.1f} M ({trainable[k] / 1e6:.1f} M) | {sps[(k, 'train')]:.2f} | "
            f"{sps[(k, 'infer')]:.2f} | {fmt_flops(flops[k])} | {100 * mfu_r[k]:.1f} % | {100 * mfu_i[k]:.1f} % | "
            f"{memcell(k, 'infer_mib')} / {memcell(k, 'train_mib')} |"
            for k in kinds
        ],
        "",
        f"rsmg / reference throughput (target ≥ 1.0×): training {ratio_train:.2f}× ({verdict(ratio_train, 'train')}), "
        f"inference {ratio_infer:.2f}× ({verdict(ratio_infer, 'infer')}). Run-to-run spread of iteration times: "
        f"±{100 * spread['train']:.0f} % (train), ±{100 * spread['infer']:.0f} % (infer); load average during the "
        f"timed iterations {min(loads):.2f}–{max(loads):.2f}.",
        f"MFU of the rsmg training step: {100 * mfu_r['rsmg']:.1f} % of the measured peak (target ≥ 40 %: "
        + ("met" if mfu_r["rsmg"] >= 0.4 else "NOT met")
        + "). The ViT-B/16 and the text tower are ≈ 95 % of "
        "the FLOPs, so the whole-model ratio mostly measures the shared encoders; "
        + (
            "on this CPU the gap to the peak is attention softmax / LayerNorm / GELU / AdamW memory traffic that "
            "FlopCounterMode does not count, and a batch of 4 whose matmuls are smaller than the 2048² peak "
            "matmuls."
            if device.type == "cpu"
            else "see the fusion-only table for the part that differs."
        ),
        "",
        "## Fusion modules alone (same token tensors: 197×768 image, 77×512 text, ≈ 29 padded positions)",
        "",
        "| fusion | train step (fwd+bwd, ms) | inference (ms) | FLOPs fwd+bwd | MFU train |",
        "|---|---:|---:|---:|---:|",
        *[
            f"| {name[k]} | {fmed[(k, 'train')] * 1e3:.1f} | {fmed[(k, 'infer')] * 1e3:.1f} | {fmt_flops(fflops[k])} | "
            f"{100 * mfu(fflops[k], fmed[(k, 'train')], peak):.1f} % |"
            for k in kinds
        ],
        "",
        f"Medians of {args.fusion_iters} interleaved iterations, load {fusion_load:.2f}. The reference computes "
        "attention over 77 text positions incl. padding, materialises the head-averaged attention weights "
        "(`need_weights=True` default) and its text self-attention mixes the batch; rsmg uses "
        "`scaled_dot_product_attention` with a padding mask and folds the 512→768 back-projection into the "
        "attention output projection.",
        "",
        "## Key numbers",
        "",
        f"- device: {dev_name}, batch {b}",
        f"- matmul peak: {peak / 1e9:,.1f} GFLOP/s ({dname})",
        f"- rsmg train / infer samples/s: {sps[('rsmg', 'train')]:.2f} / {sps[('rsmg', 'infer')]:.2f} "
        f"(load {statistics.median(loads):.2f})",
        f"- reference train / infer samples/s: {sps[('reference', 'train')]:.2f} / {sps[('reference', 'infer')]:.2f}",
        f"- rsmg / reference: train {ratio_train:.2f}× ({verdict(ratio_train, 'train')}), infer "
        f"{ratio_infer:.2f}× ({verdict(ratio_infer, 'infer')}) (target ≥ 1.0×)",
        f"- MFU rsmg train / infer: {100 * mfu_r['rsmg']:.1f} % / {100 * mfu_i['rsmg']:.1f} % (target ≥ 40 %)",
        f"- fusion only, rsmg / reference train time: {fmed[('rsmg', 'train')] * 1e3:.1f} / "
        f"{fmed[('reference', 'train')] * 1e3:.1f} ms",
    ]
    if mem:
        lines.append(
            f"- peak memory train rsmg / reference: {mem['rsmg']['train_mib']:,.0f} / "
            f"{mem['reference']['train_mib']:,.0f} MiB ({mem_kind})"
        )
    lines.append("")
    write_result("captions/fusion_throughput.md", "\n".join(lines))


if __name__ == "__main__":
    main(cli(Options, description=__doc__))
