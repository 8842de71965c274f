"""Shared and proprietary class texts (FVMGN, Zhang et al. AAAI-26, component 3), shipped as data.

FVMGN describes every class twice: a *shared* text, common to all modalities (what the class is), and a
*proprietary* text per vision modality (what the class looks like to that sensor: spectral shape, red edge
and water absorption in HSI; height, roughness and returns in LiDAR; backscatter and speckle in SAR; ...).
Both are encoded by a transformer text encoder and aligned with image features by MSFFA
(:mod:`rsmg.models.alignment`).

The texts live in ``rsmg/text/resources/class_texts_<class_set>.yaml`` — one file per class set (the
cross-scene ``shared`` set and each scene's native classes) — so a reviewer can read and edit them without
code, and a result can be reproduced with the texts that produced it (open_clip's lesson: ship prompts as
data). Each file has ``templates`` (``{class}``, ``{modality}``, ``{description}``), the modalities' prose
names, and per class a ``shared`` description plus one description per modality.

Scene datasets (RSSCN7, AID, UC Merced) are one modality (RGB) but several *domains*: their "proprietary"
texts are per dataset (what a class looks like at that dataset's resolution, sensor and region). A file may
therefore also carry a top-level ``domains`` mapping (dataset → prose name), a ``templates.domain`` template
(``{class}``, ``{domain}``, ``{description}``), and per class a ``domains`` mapping (dataset → description);
:func:`load_class_texts` renders them when asked for ``domains`` (``docs/decisions.md``, "per-domain class
texts").

Class names are matched exactly first, then after normalisation (case, spaces, ``_`` and ``-``), so a spec
saying ``"apple trees"`` finds ``Apple trees``. Anything missing is a :class:`~rsmg.errors.DataError` naming
the file, the class or modality, and the fix.
"""

from __future__ import annotations

import re
import weakref
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from rsmg.errors import DataError

RESOURCE_PREFIX = "class_texts_"


@dataclass(frozen=True)
class ClassTexts:
    """Rendered class texts, in the order of ``classes`` and ``modalities``.

    Attributes:
        classes: class names as asked for (the spec's order).
        modalities: vision modalities as asked for.
        shared: class → shared text.
        proprietary: ``(modality, class)`` → proprietary text.
        source: the YAML file the texts came from.
        domains: domains (datasets) as asked for; empty unless asked.
        domain: ``(domain, class)`` → per-domain text.
        display: class → the name the texts use for it (the file's ``display``), e.g. for zero-shot prompts.
    """

    classes: tuple[str, ...]
    modalities: tuple[str, ...]
    shared: dict[str, str]
    proprietary: dict[tuple[str, str], str]
    source: str = ""
    domains: tuple[str, ...] = ()
    domain: dict[tuple[str, str], str] = field(default_factory=dict)
    display: dict[str, str] = field(default_factory=dict)

    def shared_list(self) -> list[str]:
        """Shared texts in class order."""
        return [self.shared[c] for c in self.classes]

    def proprietary_list(self, modality: str) -> list[str]:
        """Proprietary texts of one modality in class order."""
        return [self.proprietary[(modality, c)] for c in self.classes]

    def domain_list(self, domain: str) -> list[str]:
        """Per-domain texts of one domain in class order."""
        return [self.domain[(domain, c)] for c in self.classes]


@dataclass
class ClassTextEmbeddings:
    """Pooled text-tower features of class texts.

    Attributes:
        shared: ``K×D`` (K classes, D tower width).
        proprietary: modality → ``K×D``.
        domain: domain → ``K×D`` (per-domain texts, when loaded).
    """

    shared: torch.Tensor
    proprietary: dict[str, torch.Tensor] = field(default_factory=dict)
    domain: dict[str, torch.Tensor] = field(default_factory=dict)


def _norm_name(s: str) -> str:
    return re.sub(r"[\s_\-]+", " ", s.strip()).casefold()


