"""Did-you-mean for misspelt ``rsmg fit|validate|test|predict`` options and YAML keys.

jsonargparse reports an unknown key inside a ``class_path`` / ``init_args`` value as a union-type failure
(``Expected a <class 'NoneType'> ... NestedArg(key='widht', val='3')``) and an unknown top-level option as
``unrecognized arguments: fit``; neither names the valid keys. When parsing fails, :func:`find_unknown` walks
what the user wrote (each ``--config`` YAML and the command line, separately, so the error can name the file)
against the parser's own schema (its actions, and for each ``class_path`` the parameters jsonargparse itself
reads from the class's signature) and returns the first key that is valid nowhere, with the closest valid keys
at that level and anywhere below it (``--model.init_args.widht`` → ``--model.init_args.net.init_args.width``).
The walk reads the input, not jsonargparse's message text, so it does not break when the wording changes.

A key a model has renamed (its class's ``renamed_options``: FVMGN's flat options became nested sections,
``mwdis_p`` → ``mwdis.p``) is reported as renamed, with its new key and every other renamed key of that level,
so an old config is fixed in one edit.
"""

from __future__ import annotations

import collections.abc
import copy
import difflib
import functools
import importlib
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rsmg.errors import UnknownOptionError

_SUBCLASS_KEYS = ("class_path", "init_args", "dict_kwargs", "__path__")
_MAX_DEPTH = 4  # nested class_path levels searched for suggestions (task → net → its sub-modules ...)


@dataclass(frozen=True)
class Unknown:
    """A key the parser accepts nowhere: where it was written and what was meant (closest first)."""

    key: str  # dotted, as an option: model.init_args.widht
    source: str | None  # the YAML file it came from; None for the command line
    suggestions: tuple[str, ...]  # dotted keys, closest first
    valid: tuple[str, ...]  # every key valid at that level (dotted, full)
    renamed: tuple[
        tuple[str, str], ...
    ] = ()  # a renamed key: (old, new) for it first, then the level's others
    owner: str = ""  # the class whose option was renamed
    replacement: str = ""  # the renamed keys of that level with their values, nested: "mwdis: {p: 0.5}; ..."


# ---------------------------------------------------------------------------------------------- user input
def _set(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for p in parents:
        nxt = node.get(p)
        if not isinstance(nxt, dict):
            nxt = node[p] = {}
        node = nxt
    node[leaf] = value


def _load_config(value: str) -> dict[str, Any] | None:
    import yaml

    path = Path(value).expanduser()
    try:
        data = yaml.safe_load(path.read_text() if path.is_file() else value)
    except (OSError, yaml.YAMLError):
        return None
    return data if isinstance(data, dict) else None


def user_sources(args: list[str]) -> list[tuple[str | None, dict[str, Any]]]:
    """What the user wrote, in order: ``(yaml_path, tree)`` per ``--config``, then ``(None, tree)`` for the options."""
    sources: list[tuple[str | None, dict[str, Any]]] = []
    cli: dict[str, Any] = {}
    i = 0
    while i < len(args):
        token = args[i]
        i += 1
        if not token.startswith("--") or token == "--":
            continue
        key, eq, value = token[2:].partition("=")
        if not eq:
            value = args[i] if i < len(args) and not args[i].startswith("--") else ""
            i += 1 if value else 0
        key = key.rstrip("+")  # --trainer.callbacks+=... appends
        if key == "config":
            tree = _load_config(value)
            if tree is not None:
                sources.append((value if Path(value).expanduser().is_file() else None, tree))
            continue
        parsed: Any = value
        if value.startswith(
            "{"
        ):  # an inline YAML / JSON mapping, e.g. --model.init_args.net '{class_path: ...}'
            import yaml

            try:
                parsed = yaml.safe_load(value)
            except yaml.YAMLError:
                parsed = value
        _set(cli, key, parsed)
    sources.append((None, cli))
    return sources


def _merge(into: dict[str, Any], tree: dict[str, Any]) -> None:
    for k, v in tree.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        else:
            into[k] = copy.deepcopy(v)  # the sources stay as written: each is walked on its own


# ---------------------------------------------------------------------------------------------- the schema
def _classes_in(typehint: Any) -> list[type]:
    """Classes a ``class_path`` may name for this type hint (through Optional / Union / Callable[..., X] / type[X])."""
    if isinstance(typehint, type) and typing.get_origin(typehint) is None:
        return [typehint]
    found: list[type] = []
    args = typing.get_args(typehint)
    if typing.get_origin(typehint) is collections.abc.Callable and args:
        args = (args[-1],)  # the return type: a class whose constructor jsonargparse calls partially
    for a in args:
        if isinstance(a, list):
            continue
        found += _classes_in(a)
    return [c for c in found if c is not type(None)]


def _callable_skip(typehint: Any) -> set[int]:
    """Leading positionals that a ``Callable[[A, ...], X]`` value leaves to the caller (jsonargparse skips them)."""
    for t in (typehint, *typing.get_args(typehint)):
        args = typing.get_args(t)
        if typing.get_origin(t) is collections.abc.Callable and args and isinstance(args[0], list):
            return {len(args[0])}
    return set()


def _resolve(class_path: Any, typehint: Any) -> type | None:
    """The class a ``class_path`` names (a dotted path, or a short name of a subclass of the type hint)."""
    if not isinstance(class_path, str) or not class_path:
        return None
    if "." in class_path:
        module, _, name = class_path.rpartition(".")
        try:
            obj = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError, ValueError):
            return None
        return obj if isinstance(obj, type) else None
    todo = _classes_in(typehint)
    seen: set[type] = set()
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.add(cls)
        if cls.__name__ == class_path:
            return cls
        todo += cls.__subclasses__()
    return None


