"""What a model needs to know about the data before it sees a batch.

A :class:`DataSpec` is computed by every datamodule at construction time from the catalog (no array is
read), and linked into the model by the CLI (``data.spec`` → ``model.init_args.spec``). It is also saved in
every checkpoint, so a checkpoint can be checked against the data it is asked to test on.

The sample contract (one dict per sample, for every dataset):

=================  ========================================================================
key                meaning
=================  ========================================================================
``image_<mod>``    float32 tensor ``C×H×W`` per modality (``hsi``, ``lidar``, ``sar``, ``msi``, ``rgb``)
``label``          int64 scalar, index into ``spec.classes``
``text``           optional str: caption; tokenised inside the model, never in the dataset
``domain``         int64 scalar, index into ``spec.domains``
``index``          int64 scalar, position of the sample in its dataset (seeds per-sample randomness)
``meta``           optional dict (file, row/col); dropped before the batch reaches the device
=================  ========================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field

IMAGE_PREFIX = "image_"


def image_key(modality: str) -> str:
    """Return the sample key of a modality (``"lidar"`` → ``"image_lidar"``)."""
    return IMAGE_PREFIX + modality


def module_spec(module: object) -> DataSpec:
    """The :class:`DataSpec` of a task (``module.spec``), typed, with a clear error if it has none."""
    spec = getattr(module, "spec", None)
    if not isinstance(spec, DataSpec):
        raise TypeError(f"{type(module).__name__} has no DataSpec in .spec (found {type(spec).__name__})")
    return spec


@dataclass(frozen=True)
class DataSpec:
    """Shape of the data a model is built for.

    Attributes:
        classes: class names, index = label.
        modalities: modality name → number of channels after band selection / resampling.
        domains: domain names, index = ``sample["domain"]``; the first ``len(source_domains)`` are sources.
        source_domains: the domains seen in training.
        patch_size: spatial size of every ``image_*`` tensor (H = W).
        band_names: modality → band names, in channel order (used to check checkpoints against data).
        has_text: whether samples carry a ``text`` field.
    """

    classes: tuple[str, ...]
    modalities: dict[str, int]
    domains: tuple[str, ...] = ("source",)
    source_domains: tuple[str, ...] = ("source",)
    patch_size: int = 1
    band_names: dict[str, tuple[str, ...]] = field(default_factory=dict)
    has_text: bool = False

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    def to_dict(self) -> dict[str, object]:
        """Plain-python form, for checkpoints and JSON."""
        return {
            "classes": list(self.classes),
            "modalities": dict(self.modalities),
            "domains": list(self.domains),
            "source_domains": list(self.source_domains),
            "patch_size": self.patch_size,
            "band_names": {k: list(v) for k, v in self.band_names.items()},
            "has_text": self.has_text,
        }

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> DataSpec:
        """Inverse of :meth:`to_dict`."""
        bn = d.get("band_names", {}) or {}
        assert isinstance(bn, dict)
        return cls(
            classes=tuple(d["classes"]),  # type: ignore[arg-type]
            modalities=dict(d["modalities"]),  # type: ignore[call-overload]
            domains=tuple(d.get("domains", ("source",))),  # type: ignore[arg-type]
            source_domains=tuple(d.get("source_domains", ("source",))),  # type: ignore[arg-type]
            patch_size=int(d.get("patch_size", 1)),  # type: ignore[call-overload]
            band_names={k: tuple(v) for k, v in bn.items()},
            has_text=bool(d.get("has_text", False)),
        )
