"""The README's "Your own data" example, run as written: catalog file, ``rsmg fit``, ``rsmg predict`` → GeoTIFF map.

The test reads the section's YAML block (the catalog) and its bash block (the commands) from README.md, so an
edit of the README that reality does not follow fails here. It writes the GeoTIFFs the catalog names from the
real Trento LiDAR (2 bands: height above ground, intensity) and ground truth of the shared data pack, with an
assumed UTM 32N georeference at 1 m (the ``.mat`` files carry none): the labelled scene from columns 0-239, the
scene to map from columns 260-419 plus 20 columns of nodata (-9999) past the survey's edge, on its own grid.

What the test changes, and only that: ``.venv/bin/rsmg`` is called in process (``tests/_cli.py``) in a temporary
folder where ``experiments/`` links to the repository's, and the fit gets the smoke budget
(``tests/_budget.py``: 1 epoch, 3 training batches) appended, for speed.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from _budget import SMOKE_BUDGET
from _cli import call_rsmg
from _paths import REPO, SHARED_DATA, missing_shared_data
from rsmg.data import catalog

SECTION = "## Your own data"
CRS = "EPSG:32632"  # UTM 32N: Trento's zone
ORIGIN = (664_000.0, 5_104_000.0)  # metres; an assumed north-west corner of the Trento raster
COLS_LABELLED, COLS_TO_MAP = slice(0, 240), slice(260, 420)
NODATA, NODATA_COLS = -9999.0, 20
# the packaged `shared` classes present in columns 0-239 under the README's mapping, in the set's order
EXPECTED_CLASSES = ["trees", "ground", "road", "buildings"]


def readme_example() -> tuple[str, list[list[str]], str]:
    """The section's catalog YAML, its commands (argument lists) and the map path its comment promises."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert SECTION in text, f"README.md lost its {SECTION!r} section"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```(\w+)\n(.*?)^```$", section, flags=re.M | re.S)
    yamls = [body for lang, body in blocks if lang == "yaml"]
    bashes = [body for lang, body in blocks if lang == "bash"]
    assert len(yamls) == 1 and len(bashes) == 1, (
        "the section holds one catalog (yaml) and one command (bash) block"
    )
    commands = [shlex.split(line, comments=True) for line in bashes[0].replace("\\\n", " ").splitlines()]
    commands = [c for c in commands if c]
    promised = re.findall(r"->\s*(\S+/prediction_\S+\.tif)", bashes[0])
    assert len(promised) == 1, (
        "the bash block names the map it writes (# ... -> <run>/predict_0/prediction_<domain>.tif)"
    )
    return yamls[0], commands, promised[0]


def _write_tif(path: Path, bands: np.ndarray, *, column: int, nodata: float | None = None) -> None:
    import rasterio
    from rasterio.transform import Affine

    path.parent.mkdir(parents=True, exist_ok=True)
    transform = Affine(1.0, 0.0, ORIGIN[0] + column, 0.0, -1.0, ORIGIN[1])  # 1 m, north-up
    profile = {"driver": "GTiff", "height": bands.shape[1], "width": bands.shape[2], "count": bands.shape[0],
               "dtype": bands.dtype.name, "crs": CRS, "transform": transform, "nodata": nodata}  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(bands)


def _write_scenes(cat: dict[str, Any], folder: Path) -> tuple[Path, str]:
    """The catalog's GeoTIFFs from real Trento crops; returns the raster to map and its scene's name."""
    trento = catalog.load_scene("trento", ["lidar"], root=SHARED_DATA)
    lidar = trento.modalities["lidar"].astype(np.float32)  # 2 x 166 x 600: height above ground, intensity
    labelled = [k for k, v in cat["datasets"].items() if "labels" in v]
    to_map = [k for k, v in cat["datasets"].items() if "labels" not in v]
    assert len(labelled) == 1 and len(to_map) == 1, "the example has one labelled scene and one to map"
    src, dst = cat["datasets"][labelled[0]], cat["datasets"][to_map[0]]
    assert src["classes"] == list(trento.class_names), "label values 1..K are Trento's classes, in its order"
    start = COLS_LABELLED.start
    _write_tif(folder / src["modalities"]["lidar"]["file"], lidar[:, :, COLS_LABELLED], column=start)
    labels = trento.labels[None, :, COLS_LABELLED].astype(np.uint8)
    _write_tif(folder / src["labels"]["file"], labels, column=start)
    crop = lidar[:, :, COLS_TO_MAP]
    beyond = np.full((crop.shape[0], crop.shape[1], NODATA_COLS), NODATA, dtype=np.float32)
    target = folder / dst["modalities"]["lidar"]["file"]
    _write_tif(target, np.concatenate([crop, beyond], axis=2), column=COLS_TO_MAP.start, nodata=NODATA)
    return target, to_map[0]


def test_readme_example_is_three_steps_with_the_shipped_pieces() -> None:
    _, commands, promised = readme_example()
    assert [c[:2] for c in commands] == [[".venv/bin/rsmg", "fit"], [".venv/bin/rsmg", "predict"]]
    configs = [commands[0][i + 1] for i, a in enumerate(commands[0]) if a == "--config"]
    assert configs and all((REPO / c).is_file() for c in configs), configs
    assert promised.startswith(str(Path(commands[1][commands[1].index("--config") + 1]).parent))


def test_readme_own_data_example_maps_a_geotiff(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import rasterio

    if not (SHARED_DATA / "trento").is_dir():
        missing_shared_data(SHARED_DATA / "trento", "Trento LiDAR")
    monkeypatch.setenv(catalog.CATALOG_ENV, "")  # use_catalog writes the variable; restored after the test
    text, (fit, predict), promised = readme_example()
    cat_path = tmp_path / fit[fit.index("--data.init_args.catalog") + 1]
    cat_path.parent.mkdir(parents=True)
    cat_path.write_text(text, encoding="utf-8")  # step 1: the catalog file, verbatim
    target, domain = _write_scenes(yaml.safe_load(text), cat_path.parent)
    (tmp_path / "experiments").symlink_to(REPO / "experiments")

    call_rsmg(*fit[1:], *SMOKE_BUDGET, "--trainer.enable_progress_bar", "false", cwd=tmp_path)  # step 2
    p = call_rsmg(*predict[1:], cwd=tmp_path)  # step 3

    tif = tmp_path / promised
    assert tif.name == f"prediction_{domain}.tif" and tif.is_file(), sorted(tif.parent.parent.rglob("*"))
    assert f"classification map of {domain} written to" in p.stdout and CRS in p.stdout
    with rasterio.open(target) as src:
        grid = (src.crs, src.transform, src.shape)
    with rasterio.open(tif) as out:
        assert (out.crs, out.transform, out.shape) == grid  # the input's CRS and geotransform
        assert (out.count, out.dtypes[0], out.nodata) == (1, "uint8", 255)
        assert json.loads(out.tags()["CLASSES"]) == EXPECTED_CLASSES and out.tags()["DOMAIN"] == domain
        assert out.tags(1) == {f"CLASS_{k}": c for k, c in enumerate(EXPECTED_CLASSES)}
        m = out.read(1)
    assert (m[:, -NODATA_COLS:] == 255).all()  # past the survey's edge: not predicted
    assert (m[:, :-NODATA_COLS] < len(EXPECTED_CLASSES)).all()  # every valid pixel got a class
    assert tif.with_suffix(".png").is_file() and "quick look" in p.stdout  # the PNG the README promises