@functools.lru_cache(maxsize=64)
def _class_parser(cls: type, skip: frozenset[int]) -> Any:
    """The parser jsonargparse builds for ``init_args`` of ``cls`` (same signature resolution), or None."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(exit_on_error=False)
    try:
        parser.add_class_arguments(cls, skip=set(skip) or None, fail_untyped=False, sub_configs=True)
    except Exception:  # a class jsonargparse cannot describe: no suggestions below it
        return None
    return parser


class _Level:
    """The keys one parser accepts under a dotted prefix (``trainer.`` of the fit parser, ``''`` of a class)."""

    def __init__(self, parser: Any, prefix: str, cls: type | None = None) -> None:
        self.parser, self.prefix = parser, prefix
        self.cls = cls  # the class whose init_args this level holds (None for a group)
        self.actions = {
            a.dest: a
            for a in parser._actions
            if a.dest != "==SUPPRESS==" and a.dest.rsplit(".", 1)[-1] != "help"  # --help, --model.help CLASS
        }

    def renamed(self) -> Mapping[str, str]:
        """The class's renamed options: old key → new dotted key below this level (empty for none)."""
        found = getattr(self.cls, "renamed_options", None)
        return found if isinstance(found, Mapping) else {}

    def children(self) -> list[str]:
        names = {d[len(self.prefix) :].split(".")[0] for d in self.actions if d.startswith(self.prefix)}
        return sorted(n for n in names if n)

    def is_class(self, name: str) -> bool:
        """Whether ``name`` takes a ``class_path`` (its keys are then written under ``init_args``)."""
        full = self.prefix + name
        if any(d.startswith(full + ".") for d in self.actions):
            return False
        return getattr(self.actions.get(full), "_typehint", None) is not None

    def child(self, name: str, value: Any, merged: Any) -> tuple[_Level | None, Any]:
        """The level below ``name`` (a group, or the ``init_args`` of the class its ``class_path`` names)."""
        full = self.prefix + name
        if any(d.startswith(full + ".") for d in self.actions):  # a group (--trainer also loads a YAML)
            return _Level(self.parser, full + "."), value
        action = self.actions.get(full)
        if action is None:
            return None, None
        typehint = getattr(action, "_typehint", None)
        if typehint is None or not isinstance(value, dict):
            return None, None
        class_path = _class_path(merged) or _class_path(action.default)
        cls = _resolve(class_path, typehint)
        if cls is None:
            return None, None
        parser = _class_parser(cls, frozenset(_callable_skip(typehint)))
        if parser is None:
            return None, None
        init = dict(value.get("init_args") or {})
        init.update({k: v for k, v in value.items() if k not in _SUBCLASS_KEYS})  # --model.lr shorthand
        return _Level(parser, "", cls), init


