"""Peak memory of ``rsmg predict`` on a whole unlabelled GeoTIFF scene: the real MUUFL raster and tiled copies.

Issue 25: predicting a scene without ground truth streams sliding-window patches, so memory is O(batch × patch)
plus the uint8 map, never the probabilities or patches of every pixel; and the scene is read in strips of rows
(rasterio windows), never whole, so the raster itself does not count either. Here one tiny model (Trento →
MUUFL baseline, width 8, three training steps) is fitted once; then ``rsmg predict`` runs in its own process per
scene, and that process's peak RSS is read from ``os.wait4``. The scenes are user-catalog entries without labels,
written as GeoTIFFs in a temporary folder: ``muufl_map`` (the real 325×220 LiDAR raster) and ``muufl_x<g*g>``
(the raster tiled g × g, e.g. 1300×880 for g = 4), read in strips of ``--strip-rows`` rows. Target: peak RSS at
4× the pixels ≤ 1.2× that at 1×.

Usage: ``RSMG_DATA_ROOT=../shared/data OMP_NUM_THREADS=1 .venv/bin/python benchmarks/predict_memory.py``
(``--grids 2`` drops the 16× scene; ``--before-src DIR`` also measures another checkout's ``src`` on the same
checkpoint and scenes in a second column, e.g. ``git archive <commit> src | tar -x -C /tmp/rsmg-<commit>``;
that checkout reads the scene whole, as rsmg did before windows).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from _common import BASELINE_LIDAR, ROOT, command, config_args, machine, write_result
from rsmg.cli.signature import cli

TARGET_RATIO = 1.2
CATALOG = """\
datasets:
{entries}
"""
ENTRY = """\
  {name}:
    kind: scene
    description: MUUFL LiDAR ({h} x {w} px), no labels, for rsmg predict
    modalities:
      lidar: {{file: {name}.tif, sensor: lidar_dsm_intensity, height: absolute}}
