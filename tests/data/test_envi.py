"""ENVI rasters (``.hdr`` + binary) from a user catalog: read, checked against the sensor, fitted and mapped.

The files are crops of the real Indian Pines cube (AVIRIS, 200 bands, uint16) written by GDAL's ENVI driver,
with the published band centres as the header's ``wavelength`` and ``data ignore value`` marking a nodata
block. The reader must return the crop, its mask and the centres in nm (also from micrometres); a missing
header or binary, a truncated binary and wavelengths without units are errors naming the file, the field and
the fix. End to end, ``rsmg fit`` on a labelled ENVI scene and ``rsmg predict`` of an unlabelled one (named by
its binary, georeferenced through ``map info``) write the GeoTIFF map on the target's grid.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from _budget import SMOKE_BUDGET
from _cli import call_rsmg
from _experiments import config_args
from _paths import SHARED_DATA, missing_shared_data
from rsmg.data import catalog
from rsmg.data.readers import read_envi
from rsmg.errors import DataError

IP = SHARED_DATA / "indian_pines"
SRC, DST = (slice(30, 70), slice(20, 60)), (slice(100, 140), slice(40, 80))  # 40 × 40 px each
NODATA_BLOCK = (slice(0, 6), slice(0, 8))
CRS = "EPSG:32616"
CLASSES = ["Alfalfa", "Corn-notill", "Corn-mintill", "Corn", "Grass-pasture", "Grass-trees", "Grass-pasture-mowed",
           "Hay-windrowed", "Oats", "Soybean-notill", "Soybean-mintill", "Soybean-clean", "Wheat", "Woods",
           "Buildings-Grass-Trees-Drives", "Stone-Steel-Towers"]  # fmt: skip
CATALOG = f"""\
datasets:
  ip_src:
    kind: scene
    description: Indian Pines crop, ENVI cube named by its header, labels as .npy
    classes: {CLASSES}
    labels: {{file: ip_src/labels.npy}}
    modalities:
      hsi: {{file: ip_src/cube.hdr, sensor: aviris_indian_pines}}
  ip_map:
    kind: scene
    description: another Indian Pines crop, ENVI cube named by its binary, no labels
    modalities:
      hsi: {{file: ip_map/cube.img, sensor: aviris_indian_pines}}
