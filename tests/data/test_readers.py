"""Tests of rsmg.data.readers on the tiny fixtures (tests/data/fixtures.py) and on the real shared data."""

from __future__ import annotations

import json
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io

from _paths import SHARED_DATA, missing_shared_data
from rsmg.data.readers import (
    CaptionRecord,
    Raster,
    check_finite,
    list_mat_keys,
    read_array,
    read_caption_txt,
    read_captions_coco_json,
    read_captions_karpathy_json,
    read_geotiff,
    read_image,
    read_mat,
    read_name_list,
    read_sydney_descriptions,
)
from rsmg.errors import DataError

from . import fixtures as fx


def real(rel: str) -> Path:
    """Path of a file in the shared data pack; skips the test where the pack (or the file) is absent."""
    p = SHARED_DATA / rel
    if not p.exists():
        missing_shared_data(p, "shared data file")
    return p


def data_error(path: Path, what: str, fix: str):
    """pytest.raises(DataError) whose message says ``what``, names ``path`` and has a fix matching ``fix``."""
    pattern = rf"(?s){what}.*\n  file: {re.escape(str(path))}(\n.*)?\n  fix: .*{fix}"
    return pytest.raises(DataError, match=pattern)


@pytest.fixture(scope="module")
def arr() -> dict[str, np.ndarray]:
    return fx.arrays()


# ----------------------------------------------------------------------------------------------------------
# fixtures themselves
# ----------------------------------------------------------------------------------------------------------


def test_fixtures_are_byte_for_byte_reproducible(fixture_dir, tmp_path):
    again = fx.make_all(tmp_path / "again")
    assert again.keys() == fixture_dir.keys()
    for name, p in fixture_dir.items():
        files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
        assert files, name
        for f in files:
            twin = again[name] / f.relative_to(p) if p.is_dir() else again[name]
            assert f.read_bytes() == twin.read_bytes(), f"{name}: {f} differs between runs"


def test_fixture_v73_is_really_hdf5_with_matlab_header(fixture_dir):
    p = fixture_dir["mat_v73"]
    assert p.read_bytes()[:10] == b"MATLAB 7.3"
    assert h5py.is_hdf5(p)
    with pytest.raises(NotImplementedError):  # scipy refuses it, so read_mat must take the h5py path
        scipy.io.loadmat(p)
    with h5py.File(p, "r") as f:  # stored column-major: HDF5 sees the axes reversed
        assert f["HSI"].shape == (5, fx.SIZE, fx.SIZE)
        assert f["HSI"].attrs["MATLAB_class"] == b"single"


