"""Captions as a text source: reproducible caption manifests from a local VLM or from text files, and their audit.

* :mod:`~rsmg.text.captions.manifest` — the resumable JSONL manifest (one record per image, atomic writes);
* :mod:`~rsmg.text.captions.vlm` — the offline vision-language model that writes captions;
* :mod:`~rsmg.text.captions.runs` — a manifest for a whole folder, from the model or from ``.txt`` files;
* :mod:`~rsmg.text.captions.audit` — per-class label-leakage counts of a manifest or a text folder.

The command line is ``rsmg caption`` (:mod:`rsmg.cli.caption`). Nothing here imports torch or transformers
until a model is loaded.
"""

from rsmg.text.captions.audit import audit_source, format_audit_table
from rsmg.text.captions.manifest import (
    IMAGE_EXTENSIONS,
    CaptionSummary,
    find_images,
    read_manifest,
    write_manifest,
)
from rsmg.text.captions.runs import caption_folder, captions_from_files
from rsmg.text.captions.vlm import (
    DEFAULT_PROMPT,
    WEIGHT_PATTERNS,
    Captioner,
    GenerationSettings,
    check_model_dir,
    model_info,
)

__all__ = [
    "DEFAULT_PROMPT",
    "IMAGE_EXTENSIONS",
    "WEIGHT_PATTERNS",
    "CaptionSummary",
    "Captioner",
    "GenerationSettings",
    "audit_source",
    "caption_folder",
    "captions_from_files",
    "check_model_dir",
    "find_images",
    "format_audit_table",
    "model_info",
    "read_manifest",
    "write_manifest",
]
