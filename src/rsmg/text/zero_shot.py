"""Zero-shot scene classification from class texts: class embeddings built from prompt templates.

Cai et al. (arXiv 2412.02531) claim recognition of classes unseen in training; with a text tower this means
scoring an embedding against *class-text* embeddings instead of a trained head. The classifier follows
open_clip's ``build_zero_shot_classifier``: each class name is put into every prompt template (shipped as data
in ``resources/prompt_templates.yaml``, so a number can be reproduced), optional per-class descriptions are
added, every text is encoded and L2-normalised, and the class embedding is the re-normalised mean.

For generalised zero-shot results (seen and unseen classes scored together), :func:`zero_shot_accuracy` gives
the harmonic mean of seen- and unseen-class accuracy — the number that cannot be inflated by doing well on
seen classes only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
import yaml

from rsmg.errors import ConfigError, require_file
from rsmg.text.leakage import class_display_name, normalise_class_name

__all__ = [
    "build_zero_shot_classifier",
    "load_prompt_templates",
    "zero_shot_accuracy",
    "zero_shot_logits",
]

PLACEHOLDER = "{c}"


class _Tower(Protocol):
    """What the zero-shot classifier needs from a text tower (see :mod:`rsmg.text.towers`)."""

    training: bool

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]: ...

    def __call__(self, tokens: dict[str, torch.Tensor]) -> Any: ...

    def train(self, mode: bool = True) -> Any: ...


def load_prompt_templates(name: str | None = None, file: str | Path | None = None) -> list[str]:
    """Read one template set.

    Args:
        name: set name in the file (``None``: the file's ``default``); see
            ``resources/prompt_templates.yaml``.
        file: a YAML file laid out like the shipped one (``None``: the shipped one).

    Returns:
        Templates, each with one ``{c}`` placeholder.

    Raises:
        ConfigError: missing file, unknown set, or a template without ``{c}``.
    """
    if file is None:
        text = (resources.files("rsmg.text") / "resources" / "prompt_templates.yaml").read_text(
            encoding="utf-8"
        )
        source: str | Path = "rsmg/text/resources/prompt_templates.yaml"
    else:
        source = require_file(
            file,
            what="prompt template file not found",
            field="templates_file",
            fix="give a YAML file laid out like rsmg/text/resources/prompt_templates.yaml, or None",
        )
        text = source.read_text(encoding="utf-8")
    data = yaml.safe_load(text) or {}
    sets = data.get("sets") if isinstance(data, dict) else None
    if not isinstance(sets, dict):
        raise ConfigError(
            "prompt template file has no 'sets' mapping",
            file=source,
            field="sets",
            fix="write 'sets: {name: [template, ...]}'",
        )
    key = name if name is not None else str(data.get("default", ""))
    if key not in sets:
        from rsmg.errors import unknown_name_error

        raise unknown_name_error("prompt template set", key, list(sets), field="templates")
    templates = [str(t) for t in sets[key]]
    _check_templates(templates, source=str(source))
    return templates


def _check_templates(templates: Sequence[str], source: str | None = None) -> None:
    bad = [t for t in templates if PLACEHOLDER not in t]
    if not templates or bad:
        raise ConfigError(
            "every prompt template needs a {c} placeholder for the class name",
            file=source,
            field="templates",
            expected="e.g. 'a satellite image of a {c}.'",
            found=bad or "no templates",
            fix="add {c} where the class name goes",
        )


def _format(template: str, name: str) -> str:
    # str.replace, not str.format: a template may contain other braces
    return template.replace(PLACEHOLDER, name)


@torch.no_grad()
def _encode(tower: _Tower, texts: list[str], batch_size: int) -> torch.Tensor:
    chunks = []
    for i in range(0, len(texts), batch_size):
        feats = tower(tower.tokenize(texts[i : i + batch_size]))
        chunks.append(feats.pooled.float())
    return F.normalize(torch.cat(chunks), dim=-1)


def build_zero_shot_classifier(
    tower: _Tower,
    class_names: Sequence[str],
    templates: Sequence[str] | str | None = None,
    descriptions: Mapping[str, Sequence[str]] | None = None,
    *,
    batch_size: int = 64,
    use_display_names: bool = True,
    synonyms_file: str | Path | None = None,
) -> torch.Tensor:
    """Class embeddings ``C×D`` (unit rows) from class names, templates and optional descriptions.

    Args:
        tower: a text tower (``tokenize`` + ``forward`` → features with ``pooled``), e.g.
            ``create_text_tower()``.
        class_names: class names as the dataset spells them; row ``i`` is ``class_names[i]``.
        templates: templates with ``{c}``, or the name of a shipped set, or ``None`` for the default set.
        descriptions: extra texts per class (e.g. FVMGN's class texts or VLM descriptions), keyed by class
            name (exact or normalised spelling); each is encoded and averaged together with the templated
            prompts.
        batch_size: texts per tower call.
        use_display_names: write classes in prose (``"BareLand"`` → ``"bare land"``) inside the templates.
        synonyms_file: where display names come from (``None``: the shipped synonyms file).

    Returns:
        ``C×D`` float tensor on the tower's device, each row L2-normalised; ``D`` is the tower width.

    Raises:
        ConfigError: empty class list, a template without ``{c}``, or descriptions for unknown classes.
    """
    if isinstance(class_names, str) or not class_names:
        raise ConfigError(
            "zero-shot classifier needs class names",
            field="class_names",
            expected="a non-empty list of strings",
            found=repr(class_names),
            fix="pass the dataset's classes",
        )
    if templates is None or isinstance(templates, str):
        templates = load_prompt_templates(templates)
    _check_templates(templates)
    desc: dict[str, Sequence[str]] = {}
    if descriptions:
        by_norm = {normalise_class_name(c): c for c in class_names}
        unknown = [k for k in descriptions if k not in class_names and normalise_class_name(k) not in by_norm]
        if unknown:
            raise ConfigError(
                "descriptions given for classes that are not in class_names",
                field="descriptions",
                expected=list(class_names),
                found=unknown,
                fix="key descriptions by the dataset's class names",
            )
        for k, v in descriptions.items():
            desc[k if k in class_names else by_norm[normalise_class_name(k)]] = (
                [v] if isinstance(v, str) else list(v)
            )
    was_training = tower.training
    tower.train(False)
    try:
        rows = []
        for c in class_names:
            name = class_display_name(c, synonyms_file) if use_display_names else c
            texts = [_format(t, name) for t in templates] + [str(d) for d in desc.get(c, ())]
            emb = _encode(tower, texts, batch_size).mean(dim=0)
            rows.append(F.normalize(emb, dim=-1))
    finally:
        tower.train(was_training)
    return torch.stack(rows)


def zero_shot_logits(
    features: torch.Tensor, classifier: torch.Tensor, logit_scale: float = 100.0
) -> torch.Tensor:
    """Scaled cosine similarity of ``B×D`` features to the ``C×D`` class embeddings (CLIP's scale 100)."""
    return logit_scale * F.normalize(features.float(), dim=-1) @ classifier.t()


def zero_shot_accuracy(seen_acc: float, unseen_acc: float) -> float:
    """Harmonic mean ``H = 2·S·U / (S + U)`` of seen- and unseen-class accuracy (generalised zero-shot).

    Args:
        seen_acc: accuracy on seen classes (any scale, e.g. 0–1 or 0–100; H is on the same scale).
        unseen_acc: accuracy on unseen classes, same scale.

    Returns:
        The harmonic mean; 0 when both are 0.

    Raises:
        ValueError: a negative accuracy.
    """
    if seen_acc < 0 or unseen_acc < 0:
        raise ValueError(f"accuracies must be >= 0, got seen={seen_acc}, unseen={unseen_acc}")
    total = seen_acc + unseen_acc
    return 0.0 if total == 0 else 2.0 * seen_acc * unseen_acc / total
