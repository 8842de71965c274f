"""``rsmg caption``: a caption manifest for an image folder, from a local vision-language model or from text files.

Cai et al. (arXiv 2412.02531) pair every scene image with a paragraph written by a vision-language model (VLM).
To study what such a text branch adds, the captions must be reproducible: which model, which prompt and which
decoding settings produced each one. This command writes them into a JSONL *manifest*, one object per image::

    {"image": "Airport/airport_1.jpg", "caption": "...", "model": {...}, "prompt": "...",
     "prompt_format": "chat_template", "generation": {...}, "runtime": {...}, "time": "...", "seconds": 0.41}

Three modes:

* **model** — ``rsmg caption IMAGE_DIR --model LOCAL_DIR --out captions.jsonl``: loads the VLM with
  ``transformers`` from a local directory only (``local_files_only=True``; rsmg never downloads), renders the
  prompt with the processor's chat template when it has one, and generates in batches. Captioning thousands
  of images takes hours, so the run is resumable: the manifest is rewritten atomically after every batch (a
  killed run leaves a complete, valid file), and a re-run skips the images already in it. A re-run with a
  different model, prompt or decoding settings is refused instead of mixing two kinds of captions in one file.
* **files** — ``rsmg caption IMAGE_DIR --from-files TEXT_DIR --out captions.jsonl``: the same manifest from
  existing per-image ``.txt`` files (AID / MultiAtt-RSSC layout ``text/<Class>/<stem>.txt`` beside
  ``image/<Class>/<stem>.jpg``), so shipped captions and generated ones go through the same tools.
* **audit** — ``rsmg caption --audit MANIFEST_OR_TEXT_DIR``: per class (the image's parent folder), how many
  captions name their class, use a synonym of it, or contain a verdict sentence ("this scene can be classified
  as an airport"), via :func:`rsmg.text.leakage.audit_captions` — the numbers to report next to any text-branch
  accuracy.

``transformers`` and ``torch`` are imported only when a model is loaded, so ``rsmg caption --help``, the file
backend and the audit stay fast and work without the ``vlm`` extra. The work is done in
:mod:`rsmg.text.captions` (manifest, VLM, runs, audit); this module is the command line, built by
:mod:`rsmg.cli.signature` from :func:`caption`'s signature (so ``--config FILE`` and ``--print_config`` work).
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any, Literal

from rsmg.cli.signature import Arg, parse_kwargs, signature_parser
from rsmg.errors import RsmgError, UsageError
from rsmg.io import atomic_write_text
from rsmg.text.captions.audit import audit_source, format_audit_table
from rsmg.text.captions.manifest import CaptionSummary
from rsmg.text.captions.runs import _PROG, _RESUME_HINT, caption_folder, captions_from_files
from rsmg.text.captions.vlm import DEFAULT_PROMPT, Captioner, GenerationSettings

__all__ = ["caption", "main", "parser"]

_EPILOG = """examples:
  rsmg caption data/aid/image --model ~/models/llava-1.5-7b-hf --out aid_llava.jsonl --device cuda
  rsmg caption minitest/image --from-files minitest/text --out aid_shipped.jsonl
  rsmg caption --audit aid_llava.jsonl --out aid_llava_audit.json
  rsmg caption --audit minitest/text
  rsmg caption data/aid/image --config caption_llava.yaml   # options from YAML (keys as --print_config)"""


_GEN = Arg(group="generation (--model)")
_IMAGES = Arg(group="images and manifest")
_AUDIT = Arg(group="audit (--audit)")
_SOURCES = ("--model", "--from-files", "--audit")


