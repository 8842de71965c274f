"""Label-leakage audit of captions: per class, how many name their class, a synonym, or state a verdict.

These are the numbers to report next to any text-branch accuracy (see :mod:`rsmg.text.leakage`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rsmg.data.readers import read_caption_txt
from rsmg.errors import ConfigError, DataError
from rsmg.text.captions.manifest import read_manifest

__all__ = ["audit_source", "format_audit_table"]


def _label_of(rel: str, where: Path) -> str:
    parts = Path(rel).parts
    if len(parts) < 2:
        raise DataError(
            "cannot tell the class of a caption: its image is not inside a class folder",
            file=where,
            field=rel,
            expected="<Class>/<file> (the parent folder names the class)",
            found=rel,
            fix="lay the images (or text files) out as <root>/<Class>/<file>",
        )
    return parts[-2]


def audit_source(
    source: str | Path,
    *,
    class_dir: str | Path | None = None,
    classes_from_folders: bool = False,
    synonyms_file: str | Path | None = None,
) -> dict[str, Any]:
    """Audit label leakage in a manifest or a folder of ``.txt`` captions.

    Args:
        source: a JSONL manifest (records with a caption; error records are counted as skipped) or a folder
            of ``<Class>/<stem>.txt`` files.
        class_dir: folder whose sub-folders are the dataset's classes (default: ``source`` when it is a
            folder); used with ``classes_from_folders``.
        classes_from_folders: take the dataset's class list from the sub-folders of ``class_dir`` (every class,
            even those without captions here), for the class-aware verdict patterns and ``other_class``;
            default: the classes that have captions.
        synonyms_file: synonyms YAML (``None``: the shipped one).

    Returns:
        ``{"source", "classes": {class: counts}, "total": counts, "skipped": n}`` with the counts of
        :func:`rsmg.text.leakage.audit_captions`.

    Raises:
        DataError: missing source, a caption outside a class folder, or no caption at all.
        ConfigError: ``classes_from_folders`` for a manifest without ``class_dir``.
    """
    from rsmg.text.leakage import audit_captions, audit_totals

    src = Path(source)
    captions: list[str] = []
    labels: list[str] = []
    skipped = 0
    if src.is_dir():
        for txt in sorted(src.rglob("*.txt")):
            rel = txt.relative_to(src).as_posix()
            if any(part.startswith(".") for part in Path(rel).parts):
                continue
            labels.append(_label_of(rel, src))
            captions.append(read_caption_txt(txt))
        class_dir = src if class_dir is None else class_dir
    elif src.is_file():
        for rec in read_manifest(src).values():
            if rec.get("error") is not None or not isinstance(rec.get("caption"), str):
                skipped += 1
                continue
            labels.append(_label_of(rec["image"], src))
            captions.append(rec["caption"])
    else:
        raise DataError(
            "audit source does not exist",
            file=src,
            expected="a caption manifest (.jsonl) or a folder of <Class>/<stem>.txt files",
            fix="pass the manifest written by `rsmg caption --out`, or the text folder",
        )
    if not captions:
        raise DataError(
            "nothing to audit: no caption found",
            file=src,
            expected="at least one caption",
            found=f"none ({skipped} error records)" if skipped else "none",
            fix="check the path (a text folder needs <Class>/<stem>.txt files)",
        )
    class_names: list[str] | None = None
    if classes_from_folders:
        if class_dir is None:
            raise ConfigError(
                "--classes-from-folders with a manifest needs the image folder",
                field="IMAGE_DIR",
                expected="the folder whose sub-folders are the classes",
                fix="pass IMAGE_DIR too: rsmg caption IMAGE_DIR --audit MANIFEST --classes-from-folders",
            )
        cdir = Path(class_dir)
        class_names = sorted(d.name for d in cdir.iterdir() if d.is_dir() and not d.name.startswith("."))
        class_names += sorted(set(labels) - set(class_names))
    report = audit_captions(captions, labels, synonyms_file=synonyms_file, class_names=class_names)
    return {
        "source": str(src),
        "classes": dict(sorted(report.items())),
        "total": audit_totals(report),
        "skipped": skipped,
    }


_AUDIT_COLUMNS = ("n", "class_name", "synonym", "name_or_synonym", "verdict", "other_class", "clean")


def format_audit_table(result: Mapping[str, Any]) -> str:
    """A Markdown table of an :func:`audit_source` result, one row per class plus the total."""
    head = "| class | " + " | ".join(_AUDIT_COLUMNS) + " |"
    sep = "|---|" + "---:|" * len(_AUDIT_COLUMNS)
    rows = [head, sep]
    for name, counts in result["classes"].items():
        rows.append(f"| {name} | " + " | ".join(str(counts[c]) for c in _AUDIT_COLUMNS) + " |")
    total = result["total"]
    rows.append("| **total** | " + " | ".join(f"**{total[c]}**" for c in _AUDIT_COLUMNS) + " |")
    return "\n".join(rows)