def _class_path(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        cp = value.get("class_path")
        return cp if isinstance(cp, str) else None
    cp = getattr(value, "class_path", None)  # a jsonargparse Namespace default
    return cp if isinstance(cp, str) else None


def _init(value: Any) -> Any:
    if isinstance(value, dict) and ("class_path" in value or "init_args" in value):
        init = dict(value.get("init_args") or {})
        init.update({k: v for k, v in value.items() if k not in _SUBCLASS_KEYS})
        return init
    return value


# ---------------------------------------------------------------------------------------------- the walk
def _join(display: str, name: str) -> str:
    return f"{display}.{name}" if display else name


def _descendants(level: _Level, merged: Any, display: str, depth: int) -> list[str]:
    """Every key valid below ``level`` (dotted, full), entering class_paths known from the input or defaults."""
    out: list[str] = []
    for name in level.children():
        out.append(_join(display, name))
        if depth <= 0:
            continue
        sub_merged = merged.get(name) if isinstance(merged, dict) else None
        is_class = level.is_class(name)
        value: Any = sub_merged if isinstance(sub_merged, dict) else {}
        if isinstance(sub_merged, str):  # model: rsmg.tasks.ClassificationTask
            value = {"class_path": sub_merged}
        below, _ = level.child(name, value, value)
        if below is None:
            continue
        sub_display = _join(display, name) + (".init_args" if is_class else "")
        out += _descendants(below, _init(sub_merged), sub_display, depth - is_class)
    return out


def _suggest(name: str, level: _Level, merged: Any, display: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    here = [_join(display, c) for c in level.children()]
    below = _descendants(level, merged, display, _MAX_DEPTH)
    leaf = {k: k.rsplit(".", 1)[-1] for k in dict.fromkeys(here + below)}
    if not level.prefix:  # a class level: an old name close to the misspelling suggests its new key
        leaf.update({_join(display, new): old for old, new in level.renamed().items()})
    close = set(difflib.get_close_matches(name, set(leaf.values()), n=5, cutoff=0.6))
    ranked = sorted(
        (k for k, v in leaf.items() if v in close),
        key=lambda k: (-difflib.SequenceMatcher(None, name, leaf[k]).ratio(), k not in here, k.count("."), k),
    )
    return tuple(ranked[:3]), tuple(here)


def _flow(value: Any) -> str:
    """``value`` as one line of YAML (flow style)."""
    import yaml

    return str(yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10_000)).strip()


def _is_renamed(level: _Level, names: set[str], name: Any, value: Any) -> bool:
    """``name`` is an old key of the level's class: unknown now, or now a section given a plain value."""
    if level.prefix or not isinstance(name, str) or name not in level.renamed():
        return False
    return name not in names or not isinstance(value, dict)  # `frequency: fft` → `frequency: {kind: fft}`


def _walk(level: _Level, tree: Any, merged: Any, display: str, source: str | None) -> Unknown | None:
    if not isinstance(tree, dict):
        return None
    names = set(level.children())
    for name, value in tree.items():
        if not isinstance(name, str) or name == "help":  # --model.help CLASS prints help, it is no key
            continue
        if _is_renamed(level, names, name, value):
            new = level.renamed()
            others = [(k, new[k]) for k in tree if k != name and _is_renamed(level, names, k, tree[k])]
            nested: dict[str, dict[str, Any]] = {}
            for old, key in ((name, new[name]), *others):
                section, _, leaf = key.partition(".")
                nested.setdefault(section, {})[leaf] = tree[old]
            return Unknown(
                _join(display, name),
                source,
                (_join(display, new[name]),),
                (),
                renamed=((name, new[name]), *others),
                owner=getattr(level.cls, "__name__", ""),
                replacement="; ".join(f"{k}: {_flow(v)}" for k, v in nested.items()),
            )
        if name not in names:
            suggestions, valid = _suggest(name, level, merged, display)
            return Unknown(_join(display, name), source, suggestions, valid)
        sub_merged = merged.get(name) if isinstance(merged, dict) else None
        if isinstance(value, list):  # e.g. trainer.callbacks: each item has its own class_path
            for j, item in enumerate(value):
                below, init = level.child(name, item, item)
                if below is not None:
                    hit = _walk(below, init, _init(item), f"{_join(display, name)}[{j}].init_args", source)
                    if hit is not None:
                        return hit
            continue
        below, init = level.child(name, value, sub_merged)
        if below is None:
            continue
        sub_display = _join(display, name) + (".init_args" if level.is_class(name) else "")
        hit = _walk(below, init, _init(sub_merged), sub_display, source)
        if hit is not None:
            return hit
    return None


def find_unknown(parser: Any, args: list[str]) -> Unknown | None:
    """The first key in ``args`` (options and ``--config`` files) that ``parser`` accepts nowhere, else None.

    Args:
        parser: the subcommand's parser (``fit``'s LightningArgumentParser).
        args: the command line after the subcommand.
    """
    sources = user_sources(args)
    merged: dict[str, Any] = {}
    for _, tree in sources:
        _merge(merged, tree)
    top = _Level(parser, "")
    for source, tree in sources:
        hit = _walk(top, tree, merged, "", source)
        if hit is not None:
            return hit
    return None


def unknown_error(hit: Unknown, subcommand: str) -> UnknownOptionError:
    """The :class:`~rsmg.errors.UnknownOptionError` for an unknown key: where it is, what was meant, the fix."""
    where = f"in {hit.source}" if hit.source else "on the command line"
    if hit.renamed:
        return _renamed_error(hit, where)
    shown = [f"--{s}" if hit.source is None else s for s in hit.suggestions]
    mean = f" (did you mean {' or '.join(shown)})" if shown else ""
    key = f"--{hit.key}" if hit.source is None else hit.key
    valid = ", ".join(hit.valid[:25]) + (f", ... ({len(hit.valid)} in all)" if len(hit.valid) > 25 else "")
    listing = f"`rsmg {subcommand} --help` lists every option, `--model.help <class>` a class's"
    if shown:
        fix = f"write {shown[0]} instead of {key}" + (" in that file" if hit.source else "") + f" ({listing})"
    else:
        fix = f"remove {key} ({listing})"
    return UnknownOptionError(
        f"unknown option {key} {where}{mean}",
        file=hit.source,
        field=hit.key,
        expected=f"one of the keys valid there: {valid}",
        found=hit.key.rsplit(".", 1)[-1],
        fix=fix,
    )


def _renamed_error(hit: Unknown, where: str) -> UnknownOptionError:
    """The error for an option its class renamed: the new key, and every renamed key of that level at once."""
    old, new = hit.renamed[0]
    full_new = hit.suggestions[0]
    pairs = ", ".join(f"{o} → {n}" for o, n in hit.renamed)
    if hit.source is None:
        fix = f"write --{full_new} instead of --{hit.key}"
        if len(hit.renamed) > 1:
            fix += f" (renamed options on that command line: {pairs})"
    else:
        fix = f"nest the options by part in that file ({pairs}): replace those keys with {hit.replacement}"
    owner = f"{hit.owner}'s " if hit.owner else ""
    return UnknownOptionError(
        f"renamed option {'--' if hit.source is None else ''}{hit.key} {where}: `{old}` is now `{new}` "
        f"({owner}options are nested by part: rsmg/models/fvmgn_options.py)",
        file=hit.source,
        field=hit.key,
        expected=full_new,
        found=old,
        fix=fix,
    )
