"""The pixels of one scene that a split serves, and the labelled pixels a class set leaves out.

Split rules (``all``, a shipped split map, ``per_class:N``, ``fraction:F``) are read here against a loaded
:class:`~rsmg.data.scene.Scene` and its class lookup table (native id → class index, ``-1`` excluded); the
datamodule decides which rule applies to which part.
"""

from __future__ import annotations

import logging

import numpy as np

from rsmg.data.scene import Scene
from rsmg.data.splits import block_train_val_split, stratified_sample
from rsmg.errors import ConfigError

__all__ = ["block_test_split", "excluded_report", "split_positions"]

log = logging.getLogger(__name__)


def split_positions(
    scene: Scene,
    rule: str,
    lut: np.ndarray,
    *,
    part: str,
    seed: int,
    within: np.ndarray | None = None,
) -> np.ndarray:
    """Flat positions of the labelled pixels of a mapped class that ``rule`` selects for ``part``.

    Args:
        scene: the loaded scene.
        rule: ``all``, a shipped split name (its ``<rule>/<part>`` map) or a sampling rule (``per_class:N``,
            ``fraction:F``, drawn with ``seed``).
        lut: native class id → class index (``-1``: not a class of this run).
        part: ``train`` (the error then names ``data.source_split``) or ``test``.
        seed: seed of a sampling rule.
        within: only these positions (what a spatial test split left for training).

    Raises:
        ConfigError: the scene has no such shipped split.
    """
    split_name = f"{rule}/{part}"
    if rule in {"all"} or ":" in rule:
        pos = scene.labelled_positions()
    elif split_name in scene.split_maps:
        pos = scene.labelled_positions(split_name)
    else:
        shipped = sorted({k.split("/")[0] for k in scene.split_maps})
        raise ConfigError(
            f"dataset {scene.name!r} has no split {rule!r}",
            field=f"data.{'source' if part == 'train' else 'target'}_split",
            expected=f"a shipped split {shipped} or 'all' / 'per_class:N' / 'fraction:F'",
            found=rule,
            fix="choose a sampling rule, e.g. per_class:100",
        )
    pos = pos[lut[scene.labels.ravel()[pos]] >= 0]
    if within is not None:  # what a spatial test split left for training
        pos = np.intersect1d(pos, within)
    if ":" in rule:
        chosen, _ = stratified_sample(lut[scene.labels.ravel()[pos]], rule, seed=seed, field="split")
        pos = pos[chosen]
    return pos


def excluded_report(scene: Scene, lut: np.ndarray) -> dict[str, int]:
    """Labelled pixels per native class that the class set leaves out (name → count)."""
    out = {}
    ids, counts = np.unique(scene.labels[scene.labels > 0], return_counts=True)
    for k, c in zip(ids.tolist(), counts.tolist(), strict=True):
        if lut[k] < 0:
            out[scene.class_names[k - 1]] = int(c)
    return out


def block_test_split(
    scene: Scene, lut: np.ndarray, fraction: float, block: int | None, *, buffer: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """In-scene spatial test split (``blocks:B``): (positions left for training and validation, test positions).

    Whole ``block``-pixel tiles go to test (:func:`~rsmg.data.splits.block_train_val_split`, which keeps every
    class some training pixels), and labelled pixels within ``buffer`` of a test pixel are dropped from both
    sides.
    """
    labelled = split_positions(scene, "all", lut, part="test", seed=seed)
    keep, held = block_train_val_split(
        labelled, lut[scene.labels.ravel()[labelled]], scene.shape[1], fraction, block or 1, buffer=buffer,
        seed=seed + 104729, field="data.test_fraction",
    )  # fmt: skip
    log.info(
        "%s: spatially disjoint test split (blocks:%d, buffer %d px): %d test pixels, %d left for training and "
        "validation, %d dropped in the buffer", scene.name, block or 1, buffer, len(held), len(keep),
        len(labelled) - len(keep) - len(held),
    )  # fmt: skip
    return labelled[keep], labelled[held]