"""


def _cube() -> tuple[np.ndarray, np.ndarray, list[float]]:
    if not (IP / "Indian_pines_corrected.npy").is_file():
        missing_shared_data(IP, "Indian Pines cube")
    cube = np.moveaxis(np.load(IP / "Indian_pines_corrected.npy"), -1, 0)  # 200 × 145 × 145 uint16
    return (
        cube,
        np.load(IP / "Indian_pines_gt.npy"),
        json.loads((IP / "wavelengths.json").read_text())["wavelength_nm"],
    )


def write_envi(path: Path, bands: np.ndarray, header_lines: str = "", *, georef: bool = False) -> Path:
    """``path`` (the binary) + its ``.hdr`` through GDAL's ENVI driver, with extra header lines appended."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.transform import Affine

    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {"driver": "ENVI", "height": bands.shape[1], "width": bands.shape[2], "count": bands.shape[0],
               "dtype": bands.dtype.name}  # fmt: skip
    if georef:
        profile |= {"crs": CRS, "transform": Affine(20.0, 0, 500_000.0, 0, -20.0, 4_500_000.0)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(bands)
    header = path.with_suffix(".hdr")
    header.write_text(header.read_text().rstrip("\n") + "\n" + header_lines)
    return header


def _wavelength_lines(values: list[float], units: str | None = "Nanometers") -> str:
    unit = f"wavelength units = {units}\n" if units else ""
    return unit + "wavelength = {" + ",\n ".join(f"{w:g}" for w in values) + "}\n"


def test_envi_reads_values_mask_and_band_centres(tmp_path: Path) -> None:
    cube, _, nm = _cube()
    crop = cube[:, DST[0], DST[1]].copy()
    crop[:, NODATA_BLOCK[0], NODATA_BLOCK[1]] = 0
    header = write_envi(tmp_path / "cube.img", crop, _wavelength_lines(nm) + "data ignore value = 0\n")
    for name in (header, tmp_path / "cube.img"):  # named by its header or by its binary
        r = read_envi(name)
        valid = np.ones((40, 40), dtype=bool)
        valid[NODATA_BLOCK] = False
        assert r.array.shape == (200, 40, 40) and r.array.dtype == np.float32
        assert np.array_equal(r.array[:, valid], crop[:, valid].astype(np.float32))
        assert np.array_equal(r.mask, valid) and r.meta["nodata"] == 0.0 and r.meta["header"] == str(header)
        np.testing.assert_allclose(r.meta["wavelengths_nm"], nm)
    write_envi(tmp_path / "um.img", crop[:3], _wavelength_lines([w / 1000 for w in nm[:3]], "Micrometers"))
    np.testing.assert_allclose(read_envi(tmp_path / "um.hdr").meta["wavelengths_nm"], nm[:3])
    write_envi(tmp_path / "plain.img", crop[:3])
    assert read_envi(tmp_path / "plain.img").meta["wavelengths_nm"] is None  # a header without wavelengths


def test_envi_errors_name_the_file_the_field_and_the_fix(tmp_path: Path) -> None:
    cube, _, nm = _cube()
    crop = cube[:3, :20, :20]
    header = write_envi(tmp_path / "a.img", crop)
    header.unlink()
    with pytest.raises(DataError, match="ENVI binary without its header") as err:
        read_envi(tmp_path / "a.img")
    assert "a.img" in str(err.value) and "field: header (.hdr)" in str(err.value) and "fix:" in str(err.value)
    write_envi(tmp_path / "b.img", crop)
    (tmp_path / "b.img").unlink()
    with pytest.raises(DataError, match="ENVI header without its binary") as err:
        read_envi(tmp_path / "b.hdr")
    assert "b.hdr" in str(err.value) and "b.img" in str(err.value)
    write_envi(tmp_path / "c.img", crop)
    with open(tmp_path / "c.img", "r+b") as fh:
        fh.truncate(1000)  # a copy cut short: GDAL would fill the rest with zeros
    with pytest.raises(DataError, match="shorter than its header says") as err:
        read_envi(tmp_path / "c.hdr")
    assert f"{3 * 20 * 20 * 2} bytes" in str(err.value) and "1000 bytes" in str(err.value)
    write_envi(tmp_path / "d.img", crop, _wavelength_lines(nm[:3], units=None))
    with pytest.raises(DataError, match="units") as err:
        read_envi(tmp_path / "d.img")
    assert "d.hdr" in str(err.value) and "wavelength units = Nanometers" in str(err.value)
    (tmp_path / "e.img").write_bytes(b"\0" * 64)
    (tmp_path / "e.hdr").write_text("this is not an ENVI header\n")
    with pytest.raises(DataError, match="do not make a readable pair"):
        read_envi(tmp_path / "e.img")


@pytest.fixture
def envi_catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(catalog.CATALOG_ENV, "")  # use_catalog writes the variable; restored after the test
    cube, gt, nm = _cube()
    write_envi(tmp_path / "ip_src/cube.img", cube[:, SRC[0], SRC[1]].copy(), _wavelength_lines(nm))
    np.save(tmp_path / "ip_src/labels.npy", gt[SRC])
    target = cube[:, DST[0], DST[1]].copy()
    target[:, NODATA_BLOCK[0], NODATA_BLOCK[1]] = 0
    write_envi(
        tmp_path / "ip_map/cube.img", target, _wavelength_lines(nm) + "data ignore value = 0\n", georef=True
    )
    path = tmp_path / "envi.yaml"
    path.write_text(CATALOG)
    return path


def test_band_centres_of_another_sensor_are_refused(envi_catalog: Path) -> None:
    _, _, nm = _cube()
    header = envi_catalog.parent / "ip_map/cube.hdr"
    text = header.read_text()
    header.write_text(text[: text.index("wavelength units")] + _wavelength_lines([w + 30 for w in nm]))
    catalog.use_catalog(envi_catalog)
    with pytest.raises(DataError, match="not those of sensor 'aviris_indian_pines'") as err:
        catalog.load_scene("ip_map", ["hsi"])
    assert str(header) in str(err.value) and "field: wavelength" in str(err.value)
    assert "register_sensor" in str(err.value)


def test_fit_and_predict_an_envi_scene_from_a_user_catalog(envi_catalog: Path, tmp_path: Path) -> None:
    import rasterio

    data = ("--data.init_args.catalog", str(envi_catalog), "--data.init_args.sources", "[ip_src]",
            "--data.init_args.targets", "[ip_map]", "--data.init_args.modalities", "[hsi]",
            "--data.init_args.class_set", "native", "--data.init_args.source_split", "all",
            "--data.init_args.patch_size", "5", "--data.init_args.ndsm_bands", "[]",
            "--data.init_args.standardize", "{}", "--model.init_args.net.init_args.width", "8")  # fmt: skip
    logs = ("--trainer.logger.init_args.save_dir", str(tmp_path / "logs"), "--trainer.logger.init_args.version",
            "envi", "--trainer.default_root_dir", str(tmp_path), "--trainer.enable_progress_bar", "false")  # fmt: skip
    call_rsmg("fit", *config_args("baseline_trento_to_muufl"), *data, *SMOKE_BUDGET, *logs, cwd=tmp_path)
    run = tmp_path / "logs/baseline_trento_to_muufl/envi"
    p = call_rsmg("predict", "--config", str(run / "config.yaml"), "--ckpt_path", "last", cwd=tmp_path)
    tif = run / "predict_0/prediction_ip_map.tif"
    assert f"classification map of ip_map written to {tif} ({CRS})" in p.stdout
    with rasterio.open(tif) as src:
        m, crs, transform = src.read(1), src.crs.to_string(), tuple(src.transform)[:6]
    assert crs == CRS and transform == (20.0, 0.0, 500_000.0, 0.0, -20.0, 4_500_000.0)  # the ENVI map info
    valid = np.ones((40, 40), dtype=bool)
    valid[NODATA_BLOCK] = False
    assert (m[~valid] == 255).all() and (m[valid] < len(CLASSES)).all()
    z = np.load(run / "predict_0/predictions_ip_map.npz")
    assert len(z["pred"]) == valid.sum() and np.array_equal(m[z["row"], z["col"]], z["pred"])
