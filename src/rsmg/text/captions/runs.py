"""Caption runs: a manifest for a whole image folder, from a :class:`~.vlm.Captioner` or from .txt files.

Captioning thousands of images takes hours, so a model run is resumable: the manifest is rewritten atomically
after every batch (a killed run leaves a complete, valid file), and a re-run skips the images already in it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from rsmg.data.readers import read_caption_txt, read_image
from rsmg.errors import ConfigError, DataError
from rsmg.text.captions.manifest import (
    CaptionSummary,
    _check_same_settings,
    _now,
    find_images,
    read_manifest,
    write_manifest,
)
from rsmg.text.captions.vlm import Captioner

__all__ = ["caption_folder", "captions_from_files"]

_PROG = "rsmg caption"
_RESUME_HINT = "re-run the same command to resume (images already in the manifest are skipped)"


def _pil_rgb(path: Path) -> Any:
    """Read an image with rsmg's reader (clear errors) and return it as an 8-bit RGB PIL image."""
    import numpy as np
    from PIL import Image

    arr = read_image(path)
    if arr.dtype != np.uint8:
        raise DataError(
            "image is not 8-bit",
            file=path,
            expected="an 8-bit image (uint8), as vision-language models are trained on",
            found=f"{arr.dtype} values in [{float(arr.min())}, {float(arr.max())}]",
            fix="convert it to 8-bit RGB (choosing the value range knowingly), or pass --skip-bad",
        )
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.shape[2] > 3:
        arr = arr[:, :, :3]  # RGBA: the alpha channel carries no scene content
    return Image.fromarray(np.ascontiguousarray(arr))


def _with_skip_hint(err: DataError, out: Path) -> DataError:
    """The reader's error, plus how to go on: the manifest keeps everything captioned so far."""
    fix = (err.fix + "; " if err.fix else "") + (
        f"or pass --skip-bad to record it in the manifest as an error; captions so far are saved in {out}, "
        + _RESUME_HINT
    )
    what = str(err).split("\n", 1)[0].rstrip(".")
    return DataError(what, file=err.file, field=err.field, expected=err.expected, found=err.found, fix=fix)


def _progress(total: int, initial: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="img", desc="caption", disable=None if enabled else True)


def caption_folder(
    image_dir: str | Path,
    out: str | Path,
    captioner: Captioner,
    *,
    glob: str | None = None,
    batch_size: int = 4,
    skip_bad: bool = False,
    overwrite: bool = False,
    limit: int | None = None,
    progress: bool = True,
) -> CaptionSummary:
    """Caption every image of a folder that the manifest does not hold yet.

    Args:
        image_dir: the images (any depth; the parent folder is the class for ``--audit``).
        out: the JSONL manifest, created or resumed.
        captioner: the :class:`Captioner`; it loads its model only when some image still needs a caption, so
            re-running a finished job does not read gigabytes of weights.
        glob: image pattern (see :func:`find_images`).
        batch_size: images per ``generate`` call; the manifest is saved after each.
        skip_bad: record an unreadable image as ``{"caption": null, "error": ...}`` and go on; such records
            are retried by the next run.
        overwrite: ignore (and replace) an existing manifest.
        limit: caption at most this many new images, then stop (to split a long job into chunks).
        progress: show a tqdm bar (auto-disabled when stderr is not a terminal).

    Returns:
        The :class:`CaptionSummary`.

    Raises:
        DataError: bad folder, model directory or manifest; an unreadable image without ``skip_bad``.
        ConfigError: bad batch size / limit, or a manifest made with other settings.
    """
    if batch_size < 1:
        raise ConfigError("invalid --batch-size", field="--batch-size", expected=">= 1", found=batch_size)
    if limit is not None and limit < 1:
        raise ConfigError("invalid --limit", field="--limit", expected=">= 1", found=limit)
    root, out = Path(image_dir), Path(out)
    images = find_images(root, glob)
    records = {} if overwrite else read_manifest(out)
    _check_same_settings(records, captioner.identity(), out)
    done = {k for k, r in records.items() if r.get("error") is None and isinstance(r.get("caption"), str)}
    todo = [k for k in images if k not in done]
    summary = CaptionSummary(out=out, total=len(images), done_before=len(images) - len(todo))
    if limit is not None:
        summary.remaining = max(0, len(todo) - limit)
        todo = todo[:limit]
    if not todo:
        if overwrite or not out.exists():
            write_manifest(out, records)
        return summary
    base = captioner.record_base()
    if overwrite:
        write_manifest(out, records)  # --overwrite replaces the old file now, not at the first batch
    bar = _progress(len(images), summary.done_before, progress)
    try:
        for start in range(0, len(todo), batch_size):
            batch_keys = todo[start : start + batch_size]
            pics, keys = [], []
            for key in batch_keys:
                try:
                    pics.append(_pil_rgb(root / key))
                    keys.append(key)
                except DataError as err:
                    if not skip_bad:
                        raise _with_skip_hint(err, out) from err
                    records[key] = {"image": key, "caption": None, "error": str(err), **base, "time": _now()}
                    summary.errors += 1
                    print(f"{_PROG}: skipped (recorded as an error): {err}", file=sys.stderr)
            if pics:
                t0 = time.perf_counter()
                texts = captioner.caption(pics)
                per_image = round((time.perf_counter() - t0) / len(pics), 4)
                stamp = _now()
                for key, text in zip(keys, texts, strict=True):
                    records[key] = {
                        "image": key,
                        "caption": text,
                        **base,
                        "time": stamp,
                        "seconds": per_image,
                    }
                summary.new += len(keys)
            write_manifest(out, records)
            bar.update(len(batch_keys))
    finally:
        bar.close()
    return summary


