"""``rsmg caption``: a caption manifest for an image folder, from a local vision-language model or from text files.

Cai et al. (arXiv 2412.02531) pair every scene image with a paragraph written by a vision-language model (VLM).
To study what such a text branch adds, the captions must be reproducible: which model, which prompt and which
decoding settings produced each one. This module writes them into a JSONL *manifest*, one object per image::

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
backend and the audit stay fast and work without the ``vlm`` extra.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rsmg.data.readers import read_caption_txt, read_image
from rsmg.errors import ConfigError, DataError, RsmgError
from rsmg.io import atomic_write_text

__all__ = [
    "DEFAULT_PROMPT",
    "CaptionSummary",
    "Captioner",
    "GenerationSettings",
    "audit_source",
    "caption_folder",
    "captions_from_files",
    "check_model_dir",
    "find_images",
    "format_audit_table",
    "main",
    "model_info",
    "read_manifest",
    "write_manifest",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")
WEIGHT_PATTERNS = ("*.safetensors", "*.bin")
# The prompt asks for what is visible, not for a class: asking "which scene is this?" is what produces the
# verdict sentences that leak the label into the text branch (see rsmg.text.leakage).
DEFAULT_PROMPT = (
    "Describe this remote sensing image in detail: the objects, the land cover and how they are arranged."
)
_PROG = "rsmg caption"
_RESUME_HINT = "re-run the same command to resume (images already in the manifest are skipped)"


# ------------------------------------------------------------------------------------------------------------
# Settings and summary
# ------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GenerationSettings:
    """Decoding settings, recorded in every manifest record so a caption can be reproduced.

    Attributes:
        max_new_tokens: longest caption, in tokens.
        do_sample: sample instead of greedy / beam search (greedy is deterministic, and the default because a
            dataset's captions should not change between two runs).
        temperature: sampling temperature (used only with ``do_sample``; recorded as ``None`` otherwise, so a
            greedy re-run with another ``--temperature`` is not mistaken for a change of settings).
        top_p: nucleus-sampling mass (only with ``do_sample``, like ``temperature``).
        num_beams: beam-search width (1 = greedy or plain sampling).
        seed: seed of torch's generator, set once before the first batch.
    """

    max_new_tokens: int = 128
    do_sample: bool = False
    temperature: float | None = None
    top_p: float | None = None
    num_beams: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        checks: list[tuple[str, bool, str, object]] = [
            ("--max-new-tokens", self.max_new_tokens >= 1, "an integer >= 1", self.max_new_tokens),
            ("--num-beams", self.num_beams >= 1, "an integer >= 1", self.num_beams),
            (
                "--temperature",
                self.temperature is None or self.temperature > 0,
                "a number > 0",
                self.temperature,
            ),
            ("--top-p", self.top_p is None or 0 < self.top_p <= 1, "a number in (0, 1]", self.top_p),
        ]
        for name, ok, expected, found in checks:
            if not ok:
                raise ConfigError(
                    f"invalid {name}",
                    field=name,
                    expected=expected,
                    found=found,
                    fix=f"pass {name} {expected}",
                )

    @classmethod
    def from_args(
        cls,
        *,
        max_new_tokens: int,
        do_sample: bool,
        temperature: float | None,
        top_p: float | None,
        num_beams: int,
        seed: int,
    ) -> GenerationSettings:
        """Build the settings, keeping ``temperature`` / ``top_p`` only when sampling (they do nothing else)."""
        return cls(
            max_new_tokens=max_new_tokens,
            do_sample=do_sample,
            temperature=(1.0 if temperature is None else temperature) if do_sample else None,
            top_p=(1.0 if top_p is None else top_p) if do_sample else None,
            num_beams=num_beams,
            seed=seed,
        )

    def generate_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``model.generate`` (sampling knobs only when sampling, to avoid warnings)."""
        kw: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "do_sample": self.do_sample,
            "num_beams": self.num_beams,
        }
        if self.do_sample:
            kw["temperature"] = self.temperature
            kw["top_p"] = self.top_p
        return kw


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