def caption(
    image_dir: Annotated[str | None, Arg(metavar="IMAGE_DIR")] = None,
    *,
    model: Annotated[str | None, Arg(metavar="LOCAL_DIR", exclusive="source")] = None,
    from_files: Annotated[str | None, Arg(metavar="TEXT_DIR", exclusive="source")] = None,
    audit: Annotated[str | None, Arg(metavar="MANIFEST_OR_TEXT_DIR", exclusive="source")] = None,
    out: Annotated[str | None, Arg(metavar="FILE")] = None,
    prompt: Annotated[str, _GEN] = DEFAULT_PROMPT,
    max_new_tokens: Annotated[int, _GEN] = 128,
    do_sample: Annotated[bool, _GEN] = False,
    temperature: Annotated[float | None, _GEN] = None,
    top_p: Annotated[float | None, _GEN] = None,
    num_beams: Annotated[int, _GEN] = 1,
    seed: Annotated[int, _GEN] = 0,
    batch_size: Annotated[int, _GEN] = 4,
    device: Annotated[Literal["auto", "cpu", "cuda"], _GEN] = "auto",
    dtype: Annotated[Literal["auto", "float32", "bfloat16", "float16"], _GEN] = "auto",
    trust_remote_code: Annotated[bool, _GEN] = False,
    limit: Annotated[int | None, _GEN] = None,
    glob: Annotated[str | None, _IMAGES] = None,
    skip_bad: Annotated[bool, _IMAGES] = False,
    overwrite: Annotated[bool, _IMAGES] = False,
    no_progress: Annotated[bool, _IMAGES] = False,
    classes_from_folders: Annotated[bool, _AUDIT] = False,
    synonyms: Annotated[str | None, _AUDIT] = None,
) -> int:
    """Write a JSONL caption manifest for an image folder, or audit captions for label leakage.

    Captions come from a local vision-language model (--model) or from existing per-image .txt files
    (--from-files); --audit counts captions that name their class. Resumable: re-running skips the images
    already in the manifest. Never downloads.

    Args:
        image_dir: folder of images (<Class>/<file>)
        model: local directory of a transformers VLM
        from_files: folder of per-image .txt captions
        audit: audit captions for label leakage
        out: manifest (.jsonl); with --audit, the JSON report (optional)
        prompt: instruction given with each image
        max_new_tokens: longest caption in tokens
        do_sample: sample instead of greedy decoding
        temperature: sampling temperature (none: 1.0)
        top_p: nucleus sampling mass (none: 1.0)
        num_beams: beam-search width
        seed: torch seed set before the first batch
        batch_size: images per generate call
        device: auto: cuda if available
        dtype: weights' dtype (auto: the model's)
        trust_remote_code: run code shipped in the model directory
        limit: caption at most N new images, then stop
        glob: image pattern relative to IMAGE_DIR (none: all image files)
        skip_bad: record unreadable images as errors instead of stopping
        overwrite: replace an existing manifest instead of resuming
        no_progress: no progress bar
        classes_from_folders: the class list is every sub-folder (of the text folder, or of IMAGE_DIR for a
            manifest), not only the classes that have captions
        synonyms: synonyms YAML (none: the shipped one)

    Returns:
        0 on success, 130 when interrupted (the manifest keeps every finished batch).

    Raises:
        UsageError: no work named (IMAGE_DIR, --out and a source are needed), or two sources given.
        RsmgError: bad input (a file, a model directory, a manifest written with other settings).
    """
    given = [o for o, v in zip(_SOURCES, (model, from_files, audit), strict=True) if v is not None]
    if len(given) > 1:  # the parser's group checks the command line; this also covers --config files
        raise UsageError(f"{' and '.join(given)} exclude each other: give one")
    if audit is not None:
        result = audit_source(
            audit, class_dir=image_dir, classes_from_folders=classes_from_folders, synonyms_file=synonyms
        )
        print(format_audit_table(result))
        t = result["total"]
        print(
            f"\n{t['verdict']} of {t['n']} captions contain a verdict sentence, {t['name_or_synonym']} name their "
            f"class or a synonym, {t['clean']} are clean"
            + (f" ({result['skipped']} error records skipped)" if result["skipped"] else "")
        )
        if out:
            atomic_write_text(out, json.dumps(result, indent=2) + "\n")
            print(f"audit written to {out}")
        return 0
    if image_dir is None or out is None or (model is None and from_files is None):
        raise UsageError("IMAGE_DIR, --out and one of --model / --from-files are required (or use --audit)")
    if from_files is not None:
        s = captions_from_files(image_dir, from_files, out, glob=glob, skip_bad=skip_bad, overwrite=overwrite)
        print(f"{s.new} captions from {from_files} written to {s.out}" + _errors_note(s))
        return 0
    assert model is not None  # checked above
    settings = GenerationSettings.from_args(
        max_new_tokens=max_new_tokens,
        do_sample=do_sample,
        temperature=temperature,
        top_p=top_p,
        num_beams=num_beams,
        seed=seed,
    )
    captioner = Captioner(  # checks the model directory now; loads it only if an image needs a caption
        model,
        prompt=prompt,
        generation=settings,
        device=device,
        dtype=dtype,
        trust_remote_code=trust_remote_code,
    )
    try:
        s = caption_folder(
            image_dir,
            out,
            captioner,
            glob=glob,
            batch_size=batch_size,
            skip_bad=skip_bad,
            overwrite=overwrite,
            limit=limit,
            progress=not no_progress,
        )
    except KeyboardInterrupt:
        print(f"\n{_PROG}: interrupted; captions so far are saved in {out}; {_RESUME_HINT}", file=sys.stderr)
        return 130
    print(
        f"{s.new} new captions written to {s.out} ({s.done_before} already there, {s.total} images)"
        + _errors_note(s)
        + (f"; {s.remaining} images left (--limit), {_RESUME_HINT}" if s.remaining else "")
    )
    return 0


def _errors_note(s: CaptionSummary) -> str:
    return f"; {s.errors} images recorded as errors (see the 'error' field)" if s.errors else ""


def parser() -> Any:
    """The jsonargparse parser of ``rsmg caption``, built from :func:`caption`'s signature and docstring."""
    return signature_parser(caption, prog=_PROG, epilog=_EPILOG)


def main(argv: list[str] | None = None) -> int:
    """Run ``rsmg caption``; see ``rsmg caption --help``.

    Args:
        argv: arguments after ``caption`` (default: ``sys.argv[1:]``).

    Returns:
        0 on success; 1 for bad input (one message naming the file and the fix, no traceback); 2 for a usage
        error; 130 when interrupted (the manifest keeps every finished batch).
    """
    p = parser()
    kwargs = parse_kwargs(p, caption, argv)  # a bad command line exits 2 here, --help 0
    try:
        return caption(**kwargs)
    except UsageError as e:
        p.print_usage(sys.stderr)
        print(f"{_PROG}: error: {e}", file=sys.stderr)
        return 2
    except RsmgError as e:
        print(f"{_PROG}: error: {e}", file=sys.stderr)
        return 1
