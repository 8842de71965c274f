"""Where rsmg's datasets live: one definition shared by the data modules and ``rsmg download``.

A module of its own (standard library only) so that ``rsmg download``, which must start fast, and the data
catalog, which imports torch, resolve the root the same way without one importing the other.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_ROOT = "RSMG_DATA_ROOT"


def resolve_root_with_origin(root: str | os.PathLike[str] | None = None) -> tuple[Path, str]:
    """Return the data root and where it came from: ``root`` if given, else ``$RSMG_DATA_ROOT``, else ``./data``.

    This is the one definition of the data root: :func:`rsmg.data.catalog.resolve_root` (and so every data
    module) and ``rsmg download`` both call it, so the command fills the folder the configs read. The origin is
    returned too so that the command can say why it writes where it does.

    Args:
        root: an explicit root (``--root`` or a config's ``root:``), or None for the default.

    Returns:
        The root, not resolved (a relative root stays relative to the working directory), and its origin:
        ``"--root"``, ``"$RSMG_DATA_ROOT"`` or ``"default ./data"``.
    """
    if root is not None:
        return Path(root).expanduser(), "--root"
    env = os.environ.get(ENV_ROOT)
    if env:
        return Path(env).expanduser(), f"${ENV_ROOT}"
    return Path("data"), "default ./data"
