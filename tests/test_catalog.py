"""Real-data checks of the catalog against the counts stated in the shared data READMEs."""

import numpy as np
import pytest

from _paths import SHARED_DATA
from rsmg.data.catalog import class_mapping, dataset_info, list_datasets, load_scene, missing_files
from rsmg.errors import ConfigError, MissingDatasetError

pytestmark = pytest.mark.skipif(
    not SHARED_DATA.exists(), reason=f"shared data pack not found at {SHARED_DATA}"
)


def _counts(scene):
    ids, n = np.unique(scene.labels[scene.labels > 0], return_counts=True)
    return dict(zip(ids.tolist(), n.tolist(), strict=True))


def test_trento_counts_and_standard_split():
    s = load_scene("trento", ["lidar"], root=SHARED_DATA)
    assert s.modalities["lidar"].shape == (2, 166, 600)
    assert len(s.class_names) == 6
    assert int((s.labels > 0).sum()) == 30214
    assert len(s.labelled_positions("standard/train")) == 819
    assert len(s.labelled_positions("standard/test")) == 29395
    assert len(s.labelled_positions("per_class_50/train")) == 300
    assert _counts(s) == {1: 4034, 2: 2903, 3: 479, 4: 9123, 5: 10501, 6: 3174}


def test_muufl_counts():
    s = load_scene("muufl", ["lidar"], root=SHARED_DATA)
    assert s.modalities["lidar"].shape == (2, 325, 220)
    assert len(s.class_names) == 11
    assert int((s.labels > 0).sum()) == 53687
    c = _counts(s)
    assert c[1] == 23246 and c[7] == 2233 and c[11] == 269


def test_houston_split_maps_and_vectors():
    v = load_scene("houston2013_vectors", ["hsi", "lidar"], root=SHARED_DATA)
    assert v.modalities["hsi"].shape == (144, 1, 2832)
    assert v.modalities["lidar"].shape == (21, 1, 2832)
    assert int((v.labels > 0).sum()) == 2832
    with pytest.raises(MissingDatasetError, match="rsmg download houston2013"):
        load_scene("houston2013", ["hsi"], root=SHARED_DATA)


def test_houston_full_split_counts_without_cube():
    from rsmg.data.readers import read_mat

    tr = read_mat(SHARED_DATA / "houston2013/HyFTech/TRLabel.mat", key="TRLabel")
    ts = read_mat(SHARED_DATA / "houston2013/HyFTech/TSLabel.mat", key="TSLabel")
    assert int((tr > 0).sum()) == 2832 and int((ts > 0).sum()) == 12197


def test_salinas_a_sparse_ids_remapped():
    s = load_scene("salinas_a", ["hsi"], root=SHARED_DATA)
    assert s.modalities["hsi"].shape == (204, 83, 86)
    assert _counts(s) == {1: 391, 2: 1343, 3: 616, 4: 1525, 5: 674, 6: 799}


def test_indian_pines_full_cube_classes_and_wavelengths(tmp_path):
    """The whole 145x145x200 cube, the README's per-class counts, and the sensor's band centres."""
    import json

    from rsmg.data.bands import get_sensor

    s = load_scene("indian_pines", ["hsi"], root=SHARED_DATA)
    assert s.modalities["hsi"].shape == (200, 145, 145)
    assert s.class_names[0] == "Alfalfa" and s.class_names[-1] == "Stone-Steel-Towers"
    assert _counts(s) == dict(enumerate(
        [46, 1428, 830, 237, 483, 730, 28, 478, 20, 972, 2455, 593, 205, 1265, 386, 93], start=1
    ))  # fmt: skip
    raw = np.load(SHARED_DATA / "indian_pines/Indian_pines_corrected.npy")
    np.testing.assert_array_equal(
        s.modalities["hsi"][:, 7, 11], raw[7, 11]
    )  # rows x cols x bands -> C x H x W
    sensor = get_sensor(dataset_info("indian_pines").modalities["hsi"])
    nm = json.loads((SHARED_DATA / "indian_pines/wavelengths.json").read_text())["wavelength_nm"]
    np.testing.assert_array_equal(sensor.wavelengths, nm)
    assert s.band_names["hsi"][102:104] == ("b103", "b109")  # water-absorption bands 104-108 removed
    # the official .mat layout that `rsmg download indian_pines` writes: same keys the catalog names
    import scipy.io

    (tmp_path / "indian_pines").mkdir()
    scipy.io.savemat(
        tmp_path / "indian_pines/Indian_pines_corrected.mat", {"indian_pines_corrected": raw[:9, :8]}
    )
    gt = np.load(SHARED_DATA / "indian_pines/Indian_pines_gt.npy")[:9, :8]
    scipy.io.savemat(tmp_path / "indian_pines/Indian_pines_gt.mat", {"indian_pines_gt": gt})
    m = load_scene("indian_pines", ["hsi"], root=tmp_path)
    np.testing.assert_array_equal(m.modalities["hsi"], s.modalities["hsi"][:, :9, :8])
    np.testing.assert_array_equal(m.labels, s.labels[:9, :8])


def test_missing_hsi_names_download_command():
    with pytest.raises(MissingDatasetError, match=r"rsmg download trento"):
        load_scene("trento", ["hsi", "lidar"], root=SHARED_DATA)


def test_missing_files_lists_exactly_the_absent_cubes():
    assert missing_files("trento", ["lidar"], root=SHARED_DATA) == []
    assert missing_files("trento", ["hsi", "lidar"], root=SHARED_DATA) == [
        SHARED_DATA / "trento/tyust-dayu/Italy_hsi.mat"
    ]
    assert missing_files("houston2013", ["hsi", "lidar"], root=SHARED_DATA) == [
        SHARED_DATA / "houston2013/MACL/HSI.mat",
        SHARED_DATA / "houston2013/MACL/LiDAR.mat",
    ]
    with pytest.raises(ConfigError, match="sar"):
        missing_files("trento", ["sar"], root=SHARED_DATA)


def test_missing_root_says_where(tmp_path):
    with pytest.raises(MissingDatasetError, match="RSMG_DATA_ROOT"):
        load_scene("muufl", ["lidar"], root=tmp_path)


def test_unknown_names_list_valid_ones():
    with pytest.raises(ConfigError, match="muufl"):
        dataset_info("mufl")
    with pytest.raises(ConfigError, match="lidar"):
        load_scene("muufl", ["sar"], root=SHARED_DATA)


def test_every_catalog_dataset_is_covered_by_shared_class_set_or_native():
    for name in list_datasets():
        info = dataset_info(name)
        if name in ("salinas_a", "indian_pines") or info.kind in ("captioned", "image_folder"):
            continue  # crops / scene-level image datasets: native classes or the scene class sets
        mapping = class_mapping("shared", name)
        assert set(mapping) == set(info.classes)
