"""A finished run is reused only when it was trained with the configuration the grid asks for now.

Why: the grids recognise a finished run by its folder (``<out>/<setting>/<method>/seed<k>``). An edit of an
experiment piece (a default re-chosen, a YAML fixed) leaves the folder name unchanged, so a grid would tabulate
runs of the old configuration as if they were of the new one. Before reusing a run, :func:`check_reuse` resolves
the ``rsmg fit`` arguments the grid would pass (LightningCLI's ``--print_config``, in-process: about 0.2 s after
the first) and compares them with the ``config.yaml`` LightningCLI saved in the run, itself resolved the same way:
an option added to rsmg after the run was trained then takes its default on both sides (an added option keeps
the old behaviour at its default), while a grid that sets it to anything else, or a changed value, differs. Any
difference is an error naming the keys; the run is never silently retrained or silently reused. A run trained
before the 2026-12 nesting of FVMGN's options has its flat keys moved to their nested ones by the network class's
own table (``renamed_options``, the one that turns them into errors for users) before it is resolved. Not
compared: where the run lies (the logger's save_dir / name / version, which the grid matched by finding it
there), the options of a part switched off on both sides (``mwdis.enabled: false``: its other fields are
unused, docs/decisions.md#fvmgn-options) and callbacks that act only on a finished model
(:data:`EVAL_ONLY_CALLBACKS`: the held-out grid re-tests cached runs with calibrated stacking).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from rsmg.errors import DataError

__all__ = ["check_reuse", "config_differences", "resolved_config"]


def resolved_config(args: list[str]) -> dict[str, Any]:
    """The configuration ``rsmg fit ARGS`` would run with (the YAML ``--print_config`` writes), parsed."""
    from rsmg.cli.main import print_config

    config = yaml.safe_load(print_config(["fit", *args]))
    if not isinstance(config, dict):
        raise ValueError(f"rsmg fit --print_config printed no mapping for {args}")
    return config


def nest_renamed(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with the network's flat option names of before 2026-12 moved to their nested keys."""
    import importlib

    net = config.get("model", {}).get("init_args", {}).get("net")
    if not isinstance(net, dict) or "class_path" not in net:
        return config
    module, _, name = net["class_path"].rpartition(".")
    renamed = getattr(getattr(importlib.import_module(module), name), "renamed_options", {})
    init = net.get("init_args") or {}
    # `frequency` is a flat name and a section: a dict there is the section (already nested); popped first
    sections = {v.split(".")[0] for v in renamed.values()}
    flat = {
        k: init.pop(k)
        for k in list(init)
        if k in renamed and not (k in sections and isinstance(init[k], dict))
    }
    for old, value in flat.items():
        section, key = renamed[old].split(".")
        init.setdefault(section, {})[key] = value
    return config


def _leaves(tree: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(tree, Mapping):
        for k, v in tree.items():
            yield from _leaves(v, f"{prefix}.{k}" if prefix else str(k))
    else:
        yield prefix, tree


# where a run lies, which the grid already matched by finding it there (a run moved aside keeps its old name)
LOCATION = tuple(f"trainer.logger.init_args.{k}" for k in ("save_dir", "name", "version"))


def config_differences(saved: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    """``key: saved → wanted`` for every dotted key whose value differs (lists compared whole; not LOCATION)."""
    a, b = dict(_leaves(saved)), dict(_leaves(wanted))
    for k in LOCATION:
        a.pop(k, None), b.pop(k, None)
    for off in [k for k in a if k.endswith(".enabled") and a[k] is False and b.get(k) is False]:
        section = off[: -len("enabled")]  # a part switched off on both sides: its other options are unused
        for d in (a, b):
            for k in [k for k in d if k.startswith(section)]:
                del d[k]
    return [f"{k}: {a.get(k, '(absent)')!r} → {b.get(k, '(absent)')!r}" for k in sorted(a.keys() | b.keys())
            if a.get(k, "(absent)") != b.get(k, "(absent)")]  # fmt: skip


# callbacks that act only after training (a re-test of the checkpoint adds them): not part of what was trained
EVAL_ONLY_CALLBACKS = ("CalibratedStacking",)


def _without_eval_only(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` without the callbacks of :data:`EVAL_ONLY_CALLBACKS` in ``trainer.callbacks``."""
    callbacks = (config.get("trainer") or {}).get("callbacks")
    if isinstance(callbacks, list):
        kept = [
            c
            for c in callbacks
            if not str((c or {}).get("class_path", "")).endswith(tuple(f".{n}" for n in EVAL_ONLY_CALLBACKS))
        ]
        config = {**config, "trainer": {**config["trainer"], "callbacks": kept}}  # fmt: skip
    return config


def check_reuse(run_dir: Path, args: list[str]) -> None:
    """Refuse to reuse ``run_dir`` unless its ``config.yaml`` equals what ``rsmg fit ARGS`` resolves to now.

    Raises:
        DataError: the run has no ``config.yaml``, or it was trained with another configuration.
    """
    saved_file = run_dir / "config.yaml"
    if not saved_file.is_file():
        raise DataError(
            "a finished run without its configuration cannot be reused",
            file=saved_file,
            fix=f"move {run_dir} aside (or delete it) so that the grid trains it again",
        )
    try:
        with tempfile.TemporaryDirectory() as tmp:
            nested = Path(tmp) / "config.yaml"
            nested.write_text(yaml.safe_dump(nest_renamed(yaml.safe_load(saved_file.read_text()))))
            saved = resolved_config(["--config", str(nested)])
    except Exception as exc:  # a key renamed or removed since: the run's configuration cannot be compared
        raise DataError(
            "a finished run's configuration no longer parses",
            file=saved_file,
            found=str(exc)[:300],
            fix=f"move {run_dir} aside (or delete it) so that the grid trains it again",
        ) from exc
    diffs = config_differences(_without_eval_only(saved), _without_eval_only(resolved_config(args)))
    if diffs:
        shown = "; ".join(diffs[:6]) + (f"; and {len(diffs) - 6} more" if len(diffs) > 6 else "")
        raise DataError(
            "a finished run was trained with another configuration than the grid's now",
            file=saved_file,
            found=shown,
            fix=f"move {run_dir} aside (or delete it) to train it with the current configuration, or give the "
            "grid another --out",
        )


def fit_or_reuse(run_dir: Path, args: list[str], label: str) -> Path | None:
    """``run_dir`` once fitted: reused when ``timed_fit`` finished it with this configuration, else fitted now.

    The source-validation choices (``source_choices.py``, ``scene_budget.py``, ``ucm_captions.py --budgets``)
    share it, so a cell is reused by one rule: finished (its wall recorded) and the same resolved configuration
    (:func:`check_reuse`).
    Returns None when the fit failed.
    """
    import math

    from _common import recorded_wall, timed_fit

    if math.isfinite(recorded_wall(run_dir)):
        check_reuse(run_dir, args)
        return run_dir
    return run_dir if timed_fit(args, label, run_dir) is not None else None
