"""Whether a target without labels is predicted in strips of rows, and opening it so (the data module's step).

A target is read in strips (:mod:`rsmg.data.windowed_scene`, :mod:`rsmg.data.strip_dataset`) when it is a
catalog scene without labels whose rasters are ``H×W×C`` and no statistic needs the whole of it; otherwise it
is read whole and a warning says why and how to avoid it, since a scene larger than memory then fails.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence

from rsmg.data.strip_dataset import strip_rows_for
from rsmg.data.windowed_scene import StripIndex, WindowedScene, open_windowed_scene, windowable

__all__ = ["open_strip_target", "read_in_strips"]

log = logging.getLogger(__name__)


def read_in_strips(name: str, *, whole_stats: bool) -> bool:
    """Whether target ``name`` is read in strips (a warning where it could be but is read whole).

    Args:
        name: the target's catalog name.
        whole_stats: bands are standardised with the target's own statistics (``standardize_stats: per_scene``),
            which need the whole target.
    """
    if not windowable(name):
        return False
    if whole_stats:
        log.warning(
            "%s: read whole, not in strips: standardize_stats per_scene needs the whole target's statistics; use "
            "standardize_stats: source (or per_patch) to read it in strips, in memory per strip", name,
        )  # fmt: skip
        return False
    return True


def open_strip_target(
    name: str,
    modalities: Sequence[str],
    *,
    root: str | os.PathLike[str] | None,
    nonfinite: str,
    prepare: Callable[[WindowedScene], None],
    patch_size: int,
    strip_rows: int | None = None,
) -> tuple[WindowedScene, StripIndex]:
    """Target ``name`` opened for reading in strips, its band preparation set, and scanned once for valid pixels.

    Args:
        name: the target's catalog name.
        modalities: the modalities read.
        root: data root.
        nonfinite: NaN / inf policy, as :func:`~rsmg.data.windowed_scene.open_windowed_scene`.
        prepare: sets the scene's band preparation (the data module's ``_reconcile``).
        patch_size: patch side, whose half is read around every strip.
        strip_rows: rows per strip; None: :func:`~rsmg.data.strip_dataset.strip_rows_for`.

    Raises:
        DataError / ConfigError / MissingDatasetError: as :func:`~rsmg.data.windowed_scene.open_windowed_scene`
            and :meth:`~rsmg.data.windowed_scene.WindowedScene.scan`.
    """
    scene = open_windowed_scene(name, list(modalities), root=root, nonfinite=nonfinite)
    prepare(scene)
    rows = strip_rows or strip_rows_for(scene, patch_size // 2 + scene.prep.halo)
    strips = scene.scan(rows)
    log.info(
        "target %s has no labels: no test metrics; `rsmg predict` classifies its %d valid pixels, read in "
        "%d strips of %d rows", name, strips.n, len(strips.counts), rows,
    )  # fmt: skip
    return scene, strips
