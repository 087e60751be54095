"""Segmentation checkpoints: the model card (:class:`ModelCard`) and the weights, saved and loaded
without executing code (``torch.load(..., weights_only=True)``).

A checkpoint file is a plain dict: the card's fields as plain data plus ``state_dict``. The card
says everything needed to use the weights correctly: the architecture preset, how images are
normalised (:class:`~etem_helpers.preprocess.Normalization`), the pixel sizes the model handles,
the post-processing chosen on validation data, and where the model came from.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from etem_helpers._version import __version__
from etem_helpers.device import get_device
from etem_helpers.io import replace_atomically, validate_pixel_size
from etem_helpers.preprocess.normalize import Normalization
from etem_helpers.segmentation.model import PRESETS, _preset_kwargs, build_unet
from etem_helpers.segmentation.postprocess import postprocess_settings

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_FORMAT_VERSION",
    "DEFAULT_MODEL_PATH",
    "TRAIN_DEFAULT_COMMAND",
    "CheckpointError",
    "ModelCard",
    "load_checkpoint",
    "model_file",
    "save_checkpoint",
]

#: Identifies files written by :func:`save_checkpoint`.
CHECKPOINT_FORMAT = "etem_helpers.segmentation_checkpoint"
#: Version of the checkpoint layout; bump on incompatible changes.
CHECKPOINT_FORMAT_VERSION = 1


#: The checkpoint shipped with the package (``model="default"``).
DEFAULT_MODEL_PATH = Path(__file__).resolve().parents[1] / "models" / "default.pt"
#: The documented command that trains the shipped model.
TRAIN_DEFAULT_COMMAND = (
    "etem train --config etem_helpers/models/default_config.json "
    "--out etem_helpers/models/default.pt"
)


class CheckpointError(Exception):
    """A segmentation checkpoint is missing, corrupt or incompatible with this package."""


def model_file(model, *, default_path: Path = DEFAULT_MODEL_PATH) -> Path:
    """The checkpoint file a ``model`` argument names: "default" (the shipped one) or a path.

    Raises
    ------
    CheckpointError
        "default" and the shipped checkpoint is not installed (the message says how to train it).
    TypeError
        Neither "default" nor a path.
    """
    if isinstance(model, str) and model == "default":
        if not Path(default_path).is_file():
            raise CheckpointError(
                f"The default segmentation model {default_path} is not installed. Train "
                f"it with `{TRAIN_DEFAULT_COMMAND}` (from the repository root), or pass "
                "model=<path to a .pt checkpoint written by "
                "etem_helpers.segmentation.save_checkpoint>."
            )
        return Path(default_path)
    if isinstance(model, str | os.PathLike):
        return Path(model)
    raise TypeError(
        f"model must be 'default', a checkpoint path or a (network, ModelCard) tuple; got "
        f"{type(model).__name__}."
    )


def _plain(value: Any, name: str) -> Any:
    """Convert metadata to plain Python types (loadable with ``weights_only=True``)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value)
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{name} has a non-string key {key!r}; use string keys.")
            out[key] = _plain(item, f"{name}[{key!r}]")
        return out
    if isinstance(value, list | tuple | np.ndarray):
        return [_plain(item, f"{name}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(
        f"{name} has a value of type {type(value).__name__}; checkpoint metadata must be plain "
        "str/int/float/bool/None, lists or dicts."
    )


@dataclass(frozen=True)
class ModelCard:
    """What a segmentation model is and how to use it: the metadata of a checkpoint.

    Attributes
    ----------
    preset : str
        Architecture name in :data:`etem_helpers.segmentation.PRESETS`.
    normalization : Normalization
        How input images are normalised (applied again before inference).
    pixel_size_nm : float
        Pixel size (nm/px) the model was trained at.
    pixel_size_range_nm : (float, float)
        Pixel sizes (nm/px) the model is documented to handle; others are resampled.
    tile_px : int
        Training tile side in pixels.
    postprocess : dict
        Instance settings chosen on validation data (keys of
        :data:`etem_helpers.segmentation.DEFAULT_POSTPROCESS`); empty: the defaults.
    metrics : dict
        Validation metrics (plain numbers).
    config : dict
        Training configuration, for provenance and for re-creating the data.
    etem_helpers_version, torch_version : str
        Versions that wrote the file (filled in by :func:`save_checkpoint`).
    diameter_range_px : (float, float) or None
        5th and 95th percentile of the training particles' equivalent diameters in pixels,
        as the network saw them (:mod:`etem_helpers.segmentation.scale`): the particle sizes
        it can recognise. None for cards written before it existed (then images outside
        ``pixel_size_range_nm`` are resampled by pixel size alone).
    """

    preset: str
    normalization: Normalization
    pixel_size_nm: float
    pixel_size_range_nm: tuple[float, float]
    tile_px: int
    postprocess: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)
    etem_helpers_version: str = __version__
    torch_version: str = ""
    diameter_range_px: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.diameter_range_px is not None:
            low, high = (float(v) for v in self.diameter_range_px)
            if not 0 < low <= high:
                raise ValueError(f"diameter_range_px={self.diameter_range_px!r} must be (low, "
                                 "high) in pixels with 0 < low <= high, or None.")
            object.__setattr__(self, "diameter_range_px", (low, high))
        _preset_kwargs(self.preset)
        if isinstance(self.normalization, Mapping):
            object.__setattr__(self, "normalization", Normalization.from_dict(self.normalization))
        object.__setattr__(self, "pixel_size_nm",
                           validate_pixel_size(self.pixel_size_nm, argument="pixel_size_nm"))
        low, high = (float(v) for v in self.pixel_size_range_nm)
        if not 0 < low <= high:
            raise ValueError(
                f"pixel_size_range_nm={self.pixel_size_range_nm!r} must be (low, high) with "
                "0 < low <= high."
            )
        object.__setattr__(self, "pixel_size_range_nm", (low, high))
        object.__setattr__(self, "tile_px", int(self.tile_px))
        if self.postprocess:
            postprocess_settings(self.postprocess)  # unknown keys raise here, not at analysis
        for name in ("postprocess", "metrics", "config"):
            object.__setattr__(self, name, _plain(dict(getattr(self, name) or {}), name))

    def replace(self, **changes) -> ModelCard:
        """A copy with some fields changed (validated again), e.g. ``card.replace(postprocess=...)``."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The card as plain data, as stored in the checkpoint file."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["normalization"] = self.normalization.to_dict()
        out["pixel_size_range_nm"] = list(self.pixel_size_range_nm)
        if self.diameter_range_px is not None:
            out["diameter_range_px"] = list(self.diameter_range_px)
        out["architecture"] = _plain(PRESETS[self.preset], "architecture")
        return out

    @classmethod
    def from_dict(cls, meta: Mapping[str, Any]) -> ModelCard:
        """The card from a checkpoint's plain metadata (unknown entries are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in meta.items() if k in names})


