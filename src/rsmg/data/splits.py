"""Seeded, stratified splits of labelled samples.

Splits are index arrays, never moved or renamed files: the same seed gives the same split on every machine and
every number of processes. Split specifications are short strings so they fit in YAML:

* ``"all"``: every labelled sample;
* ``"per_class:N"``: N samples of each class (all of a class if it has fewer, with a warning count);
* ``"fraction:F"``: a fraction F in (0, 1) of each class (at least one per class);
* a named split map shipped with the dataset (e.g. ``"standard"``, handled by the catalog).
"""

from __future__ import annotations

import numpy as np

from rsmg.errors import ConfigError, DataError


def stratified_sample(
    labels: np.ndarray, spec: str, *, seed: int, field: str = "split"
) -> tuple[np.ndarray, np.ndarray]:
    """Split positions ``0..len(labels)-1`` into (chosen, rest), stratified by label.

    Args:
        labels: class index per sample (any integer dtype).
        spec: ``"all"``, ``"per_class:N"`` or ``"fraction:F"``.
        seed: seed of the numpy generator; the only source of randomness.
        field: config key, for error messages.

    Returns:
        Sorted positions chosen and sorted positions left over.

    Raises:
        ConfigError: malformed ``spec``.
    """
    labels = np.asarray(labels)
    n = len(labels)
    if spec == "all":
        return np.arange(n), np.arange(0)
    kind, _, value = spec.partition(":")
    rng = np.random.default_rng(seed)
    chosen: list[np.ndarray] = []
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if kind == "per_class" and number >= 1 and number == int(number):
        take = lambda m: int(min(m, number))  # noqa: E731
    elif kind == "fraction" and 0 < number < 1:
        take = lambda m: int(max(1, round(m * number)))  # noqa: E731
    else:
        raise ConfigError(
            "malformed split specification",
            field=field,
            expected="'all', 'per_class:N' (N >= 1) or 'fraction:F' (0 < F < 1)",
            found=repr(spec),
            fix="write e.g. 'per_class:50' or 'fraction:0.2'",
        )
    for c in np.unique(labels):
        pos = np.flatnonzero(labels == c)
        pos = pos[rng.permutation(len(pos))]
        chosen.append(pos[: take(len(pos))])
    sel = np.sort(np.concatenate(chosen)) if chosen else np.arange(0)
    rest = np.setdiff1d(np.arange(n), sel, assume_unique=True)
    return sel, rest


def train_val_split(
    labels: np.ndarray, val_fraction: float, *, seed: int, field: str = "val_fraction"
) -> tuple[np.ndarray, np.ndarray]:
    """Carve a stratified validation set out of training samples.

    Classes with a single sample stay in training (a class cannot be validated on its only example).

    Returns:
        (train positions, val positions), both sorted.
    """
    if not 0 <= val_fraction < 1:
        raise ConfigError(
            "validation fraction out of range",
            field=field,
            expected="0 <= f < 1",
            found=val_fraction,
            fix="use e.g. 0.2",
        )
    if val_fraction == 0:
        return np.arange(len(labels)), np.arange(0)
    rng = np.random.default_rng(seed + 7919)
    val: list[np.ndarray] = []
    for c in np.unique(labels):
        pos = np.flatnonzero(labels == c)
        if len(pos) < 2:
            continue
        pos = pos[rng.permutation(len(pos))]
        k = int(min(len(pos) - 1, max(1, round(len(pos) * val_fraction))))
        val.append(pos[:k])
    v = np.sort(np.concatenate(val)) if val else np.arange(0)
    return np.setdiff1d(np.arange(len(labels)), v, assume_unique=True), v


def require_nonempty(indices: np.ndarray, *, what: str, file: str | None = None, fix: str) -> None:
    """Raise a :class:`DataError` if a split came out empty (rather than failing later in a DataLoader)."""
    if len(indices) == 0:
        raise DataError(
            f"empty split: {what}", file=file, field="split", expected=">= 1 sample", found=0, fix=fix
        )