def _text_path(text_dir: Path, image_key: str) -> Path:
    return text_dir / Path(image_key).with_suffix(".txt")


def captions_from_files(
    image_dir: str | Path,
    text_dir: str | Path,
    out: str | Path,
    *,
    glob: str | None = None,
    skip_bad: bool = False,
    overwrite: bool = False,
) -> CaptionSummary:
    """Build a manifest from per-image ``.txt`` files (``TEXT_DIR/<same relative path>.txt``).

    Shipped captions (e.g. the AID descriptions of MultiAtt-RSSC) then go through the same audit and loaders
    as generated ones. The manifest is rebuilt in full each time (reading text files is quick), atomically.

    Args:
        image_dir: the images; every one needs a caption file.
        text_dir: the caption files, mirroring ``image_dir`` (``text/<Class>/<stem>.txt``).
        out: the JSONL manifest.
        glob: image pattern (see :func:`find_images`).
        skip_bad: record a missing / empty / non-UTF-8 caption file as an error instead of stopping.
        overwrite: replace a manifest that was made from another source.

    Returns:
        The :class:`CaptionSummary`.

    Raises:
        DataError: a caption file is missing (naming the image and the expected path) or unreadable.
        ConfigError: the manifest at ``out`` was made from another source (a model, another folder).
    """
    root, tdir, out = Path(image_dir), Path(text_dir), Path(out)
    if not tdir.is_dir():
        raise DataError(
            "caption folder does not exist",
            file=tdir,
            expected="a folder of per-image .txt files (e.g. text/<Class>/<stem>.txt)",
            fix="pass the folder that holds the .txt captions as --from-files",
        )
    images = find_images(root, glob)
    base: dict[str, Any] = {
        "model": {"backend": "files", "path": str(tdir.resolve())},
        "prompt": None,
        "generation": None,
    }
    if not overwrite:
        _check_same_settings(read_manifest(out), base, out)
    records: dict[str, dict[str, Any]] = {}
    summary = CaptionSummary(out=out, total=len(images))
    stamp = _now()
    for key in images:
        txt = _text_path(tdir, key)
        try:
            if not txt.exists():
                raise DataError(
                    "image has no caption file",
                    file=root / key,
                    field="caption",
                    expected=f"the caption in {txt}",
                    found="no such file",
                    fix="write the caption there, remove the image, or pass --skip-bad to record it as an error",
                )
            caption = read_caption_txt(txt)
        except DataError as err:
            if not skip_bad:
                raise
            records[key] = {"image": key, "caption": None, "error": str(err), **base, "time": stamp}
            summary.errors += 1
            print(f"{_PROG}: skipped (recorded as an error): {err}", file=sys.stderr)
            continue
        source = txt.relative_to(tdir).as_posix()
        records[key] = {"image": key, "caption": caption, **base, "source": source, "time": stamp}
        summary.new += 1
    write_manifest(out, records)
    return summary
