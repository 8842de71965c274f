"""Stand-in HSI cubes for the paper's cross-scene settings (GENERATED fixtures, not results).

The benchmark HSI cubes of Trento and MUUFL are not on the test machines (users fetch them with ``rsmg
download``). To run the paper YAMLs end to end anyway, these helpers build a data root in which every real file
of the shared pack is linked in place (LiDAR rasters, ground truth, split maps) and the missing HSI cube is a
generated one, written at a path the catalog accepts, in the format of the real file (a MATLAB ``.mat`` holding
an ``H×W×bands`` float array under one of the catalog's candidate keys), with the real scene's height, width and
band count.

The spectra are smooth functions of *wavelength* per shared class (plus noise and a per-scene gain), so each
sensor samples the same class signatures at its own band centres: a model can only carry what it learns on one
scene's HSI over to the other's if the datamodule maps both band sets onto one wavelength grid correctly. Pixels
of classes outside the shared set get a neutral spectrum.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import scipy.io

from rsmg.data.bands import get_sensor
from rsmg.data.catalog import class_mapping, load_scene

# where each cube goes (an accepted catalog path that the shared pack does not hold), its sensor and key
CUBES = {
    "trento": ("trento/HSI.mat", "aisa_trento", "HSI"),
    "muufl": ("muufl/HSI.mat", "casi_muufl", "HSI"),
    "houston2013": ("houston2013/HSI.mat", "casi_houston", "HSI"),
}
# Houston 2013's LiDAR DSM is not in the shared pack either: a stand-in raster of heights above a gentle terrain
LIDAR = {"houston2013": ("houston2013/LiDAR.mat", "LiDAR")}
HEIGHT_M = {"trees": 12.0, "buildings": 9.0}


def class_spectrum(name: str | None, nm: np.ndarray) -> np.ndarray:
    """A reflectance-like signature of a shared class at wavelengths ``nm`` (None: neutral grey)."""
    x = (nm - 400.0) / 600.0  # 0 at 400 nm, 1 at 1000 nm
    edge = 1.0 / (1.0 + np.exp(-(nm - 715.0) / 12.0))  # red edge of vegetation
    shapes = {
        "trees": 0.05 + 0.40 * edge,
        "grass": 0.08 + 0.30 * edge + 0.05 * np.exp(-(((nm - 550.0) / 30.0) ** 2)),
        "ground": 0.10 + 0.25 * x,
        "road": 0.12 + 0.02 * x,
        "buildings": 0.30 + 0.05 * np.sin(6.0 * x),
        "water": 0.08 * np.exp(-3.0 * x),
    }
    return shapes.get(name or "", np.full_like(nm, 0.2))


def write_cube(dataset: str, root: Path, *, seed: int) -> Path:
    """Write the stand-in cube of ``dataset`` under ``root`` (the scene's labels must already be there)."""
    rel, sensor_name, key = CUBES[dataset]
    scene = load_scene(dataset, [], root=root)
    h, w = scene.labels.shape
    nm = get_sensor(sensor_name).wavelengths
    to_shared = class_mapping("shared", dataset)
    table = np.stack(
        [class_spectrum(None, nm)] + [class_spectrum(to_shared.get(c), nm) for c in scene.class_names]
    )  # row 0: unlabelled
    rng = np.random.default_rng(seed)
    gain = 1.0 + 0.1 * rng.standard_normal()
    cube = gain * table[scene.labels] + 0.03 * rng.standard_normal((h, w, len(nm)))
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {key: cube.astype(np.float32)})
    if dataset in LIDAR:
        lrel, lkey = LIDAR[dataset]
        heights = np.array([0.0] + [HEIGHT_M.get(to_shared.get(c) or "", 0.3) for c in scene.class_names])
        yy, xx = np.mgrid[0:h, 0:w]
        terrain = 20.0 + 0.01 * yy + 0.005 * xx
        dsm = terrain + heights[scene.labels] + 0.5 * rng.standard_normal((h, w))
        scipy.io.savemat(root / lrel, {lkey: dsm.astype(np.float32)})
    return path


def standin_root(shared: Path, tmp: Path, datasets: list[str]) -> Path:
    """A data root under ``tmp``: the shared pack linked in, plus generated HSI cubes for ``datasets``.

    Only the dataset folders that get a cube are real directories (their entries linked one by one), so nothing
    is ever written into the shared pack.
    """
    root = tmp / "data_root"
    root.mkdir()
    for entry in shared.iterdir():
        if entry.name in datasets:
            (root / entry.name).mkdir()
            for sub in entry.iterdir():
                os.symlink(sub, root / entry.name / sub.name)
        else:
            os.symlink(entry, root / entry.name)
    for i, name in enumerate(datasets):
        write_cube(name, root, seed=i)
    return root