# ------------------------------------------------------------------------------------------------------------
# Images and manifests
# ------------------------------------------------------------------------------------------------------------
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


# ------------------------------------------------------------------------------------------------------------
# The model
# ------------------------------------------------------------------------------------------------------------
def check_model_dir(model_dir: str | Path) -> Path:
    """Check that a directory holds a saved model (a config and weights) before importing transformers.

    transformers treats a path that does not exist as a Hub repository id and reports a network or
    "not a valid model identifier" error; weights that were never downloaded (a snapshot with only the
    config) fail deep inside ``from_pretrained``. Both deserve one sentence naming the directory.

    Returns:
        The directory, resolved.

    Raises:
        DataError: not a directory, no ``config.json``, or no ``*.safetensors`` / ``*.bin`` weights.
    """
    p = Path(model_dir).expanduser()
    download = (
        "on a machine with internet, `huggingface-cli download <repo-id> --local-dir DIR` (or "
        "`model.save_pretrained(DIR)` and `processor.save_pretrained(DIR)`), copy DIR here and pass --model DIR"
    )
    if not p.is_dir():
        raise DataError(
            "model directory does not exist" if not p.exists() else "model path is not a directory",
            file=p,
            expected="a local directory with config.json, weights and the processor files",
            found="a file" if p.exists() else "no such directory (rsmg never downloads from the Hub)",
            fix=download,
        )
    if not (p / "config.json").is_file():
        raise DataError(
            "model directory has no config.json",
            file=p,
            expected="config.json (with the weights and processor files beside it)",
            found=sorted(x.name for x in p.iterdir())[:12] or "an empty directory",
            fix=download,
        )
    weights = [w for pat in WEIGHT_PATTERNS for w in p.glob(pat)]
    if not weights:
        raise DataError(
            "model directory has no weights",
            file=p,
            expected="*.safetensors or *.bin weight files",
            found=sorted(x.name for x in p.iterdir())[:12],
            fix="the download is incomplete (only the config was fetched?); " + download,
        )
    return p.resolve()


def model_info(model_dir: str | Path) -> dict[str, Any]:
    """What identifies a model in the manifest: its directory, name, architecture and a fingerprint.

    The fingerprint (SHA-256 of ``config.json`` plus the names and sizes of the weight files) changes when the
    directory holds another model, without hashing gigabytes of weights; resuming compares it.

    Raises:
        DataError: the directory fails :func:`check_model_dir` or its config is not JSON.
    """
    p = check_model_dir(model_dir)
    raw = (p / "config.json").read_bytes()
    try:
        cfg = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise DataError(
            "model config.json is not valid JSON",
            file=p / "config.json",
            found=exc.msg,
            fix="the download is damaged; download the model again",
        ) from exc
    h = hashlib.sha256(raw)
    for w in sorted(w for pat in WEIGHT_PATTERNS for w in p.glob(pat)):
        h.update(f"\n{w.name}:{w.stat().st_size}".encode())
    archs = cfg.get("architectures") or [None]
    return {
        "backend": "transformers",
        "path": str(p),
        "name_or_path": cfg.get("_name_or_path") or p.name,
        "architecture": archs[0],
        "model_type": cfg.get("model_type"),
        "fingerprint": h.hexdigest()[:16],
    }


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "--device cuda but no CUDA device is available",
            field="--device",
            expected="cpu, or cuda on a machine with a GPU",
            found="cuda",
            fix="pass --device cpu (slow for large models), or run on a GPU node",
        )
    return device


def _resolve_dtype(dtype: str, device: str) -> Any:
    import torch

    if dtype == "auto":
        if device == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32  # half precision on CPU is slow and poorly supported
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]


