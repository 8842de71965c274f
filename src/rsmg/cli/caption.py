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
:mod:`rsmg.text.captions` (manifest, VLM, runs, audit); this module is the argparse front door.
"""

from __future__ import annotations

import argparse
import json
import sys

from rsmg.errors import RsmgError
from rsmg.io import atomic_write_text
from rsmg.text.captions.audit import audit_source, format_audit_table
from rsmg.text.captions.manifest import CaptionSummary
from rsmg.text.captions.runs import _PROG, _RESUME_HINT, caption_folder, captions_from_files
from rsmg.text.captions.vlm import DEFAULT_PROMPT, Captioner, GenerationSettings

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=_PROG,
        description="Write a JSONL caption manifest for an image folder with a local vision-language model\n"
        "(--model), or from existing per-image .txt files (--from-files); or audit captions for label\n"
        "leakage (--audit). Resumable: re-running skips the images already in the manifest. Never downloads.",
        epilog="examples:\n"
        "  rsmg caption data/aid/image --model ~/models/llava-1.5-7b-hf --out aid_llava.jsonl --device cuda\n"
        "  rsmg caption minitest/image --from-files minitest/text --out aid_shipped.jsonl\n"
        "  rsmg caption --audit aid_llava.jsonl --out aid_llava_audit.json\n"
        "  rsmg caption --audit minitest/text",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("image_dir", nargs="?", metavar="IMAGE_DIR", help="folder of images (<Class>/<file>)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--model", metavar="LOCAL_DIR", help="local directory of a transformers VLM")
    src.add_argument("--from-files", metavar="TEXT_DIR", help="folder of per-image .txt captions")
    src.add_argument("--audit", metavar="MANIFEST_OR_TEXT_DIR", help="audit captions for label leakage")
    p.add_argument(
        "--out", metavar="FILE", help="manifest (.jsonl); with --audit, the JSON report (optional)"
    )
    g = p.add_argument_group("generation (--model)")
    g.add_argument(
        "--prompt", default=DEFAULT_PROMPT, help="instruction given with each image (default: %(default)r)"
    )
    g.add_argument("--max-new-tokens", type=int, default=128, help="longest caption in tokens (default: 128)")
    g.add_argument("--do-sample", action="store_true", help="sample instead of greedy decoding")
    g.add_argument("--temperature", type=float, default=None, help="sampling temperature (default 1.0)")
    g.add_argument("--top-p", type=float, default=None, help="nucleus sampling mass (default 1.0)")
    g.add_argument("--num-beams", type=int, default=1, help="beam-search width (default: 1)")
    g.add_argument("--seed", type=int, default=0, help="torch seed set before the first batch (default: 0)")
    g.add_argument("--batch-size", type=int, default=4, help="images per generate call (default: 4)")
    g.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: cuda if available"
    )
    g.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16"), default="auto")
    g.add_argument("--trust-remote-code", action="store_true", help="run code shipped in the model directory")
    g.add_argument("--limit", type=int, default=None, help="caption at most N new images, then stop")
    r = p.add_argument_group("images and manifest")
    r.add_argument(
        "--glob", default=None, help="image pattern relative to IMAGE_DIR (default: all image files)"
    )
    r.add_argument(
        "--skip-bad", action="store_true", help="record unreadable images as errors instead of stopping"
    )
    r.add_argument(
        "--overwrite", action="store_true", help="replace an existing manifest instead of resuming"
    )
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    a = p.add_argument_group("audit (--audit)")
    a.add_argument(
        "--classes-from-folders",
        action="store_true",
        help="the class list is every sub-folder (of the text folder, or of IMAGE_DIR for a manifest), "
        "not only the classes that have captions",
    )
    a.add_argument("--synonyms", default=None, help="synonyms YAML (default: the shipped one)")
    return p


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.audit is not None:
        result = audit_source(
            args.audit,
            class_dir=args.image_dir,
            classes_from_folders=args.classes_from_folders,
            synonyms_file=args.synonyms,
        )
        print(format_audit_table(result))
        t = result["total"]
        print(
            f"\n{t['verdict']} of {t['n']} captions contain a verdict sentence, {t['name_or_synonym']} name their "
            f"class or a synonym, {t['clean']} are clean"
            + (f" ({result['skipped']} error records skipped)" if result["skipped"] else "")
        )
        if args.out:
            atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
            print(f"audit written to {args.out}")
        return 0
    if args.image_dir is None or args.out is None or (args.model is None and args.from_files is None):
        parser.print_usage(sys.stderr)
        print(
            f"{_PROG}: error: IMAGE_DIR, --out and one of --model / --from-files are required (or use --audit)",
            file=sys.stderr,
        )
        return 2
    if args.from_files is not None:
        s = captions_from_files(
            args.image_dir,
            args.from_files,
            args.out,
            glob=args.glob,
            skip_bad=args.skip_bad,
            overwrite=args.overwrite,
        )
        print(f"{s.new} captions from {args.from_files} written to {s.out}" + _errors_note(s))
        return 0
    settings = GenerationSettings.from_args(
        max_new_tokens=args.max_new_tokens,
        do_sample=args.do_sample,
        temperature=args.temperature,
        top_p=args.top_p,
        num_beams=args.num_beams,
        seed=args.seed,
    )
    captioner = Captioner(  # checks the model directory now; loads it only if an image needs a caption
        args.model,
        prompt=args.prompt,
        generation=settings,
        device=args.device,
        dtype=args.dtype,
        trust_remote_code=args.trust_remote_code,
    )
    try:
        s = caption_folder(
            args.image_dir,
            args.out,
            captioner,
            glob=args.glob,
            batch_size=args.batch_size,
            skip_bad=args.skip_bad,
            overwrite=args.overwrite,
            limit=args.limit,
            progress=not args.no_progress,
        )
    except KeyboardInterrupt:
        print(
            f"\n{_PROG}: interrupted; captions so far are saved in {args.out}; {_RESUME_HINT}",
            file=sys.stderr,
        )
        return 130
    print(
        f"{s.new} new captions written to {s.out} ({s.done_before} already there, {s.total} images)"
        + _errors_note(s)
        + (f"; {s.remaining} images left (--limit), {_RESUME_HINT}" if s.remaining else "")
    )
    return 0


def _errors_note(s: CaptionSummary) -> str:
    return f"; {s.errors} images recorded as errors (see the 'error' field)" if s.errors else ""


def main(argv: list[str] | None = None) -> int:
    """Run ``rsmg caption``; see ``rsmg caption --help``.

    Args:
        argv: arguments after ``caption`` (default: ``sys.argv[1:]``).

    Returns:
        0 on success; 1 for bad input (one message naming the file and the fix, no traceback); 2 for a usage
        error; 130 when interrupted (the manifest keeps every finished batch).
    """
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return _run(args, parser)
    except RsmgError as e:
        print(f"{_PROG}: error: {e}", file=sys.stderr)
        return 1
