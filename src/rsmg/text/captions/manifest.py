"""Caption manifests: the JSONL file that records, per image, a caption and what produced it.

One object per image (``{"image": "Airport/airport_1.jpg", "caption": ..., "model": ..., "prompt": ...}``),
keyed by the image path relative to the image folder. Written atomically and sorted, so a resumed run ends
with the same file as an uninterrupted one; a re-run with other settings is refused instead of mixing two
kinds of captions in one file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rsmg.errors import ConfigError, DataError
from rsmg.io import atomic_write_text

__all__ = [
    "IMAGE_EXTENSIONS",
    "CaptionSummary",
    "find_images",
    "read_manifest",
    "write_manifest",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")


@dataclass
class CaptionSummary:
    """What one run did.

    Attributes:
        out: the manifest.
        total: images found in the folder.
        done_before: images already captioned in the manifest (skipped).
        new: images captioned by this run.
        errors: images recorded as errors (``--skip-bad``) by this run.
        remaining: images still to caption (non-zero after ``--limit``).
    """

    out: Path
    total: int
    done_before: int = 0
    new: int = 0
    errors: int = 0
    remaining: int = 0


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def find_images(image_dir: str | Path, glob: str | None = None) -> list[str]:
    """List the images of a folder, recursively, as sorted POSIX paths relative to it.

    Relative paths are the manifest keys: they survive moving the dataset, and their parent folder is the
    class in the AID / UCM layouts. Hidden files (``._x.jpg`` from macOS archives) are left out because they are
    never images.

    Args:
        image_dir: the folder.
        glob: pattern relative to it (default: every file with an image extension, at any depth).

    Returns:
        The relative paths, sorted.

    Raises:
        DataError: the folder does not exist, or holds no matching image.
    """
    root = Path(image_dir)
    if not root.is_dir():
        raise DataError(
            "image folder does not exist" if not root.exists() else "image path is not a folder",
            file=root,
            expected="a folder of images (e.g. image/<Class>/*.jpg)",
            fix="pass the folder that holds the images as IMAGE_DIR",
        )
    pattern = glob or "**/*"
    found = []
    for p in root.glob(pattern):
        if not p.is_file() or any(part.startswith(".") for part in p.relative_to(root).parts):
            continue
        if glob is None and p.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        found.append(p.relative_to(root).as_posix())
    if not found:
        raise DataError(
            "no image found",
            file=root,
            field="--glob",
            expected=f"files matching {pattern!r}"
            + ("" if glob else f" with an extension in {IMAGE_EXTENSIONS}"),
            found="none",
            fix="check IMAGE_DIR, or pass --glob (e.g. --glob '**/*.tif')",
        )
    return sorted(found)


def read_manifest(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read a caption manifest (JSONL, one object with an ``image`` key per line).

    Manifests are written atomically, so a line that is not JSON means the file was edited or written by
    something else; resuming on top of it could duplicate or lose captions, so it stops the run.

    Args:
        path: the manifest; a missing file reads as empty (a first run).

    Returns:
        ``image`` → record, in file order (the last record wins if an image repeats).

    Raises:
        DataError: a line is not a JSON object with a string ``image``.
    """
    p = Path(path)
    if not p.exists():
        return {}
    if not p.is_file():
        raise DataError(
            "manifest path is not a file",
            file=p,
            fix="pass a .jsonl file path as --out",
        )
    records: dict[str, dict[str, Any]] = {}
    try:
        lines = p.read_text(encoding="utf-8").split("\n")  # not splitlines(): captions may hold U+2028
    except UnicodeDecodeError as exc:
        raise DataError(
            "manifest is not UTF-8 text",
            file=p,
            field=f"byte {exc.start}",
            expected="a JSONL file written by rsmg caption",
            found=exc.reason,
            fix="pass the manifest written by `rsmg caption --out`, or --overwrite to start over",
        ) from exc
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(
                "manifest line is not valid JSON",
                file=p,
                field=f"line {lineno}",
                expected="one JSON object per line",
                found=exc.msg,
                fix="fix or delete that line (the other captions are kept), or pass --overwrite to start over",
            ) from exc
        if not isinstance(rec, dict) or not isinstance(rec.get("image"), str):
            raise DataError(
                "manifest line has no image path",
                file=p,
                field=f"line {lineno}",
                expected='an object with a string "image"',
                found=repr(rec)[:80],
                fix="fix or delete that line, or pass --overwrite to start over",
            )
        records[rec["image"]] = rec
    return records


def write_manifest(path: str | Path, records: Mapping[str, Mapping[str, Any]]) -> Path:
    """Write the manifest atomically, records sorted by image path.

    Sorting makes a resumed run's manifest identical (apart from times) to an uninterrupted one, and the
    atomic write means a kill at any moment leaves either the previous or the new complete file.

    Returns:
        The path written.
    """
    lines = [json.dumps(records[k], ensure_ascii=False) + "\n" for k in sorted(records)]
    return atomic_write_text(path, "".join(lines))


def _identity(rec: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a record that must match for two captions to belong in one manifest."""
    model = rec.get("model") or {}
    key = "fingerprint" if model.get("backend") == "transformers" else "path"
    return {
        "backend": model.get("backend"),
        key: model.get(key),
        "prompt": rec.get("prompt"),
        "generation": rec.get("generation"),
    }


def _check_same_settings(
    existing: Mapping[str, Mapping[str, Any]], new: Mapping[str, Any], out: Path
) -> None:
    """Refuse to add captions made with other settings to a manifest (a mixed manifest is silently wrong)."""
    want = _identity(new)
    for image, rec in existing.items():
        if rec.get("error") is not None:
            continue  # error records are retried, and replaced
        have = _identity(rec)
        if have != want:
            keys = sorted(k for k in want.keys() | have.keys() if have.get(k) != want.get(k))
            raise ConfigError(
                "the manifest already holds captions made with other settings",
                file=out,
                field=", ".join(keys),
                expected=f"{ {k: have.get(k) for k in keys} } (as recorded for {image})",
                found={k: want.get(k) for k in keys},
                fix="write to another --out, or pass --overwrite to replace the manifest",
            )
