"""Caption sources: one text per image, Karpathy and COCO JSON, the Sydney-captions description list, name lists."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rsmg.data.readers.checks import (
    _REDOWNLOAD,
    PathLike,
    _read_utf8,
)
from rsmg.errors import DataError

__all__ = [
    "CaptionRecord",
    "read_caption_txt",
    "read_captions_coco_json",
    "read_captions_karpathy_json",
    "read_name_list",
    "read_sydney_descriptions",
]


@dataclass
class CaptionRecord:
    """Captions of one image.

    Attributes:
        filename: image file name as written in the caption file (no directory).
        captions: the captions, in file order, whitespace-stripped.
        split: ``"train"`` / ``"val"`` / ``"test"`` (or the file's own word, e.g. ``"restval"``) when the
            caption file says; None otherwise.
    """

    filename: str
    captions: list[str]
    split: str | None = None


def read_caption_txt(path: PathLike) -> str:
    """Read a one-caption-per-image text file (AID / MultiAtt-RSSC layout) and return the stripped text.

    Raises:
        DataError: missing file, not UTF-8, or empty (only whitespace).
    """
    p, text = _read_utf8(path, what="caption file")
    text = text.strip()
    if not text:
        raise DataError(
            "caption file is empty",
            file=p,
            expected="a non-empty caption",
            found="no text (only whitespace)" if p.stat().st_size else "0 bytes",
            fix="write the caption into the file, or remove the image from the dataset",
        )
    return text


def _load_json(path: PathLike, *, what: str) -> tuple[Path, Any]:
    p, text = _read_utf8(path, what=what)
    try:
        return p, json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{what} is not valid JSON",
            file=p,
            field=f"line {exc.lineno}, column {exc.colno}",
            found=exc.msg,
            fix="re-download it (a truncated download ends mid-object); "
            "or fix the JSON syntax at that position",
        ) from exc


def _json_error(p: Path, what: str, where: str, expected: str, found: object) -> DataError:
    return DataError(
        f"{what} does not have the expected structure",
        file=p,
        field=where,
        expected=expected,
        found=found,
        fix="check that this is the right file for this reader; " + _REDOWNLOAD,
    )


def _clean_caption(raw: object, *, p: Path, where: str, what: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise _json_error(p, what, where, "a non-empty caption string", repr(raw))
    return raw.strip()


def read_captions_karpathy_json(path: PathLike) -> dict[str, CaptionRecord]:
    """Read a Karpathy-style caption file (``dataset_*.json`` of UCM-captions, Sydney-captions, RSICD).

    Format: ``{"images": [{"filename": ..., "split": ..., "sentences": [{"raw": ...}, ...]}, ...]}``. The
    ``raw`` text is used (``tokens`` joined by spaces when ``raw`` is missing); the file's ``split`` is kept
    as is, because the official splits are not derivable from file names (see the UCM-captions README).

    Returns:
        ``filename`` → :class:`CaptionRecord`, in file order.

    Raises:
        DataError: missing/non-UTF-8/invalid JSON, wrong structure, an image without captions, or a file name
            listed twice.
    """
    what = "Karpathy caption file"
    p, doc = _load_json(path, what=what)
    images = doc.get("images") if isinstance(doc, dict) else None
    if not isinstance(images, list):
        raise _json_error(p, what, "images", 'a top-level object with an "images" list', type(doc).__name__)
    out: dict[str, CaptionRecord] = {}
    for i, entry in enumerate(images):
        where = f"images[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("filename"), str):
            raise _json_error(p, what, f"{where}.filename", "a file name string", repr(entry)[:80])
        name = entry["filename"]
        sentences = entry.get("sentences")
        if not isinstance(sentences, list) or not sentences:
            raise _json_error(
                p, what, f"{where}.sentences ({name})", "a non-empty list", repr(sentences)[:80]
            )
        caps = []
        for j, s in enumerate(sentences):
            if not isinstance(s, dict):
                raise _json_error(p, what, f"{where}.sentences[{j}] ({name})", "an object", repr(s)[:80])
            raw = s.get("raw")
            if raw is None and isinstance(s.get("tokens"), list):
                raw = " ".join(str(t) for t in s["tokens"])
            caps.append(_clean_caption(raw, p=p, where=f"{where}.sentences[{j}].raw ({name})", what=what))
        if name in out:
            raise _json_error(p, what, f"{where}.filename", "unique file names", f"{name!r} listed twice")
        split = entry.get("split")
        out[name] = CaptionRecord(name, caps, None if split is None else str(split))
    return out


def read_captions_coco_json(path: PathLike, split: str | None = None) -> dict[str, CaptionRecord]:
    """Read a COCO-captions file.

    Format: ``{"images": [{"id", "file_name"}, ...], "annotations": [{"image_id", "caption"}, ...]}``. COCO
    files carry no split field (the split is the file: ``captions_val2017.json``), so the caller passes it.

    Args:
        path: the JSON file.
        split: split name stored in every record.

    Returns:
        ``file_name`` → :class:`CaptionRecord`, in the order of ``images``; captions in annotation order.

    Raises:
        DataError: missing/non-UTF-8/invalid JSON, wrong structure, an annotation pointing at an unknown
            image, an image without captions, or a duplicate image id / file name.
    """
    what = "COCO caption file"
    p, doc = _load_json(path, what=what)
    if not isinstance(doc, dict):
        raise _json_error(p, what, "(top level)", "an object", type(doc).__name__)
    images, annotations = doc.get("images"), doc.get("annotations")
    if not isinstance(images, list) or not isinstance(annotations, list):
        raise _json_error(
            p, what, "images / annotations", 'top-level "images" and "annotations" lists', sorted(doc)[:10]
        )
    by_id: dict[Any, CaptionRecord] = {}
    out: dict[str, CaptionRecord] = {}
    for i, img in enumerate(images):
        if not isinstance(img, dict) or "id" not in img or not isinstance(img.get("file_name"), str):
            raise _json_error(p, what, f"images[{i}]", 'an object with "id" and "file_name"', repr(img)[:80])
        if img["id"] in by_id or img["file_name"] in out:
            raise _json_error(p, what, f"images[{i}]", "unique ids and file names", repr(img)[:80])
        rec = CaptionRecord(img["file_name"], [], split)
        by_id[img["id"]] = out[img["file_name"]] = rec
    for j, ann in enumerate(annotations):
        if not isinstance(ann, dict) or "image_id" not in ann:
            raise _json_error(p, what, f"annotations[{j}]", 'an object with "image_id"', repr(ann)[:80])
        target = by_id.get(ann["image_id"])
        if target is None:
            raise _json_error(
                p, what, f"annotations[{j}].image_id", "the id of an entry in images", repr(ann["image_id"])
            )
        target.captions.append(
            _clean_caption(ann.get("caption"), p=p, where=f"annotations[{j}].caption", what=what)
        )
    empty = [name for name, rec in out.items() if not rec.captions]
    if empty:
        raise _json_error(
            p, what, "annotations", "at least one caption per image", f"no caption for {empty[:5]}"
        )
    return out


def read_sydney_descriptions(path: PathLike, extension: str = ".tif") -> dict[str, CaptionRecord]:
    """Read the Sydney-captions description list (``descriptions_SIDNEY.txt``).

    Each line is ``"<image number> <caption>"`` (CRLF line ends, 5 lines per image); image ``n`` is file
    ``f"{n}{extension}"``, matching the split lists ``filenames_{train,val,test}.txt``. Splits are not in this
    file: combine with :func:`read_name_list`.

    Returns:
        ``"<n>.tif"`` → :class:`CaptionRecord` (split None), in order of first appearance.

    Raises:
        DataError: missing/non-UTF-8 file, a line not of the form ``<number> <caption>``, or no lines at all.
    """
    p, text = _read_utf8(path, what="Sydney description file")
    out: dict[str, CaptionRecord] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        num, _, caption = line.partition(" ")
        if not num.isdigit() or not caption.strip():
            raise DataError(
                "line is not of the form '<image number> <caption>'",
                file=p,
                field=f"line {lineno}",
                expected="an integer, a space, then the caption",
                found=repr(line[:80]),
                fix="fix or delete that line; " + _REDOWNLOAD,
            )
        name = f"{int(num)}{extension}"
        out.setdefault(name, CaptionRecord(name, [], None)).captions.append(caption.strip())
    if not out:
        raise DataError(
            "description file holds no captions",
            file=p,
            expected="lines '<n> <caption>'",
            found="none",
            fix=_REDOWNLOAD,
        )
    return out


def read_name_list(path: PathLike) -> list[str]:
    """Read a split / class list: one file name per line (blank lines ignored, CRLF accepted).

    Raises:
        DataError: missing/non-UTF-8 file, a name listed twice (a split list with duplicates double-counts
            samples), or no names.
    """
    p, text = _read_utf8(path, what="name list")
    names = [ln.strip() for ln in text.splitlines() if ln.strip()]
    seen: set[str] = set()
    for i, n in enumerate(names):
        if n in seen:
            raise DataError(
                "name listed twice",
                file=p,
                field=f"entry {i + 1}",
                expected="unique names",
                found=repr(n),
                fix="remove the duplicate line",
            )
        seen.add(n)
    if not names:
        raise DataError(
            "name list is empty", file=p, expected="one name per line", found="none", fix=_REDOWNLOAD
        )
    return names