class Captioner:
    """A local vision-language model with its processor and prompt, ready to caption batches of images.

    Args:
        model_dir: local directory written by ``save_pretrained`` (or a Hub snapshot).
        prompt: the instruction; rendered with the processor's chat template when it has one (instruction-tuned
            models answer badly to a bare prompt), else used as is with the processor's image token prepended
            when the prompt lacks it (LLaVA-style processors require one per image).
        generation: decoding settings.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        dtype: ``"auto"`` (bfloat16 on a GPU that has it, else float16; float32 on CPU), ``"float32"``,
            ``"bfloat16"`` or ``"float16"``.
        trust_remote_code: allow a model whose code lives in its directory (runs that code: opt-in).

    Construction only checks the directory (config and weights present) and records what identifies the model;
    :meth:`load` (called by the first :meth:`caption`) imports transformers and reads the weights.

    Raises:
        DataError: the directory is not a complete model (at construction), or transformers cannot load it
            (at :meth:`load`).
        ConfigError: transformers is not installed, or the device is not available (at :meth:`load`).
    """

    def __init__(
        self,
        model_dir: str | Path,
        *,
        prompt: str = DEFAULT_PROMPT,
        generation: GenerationSettings | None = None,
        device: str = "auto",
        dtype: str = "auto",
        trust_remote_code: bool = False,
    ) -> None:
        self.info = model_info(model_dir)
        self.model_dir = Path(self.info["path"])
        self.prompt = prompt
        self.generation = generation or GenerationSettings()
        self._device_arg, self._dtype_arg, self._trust = device, dtype, trust_remote_code
        self.processor: Any = None
        self.model: Any = None

    def identity(self) -> dict[str, Any]:
        """Model, prompt and settings as recorded, known without loading anything (checked before resuming)."""
        return {"model": self.info, "prompt": self.prompt, "generation": asdict(self.generation)}

    def load(self) -> Captioner:
        """Load the processor and the model (once); called by the first :meth:`caption`.

        Loading is separate from construction so that a finished or incompatible manifest is detected
        before minutes are spent reading gigabytes of weights.

        Returns:
            ``self``.
        """
        if self.model is not None:
            return self
        try:
            import torch
            import transformers
        except ImportError as exc:
            raise ConfigError(
                "rsmg caption --model needs transformers",
                found=str(exc),
                fix="pip install 'rsmg[vlm]' (or pip install transformers)",
            ) from exc
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self.device = _resolve_device(self._device_arg)
        self.dtype = _resolve_dtype(self._dtype_arg, self.device)
        self.processor = self._load_processor(transformers, self._trust)
        model = self._load_model(transformers, self._trust).to(self.device).eval()
        self.is_encoder_decoder = bool(getattr(model.config, "is_encoder_decoder", False))
        tok = getattr(self.processor, "tokenizer", None)
        if tok is not None:
            if not self.is_encoder_decoder:
                tok.padding_side = "left"  # decoder-only: new tokens must follow the prompt in every row
            if tok.pad_token is None and tok.eos_token is not None:
                tok.pad_token = tok.eos_token
        self.prompt_format, self.prompt_text = self._render_prompt(self.prompt)
        self.runtime = {
            "device": self.device,
            "dtype": str(self.dtype).removeprefix("torch."),
            "transformers": transformers.__version__,
            "torch": torch.__version__,
        }
        torch.manual_seed(self.generation.seed)
        self.model = model
        return self

    def _load_processor(self, transformers: Any, trust_remote_code: bool) -> Any:
        try:
            processor = transformers.AutoProcessor.from_pretrained(
                self.model_dir, local_files_only=True, trust_remote_code=trust_remote_code
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(
                "cannot load the processor (image processor + tokenizer) of the model",
                file=self.model_dir,
                found=f"{type(exc).__name__}: {str(exc)[:300]}",
                fix="copy the processor files too (preprocessor_config.json / processor_config.json, "
                "tokenizer files), e.g. processor.save_pretrained(DIR) or a full Hub snapshot",
            ) from exc
        if (
            getattr(processor, "image_processor", None) is None
            or getattr(processor, "tokenizer", None) is None
        ):
            raise DataError(
                "the model's processor cannot handle both images and text",
                file=self.model_dir,
                expected="a multimodal processor (image processor + tokenizer)",
                found=type(processor).__name__,
                fix="copy the image processor config (preprocessor_config.json) into the directory, or use a "
                "vision-language model",
            )
        return processor

    def _load_model(self, transformers: Any, trust_remote_code: bool) -> Any:
        """Try the auto classes this transformers has, then the class named in ``config.json``."""
        from packaging.version import Version

        dtype_kw = "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"
        kwargs = {"local_files_only": True, "trust_remote_code": trust_remote_code, dtype_kw: self.dtype}
        candidates = [
            getattr(transformers, name)
            for name in ("AutoModelForImageTextToText", "AutoModelForVision2Seq")
            if hasattr(transformers, name)
        ]
        arch = self.info["architecture"]
        if arch and hasattr(transformers, arch):
            candidates.append(getattr(transformers, arch))
        tried: list[str] = []
        for cls in candidates:
            try:
                return cls.from_pretrained(self.model_dir, **kwargs)
            except ValueError as exc:  # "Unrecognized configuration class": try the next class
                tried.append(f"{cls.__name__}: {str(exc)[:160]}")
            except (OSError, RuntimeError, KeyError) as exc:
                raise DataError(
                    "cannot load the model weights",
                    file=self.model_dir,
                    found=f"{type(exc).__name__}: {str(exc)[:300]}",
                    fix="the weights are damaged or do not match config.json; download the model again",
                ) from exc
        raise DataError(
            "this transformers cannot load the model as an image-text-to-text model",
            file=self.model_dir,
            field="config.json architectures / model_type",
            expected="a vision-language model supported by the installed transformers "
            f"({transformers.__version__})",
            found=f"{arch} ({self.info['model_type']}); tried: {'; '.join(tried) or 'nothing'}",
            fix="upgrade transformers, or pass --trust-remote-code for a model that ships its own code",
        )

    def _render_prompt(self, prompt: str) -> tuple[str, str]:
        """``(format, text)``: the chat-template rendering when there is a template, else the plain prompt."""
        template = getattr(self.processor, "chat_template", None) or getattr(
            getattr(self.processor, "tokenizer", None), "chat_template", None
        )
        if template:
            messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
            text = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            return "chat_template", str(text)
        image_token = getattr(self.processor, "image_token", None)
        if isinstance(image_token, str) and image_token and image_token not in prompt:
            return "plain", f"{image_token}\n{prompt}"
        return "plain", prompt

    def record_base(self) -> dict[str, Any]:
        """The fields every record of this captioner shares (model, prompt, settings, runtime); loads it."""
        self.load()
        return {
            "model": self.info,
            "prompt": self.prompt,
            "prompt_format": self.prompt_format,
            "generation": asdict(self.generation),
            "runtime": self.runtime,
        }

    def caption(self, images: Sequence[Any]) -> list[str]:
        """Caption a batch of RGB PIL images (one generate call), returning stripped texts.

        Raises:
            ConfigError: the GPU ran out of memory (the fix is a smaller ``--batch-size``).
        """
        import torch

        self.load()
        inputs = self.processor(
            images=list(images), text=[self.prompt_text] * len(images), return_tensors="pt", padding=True
        )
        batch = {
            k: (v.to(self.device, dtype=self.dtype) if v.is_floating_point() else v.to(self.device))
            if isinstance(v, torch.Tensor)
            else v
            for k, v in inputs.items()
        }
        try:
            with torch.inference_mode():
                out = self.model.generate(**batch, **self.generation.generate_kwargs())
        except torch.cuda.OutOfMemoryError as exc:
            raise ConfigError(
                "the GPU ran out of memory while generating",
                field="--batch-size",
                found=len(images),
                fix="pass a smaller --batch-size (or --dtype bfloat16 / float16)",
            ) from exc
        if not self.is_encoder_decoder:
            out = out[:, batch["input_ids"].shape[1] :]
        texts = self.processor.batch_decode(out, skip_special_tokens=True)
        return [" ".join(str(t).split()) for t in texts]


# ------------------------------------------------------------------------------------------------------------
# Runs
# ------------------------------------------------------------------------------------------------------------
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


# ------------------------------------------------------------------------------------------------------------
# Audit
# ------------------------------------------------------------------------------------------------------------
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


# ------------------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------------------
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
