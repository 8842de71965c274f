"""A local vision-language model (VLM) that captions batches of images, loaded offline with transformers.

``transformers`` and ``torch`` are imported only when a model is loaded, so checking a model directory and
recording what identifies it stay fast and work without the ``vlm`` extra.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rsmg.errors import ConfigError, DataError

__all__ = [
    "DEFAULT_PROMPT",
    "WEIGHT_PATTERNS",
    "Captioner",
    "GenerationSettings",
    "check_model_dir",
    "model_info",
]

WEIGHT_PATTERNS = ("*.safetensors", "*.bin")
# The prompt asks for what is visible, not for a class: asking "which scene is this?" is what produces the
# verdict sentences that leak the label into the text branch (see rsmg.text.leakage).
DEFAULT_PROMPT = (
    "Describe this remote sensing image in detail: the objects, the land cover and how they are arranged."
)


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
