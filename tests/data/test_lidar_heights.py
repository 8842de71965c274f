"""nDSM runs only on absolute DSMs: Trento's raster is height above ground already, MUUFL's is elevation.

The terrain filter (a 41-px morphological opening) removes every object wider than its window: run on Trento,
it estimated terrain above 2 m under most Woods and cut their median height from 10.7 m to 6.5 m. Measured on
the real rasters (shared data pack): Trento Woods median 10.73 m raw, 6.53 m after nDSM; MUUFL Road median
4.70 m raw (absolute elevation), 0.07 m after nDSM.
"""

import dataclasses
import logging

import numpy as np
import pytest

from _paths import SHARED_DATA
from rsmg.data.catalog import HEIGHTS, dataset_info, list_datasets
from rsmg.data.datamodule import CrossDomainDataModule
from rsmg.errors import DataError

WOODS, ROAD = 4, 5  # native label ids: Trento "Woods", MUUFL "Road"

pytestmark = pytest.mark.skipif(
    not SHARED_DATA.exists(), reason=f"shared data pack not found at {SHARED_DATA}"
)


@pytest.fixture(scope="module")
def dm():
    d = CrossDomainDataModule(
        sources=["trento"], targets=["muufl"], root=str(SHARED_DATA), ndsm_bands=["dsm"], batch_size=32
    )
    d.setup("fit")
    return d


def _median(d: CrossDomainDataModule, scene: str, label: int) -> float:
    s = d._prepared[scene].scene
    return float(np.median(s.modalities["lidar"][0][s.labels == label]))


def test_catalog_says_what_each_lidar_raster_holds():
    heights = {n: dataset_info(n).heights.get("lidar") for n in list_datasets()}
    assert heights["trento"] == "above_ground"
    assert heights["muufl"] == heights["houston2013"] == heights["augsburg"] == "absolute"
    assert heights["houston2013_vectors"] is None  # 21 derived features, no height raster
    assert all(h in HEIGHTS for h in heights.values() if h is not None)


def test_trento_woods_keep_their_height_after_preprocessing(dm):
    assert _median(dm, "trento", WOODS) == pytest.approx(10.73, abs=0.05)  # not the 6.53 m of an nDSM


def test_muufl_is_still_converted_to_height_above_ground(dm):
    assert _median(dm, "muufl", ROAD) < 0.3  # 4.70 m absolute elevation before


def test_the_skip_is_logged_once_per_scene(caplog):
    d = CrossDomainDataModule(
        sources=["trento"], targets=["muufl"], root=str(SHARED_DATA), ndsm_bands=["dsm"]
    )
    with caplog.at_level(logging.WARNING, logger="rsmg.data.datamodule"):
        d.setup("fit")
        d.setup("test")  # already prepared: nothing is read or said again
    said = [r.getMessage() for r in caplog.records if "already height above ground" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("trento:")


def test_a_scene_without_a_height_field_is_refused():
    d = CrossDomainDataModule(
        sources=["trento"], targets=["muufl"], root=str(SHARED_DATA), ndsm_bands=["dsm"]
    )
    d._infos["muufl"] = dataclasses.replace(d._infos["muufl"], heights={})
    with pytest.raises(DataError, match=r"muufl\.modalities\.lidar\.height"):
        d.setup("fit")