def save_checkpoint(
    path: str | os.PathLike, model, card: ModelCard, *, overwrite: bool = False
) -> Path:
    """Save a trained segmentation model with its model card.

    Parameters
    ----------
    path : str or path-like
        Output file (``.pt`` by convention). Parent directories are created.
    model : torch.nn.Module
        A model built by :func:`~etem_helpers.segmentation.build_unet` with ``card.preset``.
    card : ModelCard
        What the model is and how to use it.
    overwrite : bool
        Replace an existing file. Default False raises ``FileExistsError``.

    Returns
    -------
    pathlib.Path
        The written file: a plain dict (``state_dict`` + the card's fields) loadable with
        ``torch.load(..., weights_only=True)``. Written atomically (temporary file + rename).
    """
    import torch

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it.")
    if not isinstance(card, ModelCard):
        raise TypeError(f"card must be a ModelCard, got {type(card).__name__}.")
    state_dict = {key: value.detach().cpu().clone() for key, value in model.state_dict().items()}
    reference = build_unet(card.preset).state_dict()
    mismatched = sorted(
        set(reference) ^ set(state_dict)
        | {k for k in set(reference) & set(state_dict) if reference[k].shape != state_dict[k].shape}
    )
    if mismatched:
        raise ValueError(
            f"The model does not match preset={card.preset!r} ({len(mismatched)} mismatched "
            f"tensors, e.g. {mismatched[:3]}); pass the preset the model was built with."
        )
    card = card.replace(etem_helpers_version=__version__,
                        torch_version=torch.__version__.split("+")[0])
    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_FORMAT_VERSION,
        **card.to_dict(),
        "state_dict": state_dict,
    }
    with replace_atomically(path) as tmp:
        torch.save(checkpoint, tmp)
    return path