"""


def write_scenes(folder: Path, grids: list[int]) -> dict[str, tuple[int, int]]:
    """GeoTIFFs of the MUUFL LiDAR raster tiled g × g (g = 1: the raster itself) and their user catalog."""
    import rasterio
    from rasterio.transform import Affine

    from rsmg.data.catalog import resolve_root
    from rsmg.data.readers import read_mat

    lidar = np.moveaxis(read_mat(resolve_root() / "muufl/LiDAR.mat", key="LiDAR"), -1, 0).astype(np.float32)
    shapes, entries = {}, []
    for g in [1, *grids]:
        name = "muufl_map" if g == 1 else f"muufl_x{g * g}"
        bands = np.tile(lidar, (1, g, g))
        h, w = bands.shape[1:]
        profile = {"driver": "GTiff", "height": h, "width": w, "count": 2, "dtype": "float32",
                   "crs": "EPSG:32616", "transform": Affine(1.0, 0, 295_000.0, 0, -1.0, 3_360_000.0)}  # fmt: skip
        with rasterio.open(folder / f"{name}.tif", "w", **profile) as dst:
            dst.write(bands)
        shapes[name] = (h, w)
        entries.append(ENTRY.format(name=name, h=h, w=w))
    (folder / "scenes.yaml").write_text(CATALOG.format(entries="".join(entries)))
    return shapes


def rsmg(args: list[str], src: Path, log: Path) -> float:
    """Run ``python -m rsmg ARGS`` with ``src`` first on the path; return its peak RSS in MiB (fails loudly)."""
    env = {**os.environ, "PYTHONPATH": str(src), "PYTHONWARNINGS": "ignore"}
    with log.open("w") as out:
        p = subprocess.Popen(
            [sys.executable, "-m", "rsmg", *args], stdout=out, stderr=subprocess.STDOUT, env=env
        )
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.exit(f"rsmg {args[0]} failed ({p.returncode}):\n{log.read_text()[-3000:]}")
    return usage.ru_maxrss / 1024  # KiB on Linux


@dataclass(kw_only=True)
class Options:
    """Options of ``predict_memory.py``.

    Attributes:
        grids: tilings g (g × g copies of the raster) measured besides the raster itself
        strip_rows: rows per strip of a scene read in windows (``data.strip_rows``; 0: the data module's
            default of about 32 MiB per strip, which holds every scene here whole)
        before_src: another checkout's ``src`` measured too, on the same checkpoint and scenes
        eval_batch_size: predict batch size
    """

    grids: list[int] = field(default_factory=lambda: [2, 4])
    strip_rows: int = 128
    before_src: Path | None = None
    eval_batch_size: int = 256


def _config_without_strips(run: Path) -> Path:
    """The run's ``config.yaml`` without ``data.init_args.strip_rows``, an option a checkout before windows lacks."""
    import yaml

    config = yaml.safe_load((run / "config.yaml").read_text())
    config["data"]["init_args"].pop("strip_rows", None)
    path = run / "config_before.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def main(args: Options) -> None:
    strips = ["--data.init_args.strip_rows", str(args.strip_rows)] if args.strip_rows else []
    with tempfile.TemporaryDirectory(prefix="rsmg_predict_memory_") as tmp:
        folder = Path(tmp)
        shapes = write_scenes(folder, args.grids)
        catalog = str(folder / "scenes.yaml")
        logs = [
            "--trainer.logger.init_args.save_dir",
            str(folder / "logs"),
            "--trainer.enable_progress_bar",
            "false",
        ]
        fit = ["fit", *config_args(BASELINE_LIDAR),
               "--data.init_args.catalog", catalog, "--data.init_args.targets", "[muufl_map]",
               "--model.init_args.net.init_args.width", "8", "--trainer.max_epochs", "1",
               "--trainer.limit_train_batches", "3", "--trainer.limit_val_batches", "2",
               "--trainer.logger.init_args.version", "fit", *logs]  # fmt: skip
        t0 = time.perf_counter()
        rsmg(fit, ROOT / "src", folder / "fit.log")
        run = folder / "logs/baseline_trento_to_muufl/fit"
        print(f"fit: {time.perf_counter() - t0:.0f} s", flush=True)
        configs = {"now": run / "config.yaml", "before": _config_without_strips(run)}
        rows = []
        for name, (h, w) in shapes.items():
            rss = {}
            for label, src in [("now", ROOT / "src"), ("before", args.before_src)]:
                if src is None:
                    continue
                version = f"{name}_{label}"
                t0 = time.perf_counter()
                rss[label] = rsmg(
                    ["predict", "--config", str(configs[label]), "--ckpt_path",
                     str(run / "checkpoints/last.ckpt"), "--data.init_args.targets", f"[{name}]",
                     "--data.init_args.eval_batch_size", str(args.eval_batch_size),
                     "--trainer.logger.init_args.version", version, *logs,
                     *(strips if label == "now" else [])],
                    src, folder / f"{version}.log",
                )  # fmt: skip
                seconds = time.perf_counter() - t0
                with np.load(
                    folder / "logs/baseline_trento_to_muufl" / version / f"predictions_{name}.npz"
                ) as z:
                    assert len(z["pred"]) == h * w, (name, len(z["pred"]))  # every pixel predicted
                print(
                    f"{name} ({label}): {h}×{w} px, peak RSS {rss[label]:.0f} MiB, {seconds:.0f} s",
                    flush=True,
                )
                if label == "now":
                    wall = seconds
            rows.append((name, h, w, rss, wall))
    base = rows[0][3]["now"]
    before = args.before_src is not None
    table = [
        "| scene | size (px) | pixels | strips | peak RSS (MiB) | vs 1× | wall (s) |"
        + (" before: peak RSS (MiB) | vs 1× |" if before else ""),
        "|---|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if before else ""),
    ]
    for name, h, w, rss, seconds in rows:
        n_strips = str(-(-h // args.strip_rows)) if args.strip_rows else "default"
        line = (
            f"| {name} | {h}×{w} | {h * w:,} | {n_strips} | {rss['now']:.0f} | {rss['now'] / base:.3f}× "
            f"| {seconds:.0f} |"
        )
        if before:
            line += f" {rss['before']:.0f} | {rss['before'] / rows[0][3]['before']:.3f}× |"
        table.append(line)
    four = next((r for r in rows if r[1] * r[2] == 4 * rows[0][1] * rows[0][2]), None)
    if four is None:
        verdict = "no 4× scene in this run (add --grids 2)"
    else:
        ratio = four[3]["now"] / base
        verdict = (
            f"4× the pixels: peak RSS {ratio:.3f}× (target ≤ {TARGET_RATIO}×: "
            + ("met" if ratio <= TARGET_RATIO else f"missed by {ratio - TARGET_RATIO:.3f}×")
            + ")"
        )
    largest = rows[-1]
    if len(rows) > 2:
        factor = largest[1] * largest[2] // (rows[0][1] * rows[0][2])
        verdict += f"; {factor}× the pixels: {largest[3]['now'] / base:.3f}×"
        if before:
            verdict += f" (before windows: {largest[3]['before'] / rows[0][3]['before']:.3f}×)"
    threads = os.environ.get("OMP_NUM_THREADS")
    note = (
        f"Before: the same commands run with `{args.before_src}`, which reads the scene whole."
        if before
        else ""
    )
    text = "\n".join([
        "# Peak memory of `rsmg predict` on a whole unlabelled scene (real MUUFL LiDAR raster, tiled)",
        "",
        f"Command: `{f'OMP_NUM_THREADS={threads} ' if threads else ''}{command()}`  ",
        f"Machine: {machine()}  ",
        f"Result: {verdict}.",
        "",
        "Each `rsmg predict` runs in its own process (peak RSS from `os.wait4`): Trento → MUUFL baseline, width 8,",
        "11×11 patches, eval batch size " + f"{args.eval_batch_size}, every pixel of a GeoTIFF scene without labels",
        "(user catalog), read in " + (f"strips of {args.strip_rows} rows" if args.strip_rows else "default strips")
        + " (rasterio windows, with the patch's and the nDSM's",
        "margins); outputs: `predictions_<scene>.npz` / `.csv`, `prediction_<scene>.tif` and `prediction_<scene>.png`.",
        *([note] if note else []),
        "",
        *table,
        "",
        "What still grows with the scene: the uint8 map and the writer's filled-slot mask (a byte a pixel each), the",
        "PNG quick look built in memory before its atomic write, and allocator slack; the raster, its padded copy, the",
        "pixel positions and Lightning's per-batch index lists (about 36 bytes a pixel, emptied once written) no",
        "longer do (docs/decisions.md#windowed-prediction).",
        "",
    ])  # fmt: skip
    write_result("predict/memory.md", text)


if __name__ == "__main__":
    main(cli(Options, description=__doc__))
