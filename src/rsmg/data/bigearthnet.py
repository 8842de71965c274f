"""BigEarthNet-MM style Sentinel-1 + Sentinel-2 patch pairs (multi-label).

Each S1 patch folder holds ``*_VV.tif`` and ``*_VH.tif`` (120×120, dB) and a ``*_labels_metadata.json`` naming
its S2 partner (``corresponding_s2_patch``); each S2 folder holds 12 single-band GeoTIFFs at their native
resolution (10 m: 120×120, 20 m: 60×60, 60 m: 20×20). Bands are resampled onto the 10 m grid (bilinear by
default, configurable) so every sample is one ``image_msi`` 12×120×120 and one ``image_sar`` 2×120×120.
Labels are multi-hot over the 19-class nomenclature (``resources/bigearthnet_19.yaml``) or the 43 CORINE names.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch.utils.data import Dataset

from rsmg.data.bands import get_sensor
from rsmg.data.readers import read_geotiff
from rsmg.errors import DataError, MissingDatasetError

Nomenclature = Literal["19", "43"]


def nomenclature_19() -> dict[str, list[str]]:
    """19-class name → CORINE names it merges."""
    text = (
        resources.files("rsmg.data").joinpath("resources", "bigearthnet_19.yaml").read_text(encoding="utf-8")
    )
    return dict(yaml.safe_load(text))


class BigEarthNetS1S2(Dataset[dict[str, Any]]):
    """Co-registered S1/S2 patch pairs with multi-hot labels.

    Args:
        root: folder containing ``BigEarthNet-S1-Example``-style S1 folders and the S2 folders (searched
            recursively by patch name).
        s2_bands: S2 bands by name (default all 12 of the registry's ``s2`` sensor).
        s1_bands: S1 polarisations by name (default VV, VH).
        size: output grid side (120 = the 10 m grid).
        resample: ``"bilinear"`` or ``"nearest"`` for the 20 m / 60 m bands.
        nomenclature: ``"19"`` (BigEarthNet-MM classes) or ``"43"`` (CORINE names as in the metadata).
        patches: optional list of S2 patch names to keep (an official split list).
    """

    def __init__(
        self,
        root: str | Path,
        s2_bands: list[str] | None = None,
        s1_bands: list[str] | None = None,
        size: int = 120,
        resample: Literal["bilinear", "nearest"] = "bilinear",
        nomenclature: Nomenclature = "19",
        patches: list[str] | None = None,
    ) -> None:
        self.root = Path(root)
        s2 = get_sensor("s2")
        s1 = get_sensor("s1")
        self.s2_bands = [s2.band_names[i] for i in s2.band_indices(s2_bands, field="s2_bands")]
        self.s1_bands = [s1.band_names[i] for i in s1.band_indices(s1_bands, field="s1_bands")]
        self.size = size
        self.resample = resample
        s1_meta = sorted(self.root.rglob("S1*_labels_metadata.json"))
        if not s1_meta:
            raise MissingDatasetError(
                "no BigEarthNet-S1 patch folders found",
                file=self.root,
                expected="S1*/…_labels_metadata.json",
                found="nothing",
                fix="run `rsmg download bigearthnet_s1s2 --root DIR` and point root at it",
            )
        s2_dirs = {p.name: p for p in self.root.rglob("S2*") if p.is_dir()}
        self.pairs: list[tuple[Path, Path, list[str]]] = []
        for meta in s1_meta:
            info = json.loads(meta.read_text(encoding="utf-8"))
            partner = info.get("corresponding_s2_patch")
            if partner is None or partner not in s2_dirs:
                raise DataError(
                    "S1 patch without its S2 partner",
                    file=meta,
                    field="corresponding_s2_patch",
                    expected="an S2 folder of that name under root",
                    found=partner,
                    fix="download both BigEarthNet-S1 and BigEarthNet-S2",
                )
            if patches is None or partner in patches:
                self.pairs.append((meta.parent, s2_dirs[partner], list(info["labels"])))
        if nomenclature == "19":
            table = nomenclature_19()
            self.classes = list(table)
            self._to_class = {c: i for i, (_, members) in enumerate(table.items()) for c in members}
        else:
            names = sorted({lab for _, _, labs in self.pairs for lab in labs})
            self.classes = names
            self._to_class = {c: i for i, c in enumerate(names)}

    def __len__(self) -> int:
        return len(self.pairs)

    def _band(self, folder: Path, band: str) -> torch.Tensor:
        path = folder / f"{folder.name}_{band}.tif"
        r = read_geotiff(path, expected_count=1, nodata_policy="mask")
        x = torch.from_numpy(r.array)[None]
        if x.shape[-1] != self.size:
            mode = self.resample
            x = F.interpolate(
                x, size=(self.size, self.size), mode=mode, align_corners=False if mode == "bilinear" else None
            )
        return x[0, 0]

    def __getitem__(self, i: int) -> dict[str, Any]:
        s1, s2, labels = self.pairs[i]
        target = torch.zeros(len(self.classes))
        for lab in labels:
            if lab in self._to_class:
                target[self._to_class[lab]] = 1.0
        return {
            "image_sar": torch.stack([self._band(s1, b) for b in self.s1_bands]),
            "image_msi": torch.stack([self._band(s2, b) for b in self.s2_bands]),
            "labels": target,
            "index": torch.tensor(i),
            "meta": {"s1": s1.name, "s2": s2.name},
        }

    def label_names(self, i: int) -> list[str]:
        """Class names of sample ``i`` in the chosen nomenclature."""
        t = self[i]["labels"]
        return [self.classes[j] for j in np.flatnonzero(t.numpy())]