def _resource_files() -> dict[str, Path]:
    root = resources.files("rsmg.text") / "resources"
    out: dict[str, Path] = {}
    for entry in root.iterdir():
        name = entry.name
        if name.startswith(RESOURCE_PREFIX) and name.endswith(".yaml"):
            out[name[len(RESOURCE_PREFIX) : -len(".yaml")]] = Path(str(entry))
    return out


@cache
def _read_yaml(path: str) -> dict[str, Any]:
    import yaml

    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    if not isinstance(data, dict) or not isinstance(data.get("classes"), dict):
        raise DataError(
            "class-text file has no 'classes' mapping",
            file=path,
            field="classes",
            expected="classes: {<class name>: {shared: ..., <modality>: ...}}",
            found=type(data).__name__ if not isinstance(data, dict) else sorted(data),
            fix="follow the layout of class_texts_shared.yaml",
        )
    return data


def list_class_sets() -> list[str]:
    """Names (and aliases) of every shipped class set."""
    names: list[str] = []
    for key, path in sorted(_resource_files().items()):
        names.append(key)
        names.extend(_read_yaml(str(path)).get("aliases", []) or [])
    return names


def class_texts_file(class_set: str) -> Path:
    """Path of the YAML file of a class set (or of a file whose ``aliases`` lists it).

    Args:
        class_set: e.g. ``"shared"``, ``"trento"``, or a path to a YAML file of the same layout.

    Raises:
        ConfigError: unknown class set (the error lists the valid names).
    """
    if class_set.endswith((".yaml", ".yml")) and Path(class_set).is_file():
        return Path(class_set)
    files = _resource_files()
    if class_set in files:
        return files[class_set]
    for path in files.values():
        if class_set in (_read_yaml(str(path)).get("aliases", []) or []):
            return path
    from rsmg.errors import unknown_name_error

    raise unknown_name_error("class-text set", class_set, list_class_sets(), field="class_set")


def load_class_texts(
    class_set: str,
    classes: list[str] | tuple[str, ...],
    modalities: list[str] | tuple[str, ...],
    domains: list[str] | tuple[str, ...] = (),
) -> ClassTexts:
    """Load and render the shared and proprietary texts of ``classes`` for ``modalities`` (and ``domains``).

    Args:
        class_set: class-set name (``"shared"``, a scene name) or a YAML path with the same layout.
        classes: class names in label order (``DataSpec.classes``).
        modalities: vision modalities (``DataSpec.modalities`` keys); may be empty.
        domains: datasets whose per-domain texts are wanted (the ``domains`` entries of each class).

    Returns:
        :class:`ClassTexts` with every class × modality (and class × domain) filled.

    Raises:
        DataError: a class, a modality or a domain missing from the file (the message names the file and
            the fix).
        ConfigError: unknown class set.
    """
    path = class_texts_file(class_set)
    data = _read_yaml(str(path))
    table: dict[str, dict[str, Any]] = data["classes"]
    by_norm = {_norm_name(k): k for k in table}
    templates = data.get("templates", {}) or {}
    t_shared = str(templates.get("shared", "{description}"))
    t_prop = str(templates.get("proprietary", "a {modality} image of {class}: {description}"))
    mod_names: dict[str, str] = data.get("modalities", {}) or {}
    t_domain = str(templates.get("domain", "a {domain} image of {class}: {description}"))
    dom_names: dict[str, str] = data.get("domains", {}) or {}

    shared: dict[str, str] = {}
    displays: dict[str, str] = {}
    prop: dict[tuple[str, str], str] = {}
    per_domain: dict[tuple[str, str], str] = {}
    for c in classes:
        key = c if c in table else by_norm.get(_norm_name(c))
        if key is None:
            raise DataError(
                f"class {c!r} has no texts in class set {class_set!r}",
                file=path,
                field=f"classes.{c}",
                expected=f"one of {sorted(table)}",
                found=repr(c),
                fix=f"add an entry '{c}:' with a shared and one text per modality to {path.name}, "
                "or choose the class_set whose classes the data uses",
            )
        entry = table[key] or {}
        display = displays[c] = str(entry.get("display") or key.replace("_", " ")).lower()
        if not entry.get("shared"):
            raise DataError(
                f"class {key!r} has no shared text",
                file=path,
                field=f"classes.{key}.shared",
                expected="a sensor-independent description",
                found="nothing",
                fix=f"add 'shared: ...' under '{key}:' in {path.name}",
            )
        shared[c] = t_shared.format(**{"class": display, "description": str(entry["shared"]).strip()})
        for m in modalities:
            if not entry.get(m):
                raise DataError(
                    f"class {key!r} has no proprietary text for modality {m!r}",
                    file=path,
                    field=f"classes.{key}.{m}",
                    expected=f"a description of how {key!r} appears in {m}",
                    found=f"keys {sorted(entry)}",
                    fix=f"add '{m}: ...' under '{key}:' in {path.name}",
                )
            prop[(m, c)] = t_prop.format(
                **{"class": display, "modality": mod_names.get(m, m), "description": str(entry[m]).strip()}
            )
        by_domain = entry.get("domains") or {}
        for d in domains:
            if not isinstance(by_domain, dict) or not by_domain.get(d):
                raise DataError(
                    f"class {key!r} has no per-domain text for domain {d!r}",
                    file=path,
                    field=f"classes.{key}.domains.{d}",
                    expected=f"a description of how {key!r} looks in the {d!r} images",
                    found=f"domains {sorted(by_domain) if isinstance(by_domain, dict) else by_domain!r}",
                    fix=f"add '{d}: ...' under '{key}: domains:' in {path.name}, or use texts: shared",
                )
            per_domain[(d, c)] = t_domain.format(
                **{"class": display, "domain": dom_names.get(d, d), "description": str(by_domain[d]).strip()}
            )
    return ClassTexts(
        classes=tuple(classes),
        modalities=tuple(modalities),
        shared=shared,
        proprietary=prop,
        source=str(path),
        domains=tuple(domains),
        domain=per_domain,
        display=displays,
    )