def test_fixture_script_writes_files(tmp_path):
    assert fx.main([str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "scene_v5.mat").is_file()
    assert fx.main([]) == 2


# ----------------------------------------------------------------------------------------------------------
# GeoTIFF
# ----------------------------------------------------------------------------------------------------------


def test_geotiff_values_mask_and_meta(fixture_dir, arr):
    r = read_geotiff(fixture_dir["geotiff_rgb"])
    assert isinstance(r, Raster)
    assert r.array.dtype == np.float32 and r.array.shape == (3, 16, 16)
    assert r.mask.dtype == bool and r.mask.shape == (16, 16)
    expected_invalid = {*fx.NODATA_PIXELS, fx.NODATA_BAND1_ONLY}
    assert {tuple(map(int, rc)) for rc in np.argwhere(~r.mask)} == expected_invalid
    np.testing.assert_array_equal(r.array[:, r.mask], arr["rgb_tif"][:, r.mask].astype(np.float32))
    assert not r.array[:, ~r.mask].any()  # invalid pixels zero-filled in every band
    assert r.meta["crs"] == "EPSG:32633"
    assert r.meta["transform"] == (10.0, 0.0, 500000.0, 0.0, -10.0, 5000000.0)
    assert r.meta["nodata"] == 0.0
    assert r.meta["dtype"] == "uint16"
    assert r.meta["band_descriptions"] == ("B04", "B03", "B02")
    assert r.meta["path"] == str(fixture_dir["geotiff_rgb"])


def test_geotiff_band_selection_is_zero_based_and_ordered(fixture_dir, arr):
    r = read_geotiff(fixture_dir["geotiff_rgb"], bands=[2, 0])
    assert r.array.shape == (3 - 1, 16, 16)
    assert r.meta["band_descriptions"] == ("B02", "B04")
    np.testing.assert_array_equal(r.array[0, r.mask], arr["rgb_tif"][2, r.mask])
    np.testing.assert_array_equal(r.array[1, r.mask], arr["rgb_tif"][0, r.mask])
    assert r.mask[fx.NODATA_BAND1_ONLY]  # band 1 not read: its nodata pixel is valid here
    assert not r.mask[fx.NODATA_PIXELS[0]]


def test_geotiff_band_out_of_range(fixture_dir):
    p = fixture_dir["geotiff_rgb"]
    with data_error(p, "band index out of range", "0-based"):
        read_geotiff(p, bands=[3])
    with data_error(p, "band index out of range", "0-based"):
        read_geotiff(p, bands=[-1])


def test_geotiff_wrong_band_count(fixture_dir):
    p = fixture_dir["geotiff_rgb"]
    with data_error(p, "wrong number of bands", "sensor") as ei:
        read_geotiff(p, expected_count=4)
    assert ei.value.field == "band count" and ei.value.expected == 4 and ei.value.found == 3
    assert read_geotiff(p, expected_count=3).array.shape[0] == 3


def test_geotiff_scale(fixture_dir, arr):
    r = read_geotiff(fixture_dir["geotiff_rgb"], scale=1e-4)
    np.testing.assert_allclose(r.array[:, r.mask], arr["rgb_tif"][:, r.mask] * 1e-4, rtol=1e-6)
    assert r.meta["scale"] == 1e-4


def test_geotiff_single_band_without_nodata(fixture_dir, arr):
    r = read_geotiff(fixture_dir["geotiff_1band"])
    assert r.array.shape == (1, 16, 16) and r.mask.all()
    np.testing.assert_array_equal(r.array, arr["dsm_tif"])
    assert r.meta["nodata"] is None and r.meta["dtype"] == "float32"


def test_geotiff_nodata_policies(fixture_dir):
    p = fixture_dir["geotiff_rgb"]
    assert read_geotiff(p, nodata_policy="ignore").mask.all()
    with data_error(p, "nodata or non-finite pixels", "nodata_policy='mask'") as ei:
        read_geotiff(p, nodata_policy="reject")
    assert "4 of 256" in str(ei.value)
    with pytest.raises(ValueError, match="nodata_policy"):
        read_geotiff(p, nodata_policy="drop")  # type: ignore[arg-type]


def test_geotiff_nan_and_inf_are_masked(fixture_dir):
    p = fixture_dir["geotiff_nan"]
    for policy in ("mask", "ignore"):  # NaN/inf are masked even when the nodata tag is ignored
        r = read_geotiff(p, nodata_policy=policy)  # type: ignore[arg-type]
        assert {tuple(map(int, rc)) for rc in np.argwhere(~r.mask)} == {*fx.NAN_PIXELS, fx.INF_PIXEL}
        assert np.isfinite(r.array).all()
    with data_error(p, "non-finite", "mask") as ei:
        read_geotiff(p, nodata_policy="reject")
    assert "3 of 256 pixels" in str(ei.value)


def test_geotiff_not_a_raster(fixture_dir):
    p = fixture_dir["tif_not_raster"]
    with data_error(p, "file is corrupt or not a GeoTIFF", "re-download"):
        read_geotiff(p)


def test_geotiff_truncated(fixture_dir, tmp_path):
    raw = fixture_dir["geotiff_rgb"].read_bytes()
    p = tmp_path / "half.tif"
    p.write_bytes(raw[: len(raw) // 2])
    with data_error(p, "corrupt or not a GeoTIFF", "re-download"):
        read_geotiff(p)


def test_missing_file_and_directory(tmp_path):
    p = tmp_path / "nope.tif"
    with data_error(p, "does not exist", "check the path"):
        read_geotiff(p)
    with data_error(p, "does not exist", "check the path"):
        read_mat(p)
    with data_error(tmp_path, "not a regular file", "file inside"):
        read_image(tmp_path)


# ----------------------------------------------------------------------------------------------------------
# MATLAB
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mat_v5", "mat_v73"])
def test_mat_reads_every_variable(fixture_dir, arr, name):
    p = fixture_dir[name]
    assert list_mat_keys(p) == {"HSI": (16, 16, 5), "LiDAR": (16, 16, 2), "gt": (16, 16)}
    for key in ("HSI", "LiDAR", "gt"):
        got = read_mat(p, key)
        assert got.dtype == arr[key].dtype
        np.testing.assert_array_equal(got, arr[key])


def test_mat_v73_equals_scipy_on_v5(fixture_dir):
    v5 = scipy.io.loadmat(fixture_dir["mat_v5"])
    for key in ("HSI", "LiDAR", "gt"):
        got = read_mat(fixture_dir["mat_v73"], key=key)
        assert got.shape == v5[key].shape
        np.testing.assert_array_equal(got, v5[key])


def test_mat_key_detection(fixture_dir, arr):
    np.testing.assert_array_equal(read_mat(fixture_dir["mat_v5_single"]), arr["gt"])  # the only variable
    np.testing.assert_array_equal(read_mat(fixture_dir["mat_v5"], candidates=("labels", "gt")), arr["gt"])
    np.testing.assert_array_equal(read_mat(fixture_dir["mat_v73"], candidates=("LiDAR", "gt")), arr["LiDAR"])


@pytest.mark.parametrize("name", ["mat_v5", "mat_v73"])
def test_mat_ambiguous_and_missing_keys(fixture_dir, name):
    p = fixture_dir[name]
    with data_error(p, "ambiguous", "pass key=") as ei:
        read_mat(p)
    assert "['HSI', 'LiDAR', 'gt']" in str(ei.value)
    with data_error(p, "ambiguous", "pass key=") as ei:
        read_mat(p, candidates=("labels",))
    assert "labels" in str(ei.value)
    with data_error(p, "no array named 'hsi'", "did you mean 'HSI'") as ei:
        read_mat(p, key="hsi")
    assert "one of ['HSI', 'LiDAR', 'gt']" in str(ei.value)


def test_mat_truncated(fixture_dir):
    p = fixture_dir["mat_truncated"]
    # scipy's whosmat would silently list only the variables before the cut
    assert [v[0] for v in scipy.io.whosmat(p)] == ["HSI"]
    with data_error(p, "truncated", "re-download"):
        read_mat(p, key="HSI")
    with data_error(p, "truncated", "re-download"):
        list_mat_keys(p)
    q = fixture_dir["mat73_truncated"]
    with data_error(q, "truncated, corrupt", "re-download"):
        read_mat(q, key="HSI")
    with data_error(q, "truncated, corrupt", "re-download"):
        list_mat_keys(q)


def test_mat_not_a_mat_file(fixture_dir):
    p = fixture_dir["tif_not_raster"]
    with data_error(p, "not a MATLAB file", "re-download"):
        read_mat(p)


def test_mat_v73_header_without_hdf5_body(fixture_dir, tmp_path):
    p = tmp_path / "short73.mat"
    p.write_bytes(fixture_dir["mat_v73"].read_bytes()[:300])  # cut inside the 512-byte MATLAB header block
    with data_error(p, "corrupt", "re-download"):
        read_mat(p)


def test_mat_non_numeric_variables(tmp_path):
    p5 = tmp_path / "struct.mat"
    scipy.io.savemat(p5, {"s": {"a": 1.0}, "name": "trento"})
    with data_error(p5, "'s' is not a numeric array", "numeric"):
        read_mat(p5, key="s")
    with data_error(p5, "'name' is not a numeric array", "numeric"):
        read_mat(p5, key="name")
    p73 = tmp_path / "char73.mat"
    with h5py.File(p73, "w") as f:
        ds = f.create_dataset("name", data=np.frombuffer(b"trento", np.uint8).astype(np.uint16)[:, None])
        ds.attrs["MATLAB_class"] = np.bytes_("char")
        f.create_group("s").attrs["MATLAB_class"] = np.bytes_("struct")
        f.create_dataset("x", data=np.arange(6.0).reshape(2, 3)).attrs["MATLAB_class"] = np.bytes_("double")
    assert list_mat_keys(p73) == {"name": (1, 6), "s": (1, 1), "x": (3, 2)}
    with data_error(p73, "'name' is not a numeric array", "numeric"):
        read_mat(p73, key="name")
    with data_error(p73, "'s' is not a numeric array", "numeric"):
        read_mat(p73, key="s")
    np.testing.assert_array_equal(read_mat(p73, key="x"), np.arange(6.0).reshape(2, 3).T)


# ----------------------------------------------------------------------------------------------------------
# numpy
# ----------------------------------------------------------------------------------------------------------


def test_npy_and_npz(fixture_dir, arr):
    np.testing.assert_array_equal(read_array(fixture_dir["npy"]), arr["npy"])
    p = fixture_dir["npz"]
    np.testing.assert_array_equal(read_array(p, key="labels"), arr["npz_labels"])
    np.testing.assert_array_equal(read_array(p, candidates=("x", "features")), arr["npz_features"])
    with data_error(p, "ambiguous", "pass key="):
        read_array(p)
    with data_error(p, "no array named 'label'", "did you mean 'labels'"):
        read_array(p, key="label")


def test_array_bad_files(fixture_dir, tmp_path):
    pickled = tmp_path / "obj.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with data_error(pickled, "pickled", "re-save"):
        read_array(pickled)
    trunc = tmp_path / "trunc.npy"
    trunc.write_bytes(fixture_dir["npy"].read_bytes()[:100])
    with data_error(trunc, "truncated or corrupt", "re-download"):
        read_array(trunc)
    badzip = tmp_path / "bad.npz"
    badzip.write_bytes(b"PK\x03\x04 not really a zip")
    with data_error(badzip, "truncated or corrupt", "re-download"):
        read_array(badzip)
    with data_error(fixture_dir["mat_v5"], "unsupported array file extension", "numpy.save"):
        read_array(fixture_dir["mat_v5"])


# ----------------------------------------------------------------------------------------------------------
# images
# ----------------------------------------------------------------------------------------------------------


def test_read_image_formats(fixture_dir, arr):
    png = read_image(fixture_dir["png"])
    assert png.dtype == np.uint8
    np.testing.assert_array_equal(png, arr["png"])
    gray = read_image(fixture_dir["png_gray"])
    assert gray.shape == (16, 16, 1)
    np.testing.assert_array_equal(gray[..., 0], arr["png_gray"])
    jpg = read_image(fixture_dir["jpeg"])
    assert jpg.shape == (16, 16, 3) and jpg.dtype == np.uint8
    assert np.abs(jpg.astype(int) - arr["jpeg"].astype(int)).max() <= 8  # lossy, but close


def test_read_image_16bit_and_palette(tmp_path):
    from PIL import Image

    p16 = tmp_path / "i16.png"
    a16 = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(np.uint16)
    Image.fromarray(a16).save(p16)
    got = read_image(p16)
    assert got.dtype == np.float32 and got.shape == (8, 8, 1)
    np.testing.assert_array_equal(got[..., 0], a16.astype(np.float32))
    pp = tmp_path / "pal.png"
    Image.fromarray(np.full((4, 4, 3), [10, 200, 30], np.uint8)).convert(
        "P", palette=Image.Palette.ADAPTIVE
    ).save(pp)
    np.testing.assert_array_equal(read_image(pp)[0, 0], [10, 200, 30])


def test_read_image_bad_files(fixture_dir, tmp_path):
    p = fixture_dir["tif_not_raster"]
    with data_error(p, "not an image", "re-download"):
        read_image(p)
    raw = fixture_dir["png"].read_bytes()
    t = tmp_path / "half.png"
    t.write_bytes(raw[: len(raw) // 2])
    with data_error(t, "truncated or corrupt", "re-download"):
        read_image(t)


# ----------------------------------------------------------------------------------------------------------
# check_finite
# ----------------------------------------------------------------------------------------------------------


def test_check_finite():
    a = np.ones((2, 3, 3), np.float32)
    a[0, 1, 1] = np.nan
    a[1, 2, 0] = -np.inf
    m = check_finite(a, file="x.tif", field="b", policy="mask")
    assert m.shape == a.shape and int((~m).sum()) == 2
    pix = check_finite(a, file="x.tif", field="b", policy="mask", axis=0)
    assert pix.shape == (3, 3) and not pix[1, 1] and not pix[2, 0] and pix.sum() == 7
    with pytest.raises(
        DataError, match=r"(?s)file: x.tif.*found: 2 of 18 values non-finite \(1 NaN, 1 ±inf\).*fix: "
    ):
        check_finite(a, file="x.tif", field="b", policy="reject")
    assert check_finite(np.arange(4), file=None, field="i", policy="reject").all()
    with pytest.raises(ValueError, match="policy"):
        check_finite(a, file=None, field="b", policy="zero")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------------------
# captions
# ----------------------------------------------------------------------------------------------------------


def test_aid_caption_folder(fixture_dir):
    root = fixture_dir["aid_root"]
    expected = fx.captions()["aid"]
    images = sorted((root / "image").glob("*/*.jpg"))
    assert len(images) == len(fx.AID_CLASSES) * fx.AID_PER_CLASS
    for img in images:
        txt = root / "text" / img.parent.name / (img.stem + ".txt")
        assert read_caption_txt(txt) == expected[f"{img.parent.name}/{img.stem}"].strip()
        assert read_image(img).shape == (16, 16, 3)


def test_caption_txt_bad(fixture_dir, tmp_path):
    p = fixture_dir["caption_latin1"]
    with data_error(p, "not valid UTF-8", "re-encode the file as UTF-8") as ei:
        read_caption_txt(p)
    assert ei.value.field == "byte 3"
    e = fixture_dir["caption_empty"]
    with data_error(e, "caption file is empty", "write the caption"):
        read_caption_txt(e)
    bom = tmp_path / "bom.txt"
    bom.write_bytes("\ufeffcafé by the sea\r\n".encode())
    assert read_caption_txt(bom) == "café by the sea"


def test_karpathy_json(fixture_dir):
    recs = read_captions_karpathy_json(fixture_dir["karpathy_json"])
    expected = fx.captions()["karpathy"]
    assert list(recs) == [e["filename"] for e in expected]
    for e in expected:
        assert recs[e["filename"]] == CaptionRecord(
            e["filename"], [c.strip() for c in e["captions"]], e["split"]
        )


def test_karpathy_json_truncated(fixture_dir):
    p = fixture_dir["json_truncated"]
    with data_error(p, "not valid JSON", "re-download") as ei:
        read_captions_karpathy_json(p)
    assert ei.value.field.startswith("line ")


def test_karpathy_json_bad_structure(tmp_path):
    cases = {
        "nolist.json": ({"imgs": []}, "images"),
        "nocaps.json": ({"images": [{"filename": "a.tif", "sentences": []}]}, r"images\[0\]\.sentences"),
        "dup.json": (
            {"images": [{"filename": "a.tif", "sentences": [{"raw": "x"}]}] * 2},
            "'a.tif' listed twice",
        ),
        "blank.json": (
            {"images": [{"filename": "a.tif", "sentences": [{"raw": "  "}]}]},
            "non-empty caption",
        ),
    }
    for name, (doc, msg) in cases.items():
        q = tmp_path / name
        q.write_text(json.dumps(doc))
        with data_error(q, "expected structure", "right file") as ei:
            read_captions_karpathy_json(q)
        assert re.search(msg, str(ei.value)), (name, str(ei.value))
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"images": [{"filename": "a.tif", "sentences": [{"tokens": ["a", "b"]}]}]}))
    assert read_captions_karpathy_json(tokens)["a.tif"] == CaptionRecord("a.tif", ["a b"], None)


def test_coco_json(fixture_dir):
    recs = read_captions_coco_json(fixture_dir["coco_json"], split="val")
    expected = fx.captions()["coco"]
    assert list(recs) == list(expected)
    doc = json.loads(fixture_dir["coco_json"].read_text())
    for i, (name, caps) in enumerate(expected.items()):
        assert recs[name].split == "val"
        # captions are grouped by image_id and keep the annotation order of the file
        in_file_order = [a["caption"] for a in doc["annotations"] if a["image_id"] == 8736 + i]
        assert recs[name].captions == in_file_order
        assert sorted(recs[name].captions) == sorted(caps)
    assert read_captions_coco_json(fixture_dir["coco_json"])["square_221.jpg"].split is None


def test_coco_json_bad(tmp_path):
    img = {"id": 1, "file_name": "a.jpg"}
    cases = {
        "unknown_id.json": ({"images": [img], "annotations": [{"image_id": 2, "caption": "x"}]}, "image_id"),
        "no_caption.json": (
            {
                "images": [img, {"id": 2, "file_name": "b.jpg"}],
                "annotations": [{"image_id": 1, "caption": "x"}],
            },
            r"no caption for \['b.jpg'\]",
        ),
        "dup.json": ({"images": [img, img], "annotations": []}, "unique ids"),
        "no_ann.json": ({"images": [img]}, "annotations"),
    }
    for name, (doc, msg) in cases.items():
        q = tmp_path / name
        q.write_text(json.dumps(doc))
        with data_error(q, "expected structure", "right file") as ei:
            read_captions_coco_json(q)
        assert re.search(msg, str(ei.value)), (name, str(ei.value))


def test_sydney_descriptions(fixture_dir):
    raw = fixture_dir["sydney_txt"].read_bytes()
    assert b"\r\n" in raw and not raw.endswith(b"\n")  # the fixture mirrors the real file's quirks
    recs = read_sydney_descriptions(fixture_dir["sydney_txt"])
    expected = fx.captions()["sydney"]
    assert list(recs) == [f"{n}.tif" for n in expected]
    for n, caps in expected.items():
        assert recs[f"{n}.tif"].captions == [c.strip() for c in caps]
        assert all("\r" not in c for c in recs[f"{n}.tif"].captions)
    assert list(read_sydney_descriptions(fixture_dir["sydney_txt"], extension=".jpg")) == [
        "1.jpg",
        "2.jpg",
        "3.jpg",
    ]


def test_sydney_descriptions_bad(tmp_path):
    p = tmp_path / "bad.txt"
    p.write_bytes(b"1 a caption\r\nx another caption\r\n")
    with data_error(p, "not of the form", "fix or delete") as ei:
        read_sydney_descriptions(p)
    assert ei.value.field == "line 2"
    e = tmp_path / "empty.txt"
    e.write_bytes(b"\r\n")
    with data_error(e, "no captions", "re-download"):
        read_sydney_descriptions(e)


def test_name_list(fixture_dir, tmp_path):
    assert read_name_list(fixture_dir["name_list"]) == ["1.tif", "2.tif", "3.tif"]
    d = tmp_path / "dup.txt"
    d.write_text("1.tif\n2.tif\n1.tif\n")
    with data_error(d, "listed twice", "remove the duplicate") as ei:
        read_name_list(d)
    assert ei.value.field == "entry 3"


# ----------------------------------------------------------------------------------------------------------
# real data (skipped where the shared data pack is absent)
# ----------------------------------------------------------------------------------------------------------


def test_real_trento_labels():
    tr = read_mat(real("trento/MGMNet/TRLabel.mat"))
    assert tr.shape == (166, 600) and tr.dtype == np.uint8
    assert int((tr > 0).sum()) == 819
    split = real("trento/MGMNet/Trento_TR_50_1.mat")
    assert list_mat_keys(split) == {"TRLabel": (166, 600), "TSLabel": (166, 600)}
    with data_error(split, "ambiguous", "pass key="):
        read_mat(split)
    assert int((read_mat(split, candidates=("TSLabel",)) > 0).sum()) == 29914
    lidar = read_mat(real("trento/tyust-dayu/Italy_lidar.mat"))
    assert lidar.shape == (166, 600, 2) and lidar.dtype == np.float32


def test_real_muufl():
    gt = read_mat(real("muufl/gt.mat"), candidates=("gt",))
    assert gt.shape == (325, 220)
    assert int((gt > 0).sum()) == 53687
    assert sorted(np.unique(gt[gt > 0]).tolist()) == list(range(1, 12))
    assert read_mat(real("muufl/LiDAR.mat")).shape == (325, 220, 2)


def test_real_mat_files_pass_the_truncation_check():
    files = sorted(real(".").rglob("*.mat"))
    assert len(files) >= 20
    for f in files:
        assert list_mat_keys(f), f


def test_real_ucm_images():
    img = read_image(real("ucm_captions/images/agricultural/agricultural00.tif"))
    assert img.shape == (256, 256, 3) and img.dtype == np.uint8
    golf = read_image(real("ucm_captions/images/golfcourse/golfcourse04.tif"))
    assert golf.shape == (251, 256, 3)
    r = read_geotiff(real("ucm_captions/images/golfcourse/golfcourse04.tif"), expected_count=3)
    assert r.array.shape == (3, 251, 256) and r.meta["crs"] is None and r.meta["transform"] is None
    np.testing.assert_array_equal(r.array, golf.transpose(2, 0, 1).astype(np.float32))


def test_real_ucm_captions():
    recs = read_captions_karpathy_json(real("ucm_captions/dataset.json"))
    assert len(recs) == 2100
    assert all(len(r.captions) == 5 for r in recs.values())
    splits = [r.split for r in recs.values()]
    assert (splits.count("train"), splits.count("val"), splits.count("test")) == (1680, 210, 210)
    assert recs["1.tif"].captions[0] == "There is a piece of farmland ."


def test_real_rsicd_coco():
    val = read_captions_coco_json(
        real("rsicd_captions/jwdevx_coco_format/captions_val2017.json"), split="val"
    )
    assert len(val) == 1092
    assert all(len(r.captions) == 5 for r in val.values())
    assert "square_221.jpg" in val
    test = read_captions_coco_json(real("rsicd_captions/jwdevx_coco_format/captions_test2017.json"))
    assert len(test) == 1093 and not set(test) & set(val)
    assert read_image(real("rsicd_captions/images_original/square_146.jpg")).shape == (224, 224, 3)


def test_real_sydney():
    folder = real("sydney_captions/luna97_filenames")
    recs = read_sydney_descriptions(folder / "descriptions_SIDNEY.txt")
    assert len(recs) == 613
    assert all(len(r.captions) == 5 for r in recs.values())
    assert set(recs) == {f"{n}.tif" for n in range(1, 614)}
    lists = [read_name_list(folder / f"filenames_{s}.txt") for s in ("train", "val", "test")]
    assert [len(x) for x in lists] == [497, 58, 58]
    assert set().union(*lists) == set(recs)


def test_real_aid_minitest():
    root = real("aid_text_minitest/minitest")
    text = read_caption_txt(root / "text" / "Airport" / "airport_1.txt")
    assert len(text) > 50
    assert read_image(root / "image" / "Airport" / "airport_1.jpg").shape == (600, 600, 3)


def test_real_bigearthnet_s2_and_s1():
    s2 = real("bigearthnet_s1s2_examples/BigEarthNet-S2-Example/S2A_MSIL2A_20170613T101031_87_48")
    r = read_geotiff(s2 / "S2A_MSIL2A_20170613T101031_87_48_B04.tif", expected_count=1, scale=1e-4)
    assert r.array.shape == (1, 120, 120)
    assert r.meta["crs"] == "EPSG:32633"
    assert r.meta["transform"] == (10.0, 0.0, 404400.0, 0.0, -10.0, 5342400.0)
    assert r.meta["dtype"] == "uint16" and r.meta["nodata"] is None
    assert r.mask.all() and 0 < r.array.max() < 1.6
    assert read_geotiff(s2 / "S2A_MSIL2A_20170613T101031_87_48_B01.tif").array.shape == (1, 20, 20)
    s1_dir = next(real("bigearthnet_s1s2_examples/BigEarthNet-S1-Example").glob("*_87_48"))
    vv = read_geotiff(next(s1_dir.glob("*_VV.tif")), nodata_policy="reject")
    assert vv.meta["dtype"] == "float32" and vv.meta["crs"] == "EPSG:32633"
    assert -60 < vv.array.min() < vv.array.max() < 20  # backscatter in dB
