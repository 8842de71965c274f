"""Seeded, stratified splits of labelled samples.

Splits are index arrays, never moved or renamed files: the same seed gives the same split on every machine and
every number of processes. Split specifications are short strings so they fit in YAML:

* ``"all"``: every labelled sample;
* ``"per_class:N"``: N samples of each class (all of a class if it has fewer, with a warning count);
* ``"fraction:F"``: a fraction F in (0, 1) of each class (at least one per class);
* a named split map shipped with the dataset (e.g. ``"standard"``, handled by the catalog).

Validation is carved out of the training pool either at random (:func:`train_val_split`) or in whole spatial
blocks (:func:`block_train_val_split`), see :func:`parse_val_split`.
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


def check_val_fraction(val_fraction: float, *, field: str) -> None:
    """Raise a :class:`ConfigError` unless ``0 <= val_fraction < 1`` (shared by both validation splits)."""
    if not 0 <= val_fraction < 1:
        raise ConfigError(
            "validation fraction out of range", field=field, expected="0 <= f < 1", found=val_fraction,
            fix="use e.g. 0.2",
        )  # fmt: skip


def train_val_split(
    labels: np.ndarray, val_fraction: float, *, seed: int, field: str = "val_fraction"
) -> tuple[np.ndarray, np.ndarray]:
    """Carve a stratified validation set out of training samples.

    Classes with a single sample stay in training (a class cannot be validated on its only example).

    Returns:
        (train positions, val positions), both sorted.
    """
    check_val_fraction(val_fraction, field=field)
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


def parse_val_split(spec: str, *, field: str = "data.val_split") -> int | None:
    """Read a validation-split specification: ``"random"`` -> ``None``, ``"blocks:B"`` -> ``B`` (pixels).

    Raises:
        ConfigError: anything else, with the two accepted forms.
    """
    if spec == "random":
        return None
    kind, _, value = spec.partition(":")
    if kind == "blocks" and value.isdigit() and int(value) >= 1:
        return int(value)
    raise ConfigError(
        "malformed validation split",
        field=field,
        expected="'random' or 'blocks:B' (B >= 1 pixels)",
        found=repr(spec),
        fix="write e.g. 'blocks:32' for spatially disjoint validation, or 'random'",
    )


def block_train_val_split(
    positions: np.ndarray,
    labels: np.ndarray,
    width: int,
    val_fraction: float,
    block: int,
    *,
    buffer: int,
    seed: int,
    field: str = "data.val_fraction",
) -> tuple[np.ndarray, np.ndarray]:
    """Carve a spatially disjoint validation set out of training pixels: whole blocks, then a buffer.

    Why: with patches wider than a pixel, a validation pixel drawn at random sits inside the patches of its
    training neighbours, so the model has seen its input and validation accuracy is optimistic (Nalepa et al.,
    IEEE GRSL 2019, "Validating hyperspectral image segmentation"). Here the scene is cut into ``block`` ×
    ``block`` tiles and whole tiles go to validation; then every training pixel within ``buffer`` pixels
    (Chebyshev distance) of a validation pixel is dropped, so with ``buffer = patch_size - 1`` no training patch
    shares a pixel with a validation patch. Dropped pixels are used for neither (the price of disjointness).

    Tiles are chosen per class, rarest class first, in a seeded random order, until each class has
    ``round(n_c * val_fraction)`` validation pixels (at least one). A tile whose pixels and buffer would leave
    some class without a training pixel is skipped, so every class keeps training pixels and a class confined
    to one tile stays in training. Stratification is therefore approximate: a tile brings all its classes
    along, and on clumped ground truth a class can overshoot its share.

    Args:
        positions: flat (row-major) scene positions of the training pool.
        labels: class index per position.
        width: scene width (to turn flat positions into rows and columns).
        val_fraction: target share of each class held out, in ``[0, 1)``.
        block: tile side in pixels.
        buffer: Chebyshev distance (pixels) within which training pixels around validation pixels are dropped.
        seed: seed of the tile order.
        field: config key of ``val_fraction``, for error messages (the same carving makes in-scene test splits).

    Returns:
        (train positions, val positions) as indices into ``positions``, both sorted.

    Raises:
        ConfigError: ``val_fraction`` out of range.
    """
    check_val_fraction(val_fraction, field=field)
    positions, labels = np.asarray(positions), np.asarray(labels)
    n = len(positions)
    if val_fraction == 0 or n == 0:
        return np.arange(n), np.arange(0)
    rows, cols = np.divmod(positions, width)
    tile_y, tile_x = rows // block, cols // block
    tiles_x = -(-width // block)
    tile_ids, tile_of = np.unique(tile_y * tiles_x + tile_x, return_inverse=True)
    classes, cls_of = np.unique(labels, return_inverse=True)
    counts = np.zeros((len(tile_ids), len(classes)), dtype=np.int64)
    np.add.at(counts, (tile_of, cls_of), 1)
    total = counts.sum(0)
    want = np.where(total >= 2, np.maximum(1, np.round(total * val_fraction)), 0).astype(np.int64)
    rng = np.random.default_rng(seed + 7919)
    order = rng.permutation(len(tile_ids))
    members = np.split(np.argsort(tile_of, kind="stable"), np.cumsum(np.bincount(tile_of))[:-1])
    index = {int(t): k for k, t in enumerate(tile_ids)}
    ring = -(-buffer // block)  # tiles whose pixels can lie within the buffer of a tile's pixels

    def near(t: int) -> np.ndarray:
        """Pool pixels within Chebyshev distance ``buffer`` of tile ``t``'s pixels (its own included)."""
        ty, tx = divmod(int(tile_ids[t]), tiles_x)
        around = [
            members[index[(ty + dy) * tiles_x + tx + dx]]
            for dy in range(-ring, ring + 1)
            for dx in range(-ring, ring + 1)
            if 0 <= tx + dx < tiles_x and (ty + dy) * tiles_x + tx + dx in index
        ]
        cand = np.concatenate(around)
        own = members[t]
        dist = np.maximum(
            np.abs(rows[cand, None] - rows[own][None]), np.abs(cols[cand, None] - cols[own][None])
        ).min(1)
        return cand[dist <= buffer]

    chosen = np.zeros(len(tile_ids), dtype=bool)
    removed = np.zeros(n, dtype=bool)  # in a validation tile or within the buffer of one
    left = total.copy()  # training pixels per class still left
    in_val = np.zeros(len(classes), dtype=np.int64)
    for c in np.argsort(total, kind="stable"):
        for t in order:
            if in_val[c] >= want[c]:
                break
            if chosen[t] or counts[t, c] == 0:
                continue
            hit = np.zeros(n, dtype=bool)
            hit[near(t)] = True
            hit &= ~removed
            loss = np.bincount(cls_of[hit], minlength=len(classes))
            if np.any(left - loss <= 0):
                continue  # it would leave some class without a training pixel
            chosen[t] = True
            removed |= hit
            left -= loss
            in_val += counts[t]
    val = np.flatnonzero(chosen[tile_of])
    rest = np.flatnonzero(~removed)
    return np.sort(rest), np.sort(val)