# Frozen towers give constant class embeddings: cache them per tower (weakly, so a dropped tower frees them).
_CACHE: weakref.WeakKeyDictionary[torch.nn.Module, dict[tuple[str, ...], torch.Tensor]] = (
    weakref.WeakKeyDictionary()
)


def _encode(tower: Any, texts: list[str]) -> torch.Tensor:
    frozen = bool(getattr(tower, "frozen", False))
    key = tuple(texts)
    if frozen:
        hit = _CACHE.setdefault(tower, {}).get(key)
        if hit is not None:
            return hit
    pooled: torch.Tensor = tower(tower.tokenize(texts)).pooled
    if frozen:
        pooled = pooled.detach()
        _CACHE[tower][key] = pooled
    return pooled


def encode_class_texts(tower: Any, texts: ClassTexts) -> ClassTextEmbeddings:
    """Encode class texts with a :class:`~rsmg.text.towers.TextTower` (pooled features).

    All texts (shared, every modality's proprietary ones and every domain's) go through the tower in one batch.
    With a frozen tower the result is constant and cached per tower; with a trainable tower it is recomputed
    (and carries gradients) at every call.

    Args:
        tower: the text tower.
        texts: output of :func:`load_class_texts`.

    Returns:
        :class:`ClassTextEmbeddings` (``K×width`` tensors on the tower's device).
    """
    k = len(texts.classes)
    flat = texts.shared_list() + [t for m in texts.modalities for t in texts.proprietary_list(m)]
    flat += [t for d in texts.domains for t in texts.domain_list(d)]
    emb = _encode(tower, flat)
    prop = {m: emb[k * (i + 1) : k * (i + 2)] for i, m in enumerate(texts.modalities)}
    first = 1 + len(texts.modalities)  # blocks of K rows: shared, each modality, then each domain
    dom = {d: emb[k * (first + j) : k * (first + j + 1)] for j, d in enumerate(texts.domains)}
    return ClassTextEmbeddings(shared=emb[:k], proprietary=prop, domain=dom)