def _read_checkpoint_dict(path: Path, device) -> dict:
    """The checkpoint's dict, checked for format and version (CheckpointError otherwise)."""
    import torch

    if not path.is_file():
        raise CheckpointError(
            f"Checkpoint {path} not found. Train a model (etem train) or pass the path of a .pt "
            "file written by etem_helpers.segmentation.save_checkpoint."
        )
    try:
        checkpoint = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # torch raises many types for corrupt or foreign files
        raise CheckpointError(
            f"Could not read {path} as a PyTorch checkpoint ({type(error).__name__}: {error}). "
            "The file may be truncated or not written by save_checkpoint; re-download or retrain."
        ) from error
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} is not an etem_helpers segmentation checkpoint (no format tag "
            f"{CHECKPOINT_FORMAT!r}); save models with etem_helpers.segmentation.save_checkpoint."
        )
    version = checkpoint.get("format_version")
    if not isinstance(version, int) or version > CHECKPOINT_FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {version!r}, newer than this etem_helpers "
            f"supports ({CHECKPOINT_FORMAT_VERSION}); upgrade etem_helpers "
            f"(it was written by version {checkpoint.get('etem_helpers_version')!r})."
        )
    missing = [key for key in ("preset", "state_dict", "pixel_size_nm") if key not in checkpoint]
    if missing:
        raise CheckpointError(f"{path} lacks the entries {missing}; re-save it with save_checkpoint.")
    if checkpoint["preset"] not in PRESETS:
        raise CheckpointError(
            f"{path} uses preset {checkpoint['preset']!r}, unknown to this etem_helpers (known: "
            f"{sorted(PRESETS)}); upgrade etem_helpers or retrain with a known preset."
        )
    return checkpoint


def load_checkpoint(path: str | os.PathLike, *, device="cpu"):
    """Load a model saved by :func:`save_checkpoint`.

    Parameters
    ----------
    path : str or path-like
        Checkpoint file.
    device : str or torch.device
        ``"cpu"``, ``"cuda"``, ``"mps"`` or ``"auto"``; the model is moved there.

    Returns
    -------
    model : torch.nn.Module
        The U-Net in eval mode on ``device``.
    card : ModelCard
        Everything saved besides the weights.

    Raises
    ------
    CheckpointError
        The file is missing, unreadable, not a checkpoint of this package, from a newer format,
        or its weights or card do not fit its preset. The message names the file and what to do.
    """
    path = Path(path)
    device = get_device(device)
    checkpoint = _read_checkpoint_dict(path, device)
    try:
        card = ModelCard.from_dict(checkpoint)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"The model card in {path} is not valid: {error}") from error
    model = build_unet(card.preset)
    try:
        model.load_state_dict(checkpoint["state_dict"], strict=True)
    except (RuntimeError, TypeError, AttributeError) as error:
        raise CheckpointError(
            f"The weights in {path} do not fit preset {card.preset!r} ({error}); the file is "
            "inconsistent: retrain or re-save the model with the right preset."
        ) from error
    model.to(device).eval()
    return model, card
