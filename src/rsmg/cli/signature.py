"""jsonargparse parsers from typed signatures, argparse's spellings kept (why: docs/decisions.md#cli-signature)."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import inspect
import sys
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TypeVar

from rsmg.errors import UsageError

__all__ = ["Arg", "cli", "parse_kwargs", "signature_parser", "usage_error"]

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Arg:
    """What a type hint cannot say about one command-line parameter (``Annotated[list[str] | None, Arg(...)]``).

    Args:
        metavar: the name shown for the value (``FILE``; a tuple for ``tuple[...]`` values).
        repeat: a list option given once per value (``--only a --only b``) instead of ``--seeds 0 1``.
        nargs: argparse's ``nargs`` instead of the one the type implies (e.g. ``'*'``).
        hidden: accepted but not shown in ``--help``.
        group: title of the ``--help`` section the option is listed under.
        exclusive: options with the same name here may not be given together on the command line.
        choices: the valid values, where they are only known at run time (else use ``Literal``).
        option: the option's spelling, where it is not the parameter's (``--list`` for ``list_datasets``).
    """

    metavar: str | tuple[str, ...] | None = None
    repeat: bool = False
    nargs: str | int | None = None
    hidden: bool = False
    group: str | None = None
    exclusive: str | None = None
    choices: Sequence[object] | None = None
    option: str | None = None


def _formatter() -> type[argparse.HelpFormatter]:
    """The help formatter: jsonargparse's (type and default after each option), line breaks of the text kept."""
    from jsonargparse import DefaultHelpFormatter

    return type("_Formatter", (DefaultHelpFormatter, argparse.RawDescriptionHelpFormatter), {})


def _split(hint: Any) -> tuple[Any, Arg, bool]:
    """``(type without Annotated / None, its Arg, whether None is allowed)``."""
    extra = Arg()
    if typing.get_origin(hint) is typing.Annotated:
        hint, *meta = typing.get_args(hint)
        extra = next((m for m in meta if isinstance(m, Arg)), extra)
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]), extra, True  # noqa: UP007
    return hint, extra, False


def _scalar(hint: Any, extra: Arg) -> dict[str, Any]:
    """``type`` (and ``choices``) for one value of ``hint``; a ``Literal`` is checked by jsonargparse itself."""
    if extra.choices is None:
        return {"type": hint}
    choices = {"choices": list(extra.choices)}
    return choices if hint is str else {"type": hint, **choices}


def _parameters(target: Callable[..., Any]) -> list[inspect.Parameter]:
    """The parameters of ``target``, a dataclass field's ``default_factory`` called for its default."""
    params = list(inspect.signature(target).parameters.values())
    if not (isinstance(target, type) and dataclasses.is_dataclass(target)):
        return params
    factories = {
        f.name: f.default_factory
        for f in dataclasses.fields(target)
        if f.default_factory is not dataclasses.MISSING
    }
    return [p.replace(default=factories[p.name]()) if p.name in factories else p for p in params]


def _param_docs(target: Callable[..., Any]) -> tuple[str, dict[str, str]]:
    """The docstring's description and each parameter's (or dataclass field's) line."""
    import docstring_parser

    doc = docstring_parser.parse(inspect.getdoc(target) or "")
    sep = "\n\n" if doc.blank_after_short_description else "\n"
    text = sep.join(t for t in (doc.short_description, doc.long_description) if t)
    return text, {p.arg_name: " ".join(p.description.split()) for p in doc.params if p.description}


