"""Per-band normalisation statistics, computed on the training split only.

torchgeo users' most common complaint is wrong or default statistics when the bands change; rsmg has no
default: statistics are computed from the source training pixels of the bands actually selected, stored in
the checkpoint with the band names, and applied unchanged to validation and every target domain (target data
are never looked at before test).
"""

from __future__ import annotations

import numpy as np

from rsmg.errors import DataError

Stats = dict[str, tuple[np.ndarray, np.ndarray]]


def band_statistics(
    arrays: list[np.ndarray], positions: list[np.ndarray], *, eps: float = 1e-6
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std per band over the given pixels of several ``C×H×W`` arrays.

    Args:
        arrays: one array per scene (same band count).
        positions: flat pixel positions per scene (the training pixels).
        eps: floor for the std, so a constant band does not divide by zero.

    Raises:
        DataError: no training pixel at all.
    """
    cols = [
        a.reshape(a.shape[0], -1)[:, p].astype(np.float64) for a, p in zip(arrays, positions, strict=True)
    ]
    values = np.concatenate(cols, axis=1) if cols else np.zeros((0, 0))
    if values.size == 0:
        raise DataError(
            "cannot compute normalisation statistics: the training split is empty",
            field="source_split",
            expected=">= 1 training pixel",
            found=0,
            fix="check data.sources and data.source_split",
        )
    mean = values.mean(axis=1)
    std = np.maximum(values.std(axis=1), eps)
    return mean.astype(np.float32), std.astype(np.float32)


def stats_to_state(stats: Stats, band_names: dict[str, tuple[str, ...]]) -> dict[str, object]:
    """Serialisable form (lists), stored in checkpoints together with the band names."""
    return {
        m: {"mean": s[0].tolist(), "std": s[1].tolist(), "bands": list(band_names.get(m, ()))}
        for m, s in stats.items()
    }


def stats_from_state(state: dict[str, object], band_names: dict[str, tuple[str, ...]]) -> Stats:
    """Inverse of :func:`stats_to_state`; checks that the bands match the data being loaded.

    Raises:
        DataError: the checkpoint's statistics were computed for other bands.
    """
    out: Stats = {}
    for m, s in state.items():
        assert isinstance(s, dict)
        bands = tuple(s.get("bands", ()))
        if m in band_names and bands and bands != tuple(band_names[m]):
            raise DataError(
                f"checkpoint normalisation statistics for {m!r} were computed on other bands",
                field=f"bands.{m}",
                expected=f"{len(band_names[m])} bands {list(band_names[m])[:4]}…",
                found=f"{len(bands)} bands {list(bands)[:4]}…",
                fix="test with the band selection the model was trained on",
            )
        out[m] = (np.asarray(s["mean"], dtype=np.float32), np.asarray(s["std"], dtype=np.float32))
    return out
