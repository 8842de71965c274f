"""Errors that tell a user what went wrong and how to fix it.

Every error raised for bad input names the file (or config key), the field, what was expected, what was
found and the fix. A researcher who points rsmg at a broken dataset should read one line and know what to do,
never a numpy traceback three frames deep.
"""

from __future__ import annotations

from pathlib import Path


class RsmgError(Exception):
    """Base class of every error rsmg raises on purpose."""


def _format(
    what: str,
    *,
    file: str | Path | None = None,
    field: str | None = None,
    expected: object = None,
    found: object = None,
    fix: str | None = None,
) -> str:
    parts = [what.rstrip(".") + "."]
    if file is not None:
        parts.append(f"file: {file}")
    if field is not None:
        parts.append(f"field: {field}")
    if expected is not None:
        parts.append(f"expected: {expected}")
    if found is not None:
        parts.append(f"found: {found}")
    if fix is not None:
        parts.append(f"fix: {fix}")
    return "\n  ".join(parts)


class DataError(RsmgError, ValueError):
    """Bad or missing input data (files, arrays, captions, labels).

    Args:
        what: one sentence saying what is wrong.
        file: the file or directory involved.
        field: the key, band, column or attribute involved.
        expected: what rsmg expected there.
        found: what it found instead.
        fix: what the user should do.
    """

    def __init__(
        self,
        what: str,
        *,
        file: str | Path | None = None,
        field: str | None = None,
        expected: object = None,
        found: object = None,
        fix: str | None = None,
    ) -> None:
        self.file = file
        self.field = field
        self.expected = expected
        self.found = found
        self.fix = fix
        super().__init__(_format(what, file=file, field=field, expected=expected, found=found, fix=fix))


class ConfigError(RsmgError, ValueError):
    """A configuration value that cannot work (raised at config time, before any data is read).

    Args:
        what: one sentence saying what is wrong.
        field: the config key, e.g. ``model.init_args.strength``.
        expected: the valid values or range.
        found: the value given.
        fix: what the user should do.
    """

    def __init__(
        self,
        what: str,
        *,
        field: str | None = None,
        expected: object = None,
        found: object = None,
        fix: str | None = None,
        file: str | Path | None = None,
    ) -> None:
        self.file = file
        self.field = field
        self.expected = expected
        self.found = found
        self.fix = fix
        super().__init__(_format(what, file=file, field=field, expected=expected, found=found, fix=fix))


class UnknownOptionError(ConfigError):
    """An option or config key the command does not accept: a usage error, so ``rsmg`` exits 2 (as argparse)."""

    exit_code = 2


class UsageError(RsmgError):
    """A command line that cannot run as given (a required argument missing, options that exclude each other).

    The command prints its usage and this message and exits 2, as argparse does for a bad command line.
    """

    exit_code = 2


class OutputError(RsmgError, OSError):
    """An output (metrics, tables, figures, embeddings) cannot be written where it was asked to go.

    Also an ``OSError``, so code that already catches ``OSError`` keeps working.

    Args:
        what: one sentence saying what is wrong.
        file: the file or directory involved.
        found: the operating-system error.
        fix: what the user should do.
    """

    def __init__(
        self, what: str, *, file: str | Path | None = None, found: object = None, fix: str | None = None
    ) -> None:
        self.file = file
        self.fix = fix
        super().__init__(_format(what, file=file, found=found, fix=fix))


class MissingDatasetError(DataError):
    """A dataset's files are not where the catalog expects them; the message says how to get them."""


def unknown_name_error(
    kind: str, name: str, valid: list[str] | tuple[str, ...], *, field: str
) -> ConfigError:
    """Build the error for an unknown dataset / band / class / model name, listing the valid names.

    Args:
        kind: what kind of name it is (e.g. ``"band"``).
        name: the name given.
        valid: every valid name.
        field: the config key or argument the name came from.

    Returns:
        A :class:`ConfigError` ready to raise.
    """
    import difflib

    close = difflib.get_close_matches(name, list(valid), n=3)
    hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
    return ConfigError(
        f"unknown {kind} {name!r}",
        field=field,
        expected=f"one of {sorted(valid)}",
        found=repr(name),
        fix=f"{hint}use one of the names listed above",
    )


def check_choice(kind: str, value: object, choices: tuple[str, ...], *, field: str) -> None:
    """Raise :func:`unknown_name_error` unless ``value`` is one of ``choices``.

    ``Literal`` options are checked at run time because YAML and the CLI can pass any string.

    Raises:
        ConfigError: ``value`` is not a valid choice.
    """
    if value not in choices:
        raise unknown_name_error(kind, str(value), list(choices), field=field)


def require_file(
    path: str | Path,
    *,
    what: str,
    field: str,
    fix: str,
    error: type[ConfigError] | type[DataError] = ConfigError,
    expected: object = None,
    found: object = None,
) -> Path:
    """Return ``path`` as a :class:`Path` if it is an existing file, else raise ``error`` naming it.

    One place for the "a file named in the config does not exist" check (synonym lists, prompt templates,
    local weights, diffusion priors), so every such message names the file, the config field and the fix.
    """
    p = Path(path)
    if not p.is_file():
        raise error(what, file=p, field=field, expected=expected, found=found, fix=fix)
    return p