def signature_parser(
    target: Callable[..., Any],
    *,
    prog: str | None = None,
    description: str | None = None,
    epilog: str | None = None,
) -> Any:
    """A jsonargparse ``ArgumentParser`` for the parameters of ``target`` (a function or a kw-only dataclass).

    Args:
        target: the typed callable; its Google-style docstring gives the description and each option's help.
        prog: the program name in usage lines (default: the script's name).
        description: the text above the options (default: the docstring's description).
        epilog: the text below the options (examples, exit statuses), line breaks kept.
    """
    from jsonargparse import ActionConfigFile, ArgumentParser

    doc, helps = _param_docs(target)
    parser = ArgumentParser(
        prog=prog,
        description=description if description is not None else doc,
        epilog=epilog,
        formatter_class=_formatter(),
        exit_on_error=False,  # parse_kwargs explains a misspelt option before exiting
        allow_abbrev=True,  # as argparse: recorded commands may abbreviate (jsonargparse 5 turns it off)
    )
    parser.add_argument(
        "--config",
        action=ActionConfigFile,
        help="YAML file of options, keys as --print_config writes them (max_new_tokens for --max-new-tokens); "
        "options given after it override it",
    )
    hints = typing.get_type_hints(target, include_extras=True)
    containers: dict[str, Any] = {}
    for p in _parameters(target):
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise TypeError(f"{target.__qualname__}: *{p.name} cannot be a command-line parameter")
        hint, extra, optional = _split(hints[p.name])
        has_default = p.default is not p.empty
        kwargs: dict[str, Any] = {"help": argparse.SUPPRESS if extra.hidden else helps.get(p.name, "")}
        origin = typing.get_origin(hint)
        if hint is bool:
            kwargs["action"] = "store_true" if p.default is False else argparse.BooleanOptionalAction
        elif origin in (list, tuple):
            item = typing.get_args(hint)
            kwargs.update(_scalar(item[0], extra))
            if extra.repeat:
                kwargs.update(action="extend", nargs=1)
            else:
                fixed = origin is tuple and Ellipsis not in item
                kwargs["nargs"] = extra.nargs or (len(item) if fixed else "+")
        elif extra.exclusive is not None or extra.choices is not None:
            kwargs.update(_scalar(hint, extra))  # a plain type: jsonargparse's type hints fail in a group
        else:
            kwargs["type"] = typing.Optional[hint] if optional else hint  # noqa: UP045 - a runtime type hint
        if extra.metavar is not None:
            kwargs["metavar"] = extra.metavar
        positional = p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        if positional:
            if has_default:  # a default here would override a value from --config
                kwargs.update(default=argparse.SUPPRESS, nargs="*" if "nargs" in kwargs else "?")
            names = [p.name]
        else:
            names = [extra.option or "--" + p.name.replace("_", "-")]
            kwargs["dest"] = p.name
            if has_default:
                kwargs["default"] = p.default
            else:
                kwargs["required"] = True
        container = parser
        if extra.exclusive is not None:
            key = "exclusive:" + extra.exclusive
            if key not in containers:
                containers[key] = parser.add_mutually_exclusive_group()
            container = containers[key]
        elif extra.group is not None:
            if extra.group not in containers:
                containers[extra.group] = parser.add_argument_group(extra.group)
            container = containers[extra.group]
        container.add_argument(*names, **kwargs)
    return parser


def usage_error(parser: Any, message: str) -> NoReturn:
    """Print the usage and ``error: message`` to stderr and exit 2, as argparse does for a bad command line."""
    parser.exit_on_error = True
    parser.error(message)
    raise AssertionError("unreachable")  # pragma: no cover - error() exits


def _unknown_option(parser: Any, argv: Sequence[str]) -> str | None:
    """The message for the first option (or ``--config`` key) the parser does not know, with the closest ones."""
    from rsmg.cli.suggest import user_sources

    options = sorted({s for a in parser._actions for s in a.option_strings if s.startswith("--")})
    for token in argv:
        if token == "--":
            break
        if not token.startswith("--"):
            continue
        opt = token.split("=", 1)[0]
        if opt in options or sum(o.startswith(opt) for o in options) == 1:  # an abbreviation argparse expands
            continue
        close = difflib.get_close_matches(opt, options, n=2, cutoff=0.6)
        return f"unknown option {opt}" + (f" (did you mean {' or '.join(close)}?)" if close else "")
    keys = sorted({a.dest for a in parser._actions if a.dest not in (argparse.SUPPRESS, "help")})
    for source, tree in user_sources(list(argv)):
        if source is None:
            continue
        for key in tree:
            if key not in keys:
                close = difflib.get_close_matches(str(key), keys, n=2, cutoff=0.6)
                mean = f" (did you mean {' or '.join(close)}?)" if close else ""
                return f"unknown key {key!r} in {source}{mean}"
    return None


def parse_kwargs(
    parser: Any, target: Callable[..., Any], argv: Sequence[str] | None = None
) -> dict[str, Any]:
    """Parse ``argv`` (default ``sys.argv[1:]``) into keyword arguments for ``target``.

    ``--help`` exits 0; a bad command line prints the usage and the error (naming the closest valid option
    for a misspelt one) and exits 2, as argparse does.
    """
    from jsonargparse import ArgumentError

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        cfg = parser.parse_args(args)
    except ArgumentError as e:
        usage_error(parser, _unknown_option(parser, args) or str(e))
    values = cfg.as_dict()
    hints = typing.get_type_hints(target, include_extras=True)
    kwargs: dict[str, Any] = {}
    for p in _parameters(target):
        value = values.get(p.name, p.default)
        if isinstance(value, list) and typing.get_origin(_split(hints[p.name])[0]) is tuple:
            value = tuple(value)
        kwargs[p.name] = value
    return kwargs


def cli(target: Callable[..., T], argv: Sequence[str] | None = None, **parser_kwargs: Any) -> T:
    """Parse the command line for ``target`` and call it; a :class:`~rsmg.errors.UsageError` it raises exits 2.

    Args:
        target: a typed function or kw-only dataclass (the mapping: docs/decisions.md#cli-signature).
        argv: the arguments (default ``sys.argv[1:]``).
        **parser_kwargs: ``prog``, ``description``, ``epilog`` of :func:`signature_parser`.
    """
    parser = signature_parser(target, **parser_kwargs)
    kwargs = parse_kwargs(parser, target, argv)
    try:
        return target(**kwargs)
    except UsageError as e:
        usage_error(parser, str(e))
