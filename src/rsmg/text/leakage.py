"""Label leakage in VLM captions: transforms that remove it and an audit that measures it.

Cai et al. (arXiv 2412.02531) classify scenes from an image plus a caption written by a vision-language model.
The shipped AID captions end with a verdict — "Overall, this scene can be classified as an airport" — in 192
of 200 cases (``docs/papers.md`` §2), so a text branch can score near 100 % by reading the answer. To measure
what the caption adds *beyond* the verdict, captions are passed through label-agnostic transforms before
training and test:

* :class:`DropVerdictSentences` removes every sentence that states a classification ("can be classified as",
  "the overall classification for this scene is", "the image shows an <any class>");
* :class:`MaskClassNames` replaces every name and synonym of *every* class (not only the sample's own —
  masking only the true class would itself leak the label) with a mask token, case-insensitively on word
  boundaries, plural forms and hyphenated/joined spellings included;
* :class:`Compose` chains them; :func:`build_text_transform` builds a chain from a YAML/CLI list.

:func:`audit_captions` counts, per class, how many captions name their own class, use a synonym of it, or
contain a verdict sentence — the numbers to report next to any text-branch accuracy.

Names, synonyms and verdict regexes are data (``resources/synonyms.yaml``), so a reader can see, and change,
exactly what was removed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from rsmg.errors import ConfigError, DataError, require_file

__all__ = [
    "Compose",
    "DropVerdictSentences",
    "MaskClassNames",
    "TextTransform",
    "audit_captions",
    "audit_totals",
    "build_text_transform",
    "class_display_name",
    "class_name_forms",
    "load_synonyms",
    "normalise_class_name",
    "split_sentences",
]

TextTransform = Callable[[str], str]
DEFAULT_SYNONYMS_FILE = "synonyms.yaml"


# ------------------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SynonymTable:
    """The parsed synonyms file.

    Attributes:
        classes: normalised class key → ``(prose name, synonyms)``.
        verdict_patterns: class-agnostic verdict regexes.
        verdict_templates: verdict regexes with a ``{class}`` placeholder.
        source: where the table was read from (for error messages).
    """

    classes: dict[str, tuple[str, tuple[str, ...]]]
    verdict_patterns: tuple[str, ...]
    verdict_templates: tuple[str, ...]
    source: str


def normalise_class_name(name: str) -> str:
    """Key of a class in the synonyms file: lower-case letters, digits (``"Bare_Land"`` → ``"bareland"``)."""
    return re.sub(r"[^0-9a-z]", "", name.lower())


def _split_words(name: str) -> str:
    """Prose form of an identifier: ``"BareLand"`` → ``"bare land"``, ``"big_tanks"`` → ``"big tanks"``."""
    s = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", name)
    s = re.sub(r"[_\-\s]+", " ", s)
    return s.strip().lower()


@cache
def _load_table(path: str | None) -> SynonymTable:
    if path is None:
        text = (resources.files("rsmg.text") / "resources" / DEFAULT_SYNONYMS_FILE).read_text(
            encoding="utf-8"
        )
        source = f"rsmg/text/resources/{DEFAULT_SYNONYMS_FILE}"
    else:
        p = require_file(
            path,
            what="synonyms file not found",
            field="synonyms_file",
            fix="give the path of a YAML file laid out like rsmg/text/resources/synonyms.yaml, or None",
        )
        text = p.read_text(encoding="utf-8")
        source = str(p)
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict) or not isinstance(data.get("classes", {}), dict):
        raise ConfigError(
            "synonyms file has the wrong layout",
            file=source,
            field="classes",
            expected="a mapping 'classes: {key: {name: str, synonyms: [str, ...]}}'",
            found=type(data).__name__,
            fix="follow the layout of rsmg/text/resources/synonyms.yaml",
        )
    classes: dict[str, tuple[str, tuple[str, ...]]] = {}
    for key, entry in (data.get("classes") or {}).items():
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ConfigError(
                "bad class entry in the synonyms file",
                file=source,
                field=f"classes.{key}",
                expected="{name: str, synonyms: [str, ...]}",
                found=entry,
                fix="give every class a 'name' and a (possibly empty) 'synonyms' list",
            )
        syn = entry.get("synonyms") or []
        if not isinstance(syn, list) or not all(isinstance(s, str) for s in syn):
            raise ConfigError(
                "synonyms must be a list of strings",
                file=source,
                field=f"classes.{key}.synonyms",
                found=syn,
                fix="write synonyms: [word, other word]",
            )
        classes[normalise_class_name(str(key))] = (entry["name"], tuple(syn))
    patterns = tuple(data.get("verdict_patterns") or ())
    templates = tuple(data.get("verdict_templates") or ())
    for field_name, pats in (("verdict_patterns", patterns), ("verdict_templates", templates)):
        for pat in pats:
            try:
                re.compile(pat.replace("{class}", "x"))
            except (re.error, AttributeError) as err:
                raise ConfigError(
                    "invalid verdict regex",
                    file=source,
                    field=field_name,
                    found=repr(pat),
                    fix=f"fix the regular expression ({err})",
                ) from err
    return SynonymTable(classes, patterns, templates, source)


def load_synonyms(synonyms_file: str | Path | None = None) -> SynonymTable:
    """Read (and cache) a synonyms file; ``None`` reads the one shipped with rsmg.

    Raises:
        ConfigError: missing file, wrong layout or an invalid regex (the message names the entry).
    """
    return _load_table(None if synonyms_file is None else str(synonyms_file))


def class_display_name(name: str, synonyms_file: str | Path | None = None) -> str:
    """Prose name of a class (``"BareLand"`` → ``"bare land"``, ``"golfcourse"`` → ``"golf course"``).

    The synonyms file's ``name`` wins; otherwise the identifier is split on CamelCase and underscores.
    """
    entry = load_synonyms(synonyms_file).classes.get(normalise_class_name(name))
    return entry[0] if entry else _split_words(name)


def _plurals(phrase: str) -> set[str]:
    """The phrase and its regular plural (or singular), inflecting the last word only."""
    words = phrase.split()
    if not words:
        return set()
    last = words[-1]
    head = " ".join(words[:-1])
    forms = {last}
    if last.endswith("s") and not last.endswith(("ss", "us", "is")):
        forms.add(last[:-1])  # given plural: add the singular (storage tanks → storage tank)
        if last.endswith("es") and last[:-2].endswith(("s", "x", "z", "ch", "sh")):
            forms.add(last[:-2])
    elif last.endswith(("s", "x", "z", "ch", "sh")):
        forms.add(last + "es")
    elif last.endswith("y") and len(last) > 1 and last[-2] not in "aeiou":
        forms.add(last[:-1] + "ies")
    else:
        forms.add(last + "s")
    return {f"{head} {f}".strip() for f in forms}


def class_name_forms(
    name: str, synonyms_file: str | Path | None = None, *, include_synonyms: bool = True
) -> tuple[set[str], set[str]]:
    """Every phrase that names a class, split into (name forms, synonym forms).

    Args:
        name: the class name as the dataset spells it (``"BareLand"``, ``"storagetanks"``).
        synonyms_file: synonyms YAML (``None``: the shipped one).
        include_synonyms: also return the synonyms (else the second set is empty).

    Returns:
        Lower-case phrases with their plural/singular forms. Name forms come from the identifier itself (split
        and joined) and the file's ``name``; synonym forms from its ``synonyms`` minus the name forms.
    """
    table = load_synonyms(synonyms_file)
    key = normalise_class_name(name)
    entry = table.classes.get(key)
    base = {_split_words(name), key}
    if entry:
        base.add(entry[0].lower())
    names: set[str] = set()
    for b in base:
        names |= _plurals(b)
    syns: set[str] = set()
    if include_synonyms and entry:
        for s in entry[1]:
            syns |= _plurals(s.lower())
    return names, syns - names


def _phrase_regex(phrases: Iterable[str]) -> str:
    """Alternation of phrases, longest first, where word gaps also match hyphens, underscores or nothing."""
    parts = []
    for p in sorted(set(phrases), key=lambda s: (-len(s), s)):
        words = [re.escape(w) for w in re.split(r"[\s\-_]+", p.strip()) if w]
        if words:
            parts.append(r"[\s\-_]*".join(words))
    return "(?:" + "|".join(parts) + ")" if parts else "(?!)"


def _compile_names(phrases: Iterable[str]) -> re.Pattern[str]:
    return re.compile(r"\b" + _phrase_regex(phrases) + r"\b", re.IGNORECASE)


# ------------------------------------------------------------------------------------------------------------
# Sentences
# ------------------------------------------------------------------------------------------------------------
_SENTENCE = re.compile(r"\S.*?(?:[.!?]+['\"”’)\]]*(?=\s|$)|$)", re.DOTALL)


def split_sentences(text: str) -> list[str]:
    """Split prose into sentences at ``.``, ``!`` or ``?`` followed by white space (closing quotes kept).

    Decimal numbers ("3.5 m") are not split. Abbreviations such as "e.g." are (rare in VLM captions, and a
    split there only makes a verdict sentence shorter, never hides one).
    """
    return [m.group(0).strip() for m in _SENTENCE.finditer(text) if m.group(0).strip()]


# ------------------------------------------------------------------------------------------------------------
# Transforms
# ------------------------------------------------------------------------------------------------------------
class DropVerdictSentences:
    """Remove every sentence that states the scene's class.

    Args:
        class_names: the dataset's classes; enables the ``{class}`` templates of the synonyms file ("the image
            shows an <any class>"). ``None`` uses the class-agnostic patterns only.
        synonyms_file: synonyms YAML with ``verdict_patterns`` / ``verdict_templates`` (``None``: the shipped
            one).
        patterns: extra regexes (searched case-insensitively in each sentence).
        use_file_patterns: also use the file's patterns (set False to use ``patterns`` alone).

    The transform never looks at a label, so it can be applied to test captions too.
    """

    def __init__(
        self,
        class_names: Sequence[str] | None = None,
        synonyms_file: str | Path | None = None,
        patterns: Sequence[str] = (),
        use_file_patterns: bool = True,
    ) -> None:
        table = load_synonyms(synonyms_file)
        pats = [*(table.verdict_patterns if use_file_patterns else ()), *patterns]
        if class_names and use_file_patterns:
            forms: set[str] = set()
            for c in class_names:
                n, s = class_name_forms(c, synonyms_file)
                forms |= n | s
            alt = _phrase_regex(forms)
            pats += [t.replace("{class}", alt) for t in table.verdict_templates]
        try:
            self._regexes = [re.compile(p, re.IGNORECASE) for p in pats]
        except re.error as err:
            raise ConfigError(
                "invalid verdict regex", field="patterns", found=str(err.pattern), fix=str(err)
            ) from err
        self.class_names = tuple(class_names or ())

    def is_verdict(self, sentence: str) -> bool:
        """Whether one sentence states a classification."""
        return any(r.search(sentence) for r in self._regexes)

    def __call__(self, text: str) -> str:
        """Return ``text`` without its verdict sentences (sentences joined by one space)."""
        return " ".join(s for s in split_sentences(text) if not self.is_verdict(s))

    def __repr__(self) -> str:
        return f"DropVerdictSentences(classes={len(self.class_names)}, patterns={len(self._regexes)})"


class MaskClassNames:
    """Replace every name and synonym of every given class with a mask token.

    Args:
        class_names: the dataset's classes. All are masked in every caption: masking only the sample's own
            class would leave a mask exactly where the answer was, which is itself a label.
        synonyms_file: synonyms YAML (``None``: the shipped one). Classes absent from it are masked by their
            own name forms (CamelCase split, joined, plural).
        mask_token: replacement (``"[MASK]"`` is one token for BERT-style tokenizers such as MiniLM's).
        include_synonyms: also mask synonyms (False: the class names only).
    """

    def __init__(
        self,
        class_names: Sequence[str],
        synonyms_file: str | Path | None = None,
        mask_token: str = "[MASK]",
        include_synonyms: bool = True,
    ) -> None:
        if isinstance(class_names, str) or not class_names:
            raise ConfigError(
                "MaskClassNames needs the list of class names",
                field="class_names",
                expected="a non-empty list of strings",
                found=repr(class_names),
                fix="pass the dataset's classes (spec.classes)",
            )
        forms: set[str] = set()
        for c in class_names:
            n, s = class_name_forms(c, synonyms_file, include_synonyms=include_synonyms)
            forms |= n | s
        self.class_names = tuple(class_names)
        self.mask_token = mask_token
        self.forms = frozenset(forms)
        self._regex = _compile_names(forms)

    def __call__(self, text: str) -> str:
        """Return ``text`` with every class name/synonym replaced by the mask token."""
        return self._regex.sub(self.mask_token, text)

    def __repr__(self) -> str:
        n, f = len(self.class_names), len(self.forms)
        return f"MaskClassNames(classes={n}, forms={f}, mask={self.mask_token!r})"


class Compose:
    """Apply text transforms in order.

    Args:
        transforms: callables ``str → str``.
    """

    def __init__(self, transforms: Sequence[TextTransform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, text: str) -> str:
        """Apply every transform in turn."""
        for t in self.transforms:
            text = t(text)
        return text

    def __repr__(self) -> str:
        return "Compose([" + ", ".join(repr(t) for t in self.transforms) + "])"


_REGISTRY: dict[str, type] = {
    "drop_verdicts": DropVerdictSentences,
    "DropVerdictSentences": DropVerdictSentences,
    "mask_class_names": MaskClassNames,
    "MaskClassNames": MaskClassNames,
}


def build_text_transform(
    config: Sequence[str | Mapping[str, Any]] | None, class_names: Sequence[str] | None = None
) -> TextTransform | None:
    """Build a caption transform from a YAML/CLI list.

    Each item is a name (``"drop_verdicts"``, ``"mask_class_names"``, or the class names) or a mapping
    ``{name: ..., <init args>}``, also accepted as ``{class_path: ..., init_args: {...}}`` as LightningCLI
    writes it. ``class_names`` is filled in from the data when the item does not give it, so a config never
    repeats them::

        text_transforms:
          - drop_verdicts
          - {name: mask_class_names, mask_token: "[MASK]"}

    Args:
        config: the list (``None`` or empty: no transform).
        class_names: the dataset's classes.

    Returns:
        A :class:`Compose` (or ``None`` for an empty config).

    Raises:
        ConfigError: unknown transform name or bad arguments.
    """
    if not config:
        return None
    out: list[TextTransform] = []
    for i, item in enumerate(config):
        if isinstance(item, str):
            name, kwargs = item, {}
        elif isinstance(item, Mapping):
            d = dict(item)
            if "class_path" in d:
                name, kwargs = str(d.pop("class_path")), dict(d.pop("init_args", None) or {})
            else:
                name, kwargs = str(d.pop("name", "")), d
        else:
            raise ConfigError(
                "bad text transform entry",
                field=f"text_transforms[{i}]",
                expected="a name or a mapping with 'name'",
                found=repr(item),
                fix="write e.g. '- drop_verdicts' or '- {name: mask_class_names}'",
            )
        short = name.rsplit(".", 1)[-1]
        cls = _REGISTRY.get(name) or _REGISTRY.get(short)
        if cls is None:
            from rsmg.errors import unknown_name_error

            raise unknown_name_error("text transform", name, sorted(_REGISTRY), field=f"text_transforms[{i}]")
        if class_names is not None and "class_names" not in kwargs:
            kwargs["class_names"] = list(class_names)
        try:
            out.append(cls(**kwargs))
        except TypeError as err:
            raise ConfigError(
                f"bad arguments for text transform {short}",
                field=f"text_transforms[{i}]",
                found=kwargs,
                fix=str(err),
            ) from err
    return Compose(out)


# ------------------------------------------------------------------------------------------------------------
# Audit
# ------------------------------------------------------------------------------------------------------------
def audit_captions(
    captions: Sequence[str],
    labels: Sequence[str],
    *,
    synonyms_file: str | Path | None = None,
    class_names: Sequence[str] | None = None,
) -> dict[str, dict[str, int]]:
    """Count label leakage per class.

    Args:
        captions: one caption per sample.
        labels: the class name of each sample.
        synonyms_file: synonyms YAML (``None``: the shipped one).
        class_names: every class of the dataset (default: the labels seen), used for the class-aware verdict
            templates and for ``other_class``.

    Returns:
        ``{class: {"n", "class_name", "synonym", "name_or_synonym", "verdict", "other_class", "clean"}}``: the
        number of captions of that class, those naming their own class, using a synonym of it (but not the
        name), either, containing a verdict sentence, naming another class, and those with neither a verdict
        nor an own-class name/synonym.

    Raises:
        DataError: captions and labels differ in length.
    """
    if len(captions) != len(labels):
        raise DataError(
            "captions and labels differ in length",
            field="labels",
            expected=len(captions),
            found=len(labels),
            fix="pass one label per caption",
        )
    classes = list(dict.fromkeys(class_names if class_names is not None else labels))
    drop = DropVerdictSentences(classes, synonyms_file)
    name_re: dict[str, re.Pattern[str]] = {}
    syn_re: dict[str, re.Pattern[str]] = {}
    for c in classes:
        n, s = class_name_forms(c, synonyms_file)
        name_re[c], syn_re[c] = _compile_names(n), _compile_names(s)
    keys = ("n", "class_name", "synonym", "name_or_synonym", "verdict", "other_class", "clean")
    report: dict[str, dict[str, int]] = {c: dict.fromkeys(keys, 0) for c in dict.fromkeys(labels)}
    for text, label in zip(captions, labels, strict=True):
        if label not in name_re:
            n, s = class_name_forms(label, synonyms_file)
            name_re[label], syn_re[label] = _compile_names(n), _compile_names(s)
        row = report[label]
        has_name = bool(name_re[label].search(text))
        has_syn = bool(syn_re[label].search(text))
        verdict = any(drop.is_verdict(s) for s in split_sentences(text))
        row["n"] += 1
        row["class_name"] += has_name
        row["synonym"] += has_syn and not has_name
        row["name_or_synonym"] += has_name or has_syn
        row["verdict"] += verdict
        row["other_class"] += any(
            name_re[c].search(text) or syn_re[c].search(text) for c in classes if c != label
        )
        row["clean"] += not (verdict or has_name or has_syn)
    return report


def audit_totals(report: Mapping[str, Mapping[str, int]]) -> dict[str, int]:
    """Sum an :func:`audit_captions` report over classes."""
    total: dict[str, int] = {}
    for row in report.values():
        for k, v in row.items():
            total[k] = total.get(k, 0) + v
    return total
