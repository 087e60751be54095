"""U-Net particle segmentation: architectures, loss, checkpoints and tiled inference.

The network (segmentation-models-pytorch ``Unet``) takes one normalised grey-level channel and
predicts two logits per pixel:

0. foreground: the pixel belongs to a particle;
1. boundary: the pixel lies in the contact band between two touching particles (see
   :func:`etem_helpers.instances.labels_to_targets`), which lets
   :func:`etem_helpers.instances.split_instances` separate touching particles.

Presets
-------
``"paper"``
    ``smp.Unet("resnet34")`` with the default decoder: the configuration of the reference paper.
    About 24 M parameters; ~0.5 s per 512×512 tile on a 2-core CPU.
``"light"`` (default)
    MobileNetV2 encoder with a slim decoder ``(128, 64, 32, 16, 8)``: about 4 M parameters,
    ~0.12 s per 512×512 tile on a 2-core CPU (``torch.inference_mode``, batch of one), and
    several times cheaper to train on a CPU than ResNet encoders. Chosen by timing candidates
    on 1×1×512×512 and 1×1×1024×1024 inputs: ResNet-18 encoders with depth 4 and slim
    decoders were ~0.2 s per 512² tile, EfficientNet-B0 / -Lite0 encoders about as fast as
    MobileNetV2.
``"tiny"``
    **For tests and smoke runs only**: the stem and first two stages of a ResNet-18 (timm, truncated:
    0.76 M parameters) and a decoder ``(32, 16, 8)``. Too shallow (small receptive field) for
    real micrographs.

All encoders start from random weights unless ``encoder_weights="imagenet"`` is passed to
:func:`build_unet`, which **downloads** the pretrained encoder weights from the internet on first
use (never done in the tests).
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

__all__ = [
    "PRESETS",
    "CheckpointError",
    "build_unet",
    "dice_bce_loss",
    "inference_tile_shape",
    "load_checkpoint",
    "predict_probabilities",
    "save_checkpoint",
]

#: Architectures by name: keyword arguments of ``segmentation_models_pytorch.Unet`` (read-only).
PRESETS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        "paper": MappingProxyType(
            {
                "encoder_name": "resnet34",
                "encoder_depth": 5,
                "decoder_channels": (256, 128, 64, 32, 16),
            }
        ),
        "light": MappingProxyType(
            {
                "encoder_name": "mobilenet_v2",
                "encoder_depth": 5,
                "decoder_channels": (128, 64, 32, 16, 8),
            }
        ),
        "tiny": MappingProxyType(
            {
                "encoder_name": "tu-resnet18",
                "encoder_depth": 3,
                "decoder_channels": (32, 16, 8),
            }
        ),
    }
)

#: Identifies files written by :func:`save_checkpoint`.
CHECKPOINT_FORMAT = "etem_helpers.segmentation_checkpoint"
#: Version of the checkpoint layout; bump on incompatible changes.
CHECKPOINT_FORMAT_VERSION = 1

_IN_CHANNELS = 1
_CLASSES = 2


class CheckpointError(Exception):
    """A segmentation checkpoint is missing, corrupt or incompatible with this package."""


def _preset_kwargs(preset: str) -> dict[str, Any]:
    if preset not in PRESETS:
        raise ValueError(f"preset={preset!r} is not known; choose one of {sorted(PRESETS)}.")
    kwargs = dict(PRESETS[preset])
    kwargs["decoder_channels"] = tuple(kwargs["decoder_channels"])
    return kwargs


def build_unet(preset: str = "light", *, encoder_weights: str | None = None, seed: int | None = None):
    """Build a U-Net with 1 input channel and 2 output logits (foreground, boundary).

    Parameters
    ----------
    preset : {"light", "paper", "tiny"}
        Architecture, see :data:`PRESETS` and the module docstring. ``"tiny"`` is for tests only.
    encoder_weights : {None, "imagenet"}
        None (default) starts from random weights. ``"imagenet"`` downloads pretrained encoder
        weights from the internet on first use (cached by PyTorch / Hugging Face); the RGB first
        convolution is folded to one channel by segmentation-models-pytorch.
    seed : int or None
        If given, the random initialisation uses this seed without touching the global torch
        random state (reproducible weights). None uses the global torch generator.

    Returns
    -------
    torch.nn.Module
        A ``segmentation_models_pytorch.Unet``; input (B, 1, H, W) with H, W multiples of
        ``2**encoder_depth``, output logits (B, 2, H, W).
    """
    import segmentation_models_pytorch as smp
    import torch

    kwargs = _preset_kwargs(preset)
    if encoder_weights not in (None, "imagenet"):
        raise ValueError(
            f"encoder_weights={encoder_weights!r} is not supported; use None (random) or 'imagenet'."
        )

    def make():
        return smp.Unet(
            **kwargs, encoder_weights=encoder_weights, in_channels=_IN_CHANNELS, classes=_CLASSES
        )

    if seed is None:
        return make()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return make()


def _size_multiple(model) -> int:
    """Side multiple (pixels) the model needs: 2**encoder_depth for smp models, else 32."""
    encoder = getattr(model, "encoder", None)
    stride = getattr(encoder, "output_stride", None)
    if isinstance(stride, int) and stride > 0:
        return stride
    return 32


def dice_bce_loss(
    logits,
    targets,
    *,
    alpha: float = 0.5,
    boundary_weight: float = 1.0,
    boundary_pos_weight: float = 5.0,
    smooth: float = 1.0,
):
    r"""Segmentation loss: Dice + BCE on the foreground, weighted BCE on the boundary.

    .. math::

        L = \alpha\,\mathrm{Dice}(p_0, y_0) + (1 - \alpha)\,\mathrm{BCE}(z_0, y_0)
            + w_b\,\mathrm{BCE}_{w_+}(z_1, y_1)

    with :math:`z` the logits, :math:`p = \sigma(z)`, and the soft Dice loss
    :math:`1 - (2\sum p y + s) / (\sum p + \sum y + s)` summed over the whole batch (stable on
    tiles without particles). Contact-boundary pixels are rare (a few % of the foreground), so
    their positive class is up-weighted by :math:`w_+` (``boundary_pos_weight``).

    Parameters
    ----------
    logits : torch.Tensor, shape (B, 2, H, W)
        Raw network outputs (foreground, boundary).
    targets : torch.Tensor, shape (B, 2, H, W) or (B, 1, H, W)
        0/1 targets from :func:`etem_helpers.instances.labels_to_targets`. With one channel
        (foreground only) the boundary term is skipped.
    alpha : float
        Weight of the Dice term on the foreground, in [0, 1]; ``1 - alpha`` weighs the BCE.
    boundary_weight : float
        Weight :math:`w_b` of the boundary BCE term (0 disables it).
    boundary_pos_weight : float
        Weight :math:`w_+` of positive (boundary) pixels inside the boundary BCE.
    smooth : float
        Additive smoothing :math:`s` of the Dice ratio, in pixels.

    Returns
    -------
    torch.Tensor
        Scalar loss (differentiable).
    """
    import torch
    import torch.nn.functional as F

    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha={alpha} must be in [0, 1].")
    if logits.ndim != 4 or targets.ndim != 4:
        raise ValueError(
            f"logits and targets must be (B, C, H, W); got {tuple(logits.shape)} and "
            f"{tuple(targets.shape)}."
        )
    if logits.shape[0] != targets.shape[0] or logits.shape[2:] != targets.shape[2:]:
        raise ValueError(
            f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} differ in batch or "
            "spatial size."
        )
    targets = targets.to(dtype=logits.dtype)
    z_fg, y_fg = logits[:, 0], targets[:, 0]
    p_fg = torch.sigmoid(z_fg)
    intersection = (p_fg * y_fg).sum()
    dice = 1.0 - (2.0 * intersection + smooth) / (p_fg.sum() + y_fg.sum() + smooth)
    bce = F.binary_cross_entropy_with_logits(z_fg, y_fg)
    loss = alpha * dice + (1.0 - alpha) * bce
    if boundary_weight and targets.shape[1] > 1 and logits.shape[1] > 1:
        pos_weight = torch.tensor(boundary_pos_weight, dtype=logits.dtype, device=logits.device)
        boundary_bce = F.binary_cross_entropy_with_logits(
            logits[:, 1], targets[:, 1], pos_weight=pos_weight
        )
        loss = loss + boundary_weight * boundary_bce
    return loss


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------


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


def save_checkpoint(
    path: str | os.PathLike,
    model,
    *,
    preset: str,
    normalization: Mapping[str, Any],
    pixel_size_nm: float,
    pixel_size_range_nm: tuple[float, float],
    tile_px: int,
    metrics: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
    postprocess: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Save a trained segmentation model with the metadata needed to use it correctly.

    Parameters
    ----------
    path : str or path-like
        Output file (``.pt`` by convention). Parent directories are created.
    model : torch.nn.Module
        A model built by :func:`build_unet` with the same ``preset``.
    preset : str
        Name in :data:`PRESETS` the model was built with.
    normalization : dict
        How input images were normalised (e.g. ``{"method": "percentile", "low_percentile": 0.5,
        "high_percentile": 99.5}``); applied again before inference.
    pixel_size_nm : float
        Pixel size (nm/px) the model was trained at; images are resampled to it.
    pixel_size_range_nm : (float, float)
        Range of pixel sizes (nm/px) the model is documented to handle.
    tile_px : int
        Training tile side (pixels); the default inference tile.
    metrics : dict, optional
        Validation metrics (plain numbers).
    config : dict, optional
        Training configuration (plain types), for provenance.
    postprocess : dict, optional
        Instance settings chosen for this model on validation data (keys of
        :data:`etem_helpers.postprocess.DEFAULT_POSTPROCESS`); :func:`etem_helpers.analyze`
        uses them unless told otherwise. None: the defaults.
    overwrite : bool
        Replace an existing file. Default False raises ``FileExistsError``.

    Returns
    -------
    pathlib.Path
        The written file. The file is a plain dict (``state_dict`` + metadata + package
        version) loadable with ``torch.load(..., weights_only=True)``.
    """
    import torch

    from ._version import __version__

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it.")
    _preset_kwargs(preset)
    if not (isinstance(pixel_size_nm, int | float | np.number) and pixel_size_nm > 0):
        raise ValueError(f"pixel_size_nm={pixel_size_nm!r} must be a positive number (nm/px).")
    low, high = (float(v) for v in pixel_size_range_nm)
    if not 0 < low <= high:
        raise ValueError(
            f"pixel_size_range_nm={pixel_size_range_nm!r} must be (low, high) with 0 < low <= high."
        )
    if postprocess:
        from .postprocess import postprocess_settings

        postprocess_settings(postprocess)  # unknown keys raise here, not at analysis time
    state_dict = {key: value.detach().cpu().clone() for key, value in model.state_dict().items()}
    reference = build_unet(preset).state_dict()
    mismatched = sorted(
        set(reference) ^ set(state_dict)
        | {k for k in set(reference) & set(state_dict) if reference[k].shape != state_dict[k].shape}
    )
    if mismatched:
        raise ValueError(
            f"The model does not match preset={preset!r} ({len(mismatched)} mismatched tensors, "
            f"e.g. {mismatched[:3]}); pass the preset the model was built with."
        )
    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "etem_helpers_version": __version__,
        "torch_version": torch.__version__.split("+")[0],
        "preset": preset,
        "architecture": _plain(PRESETS[preset], "architecture"),
        "normalization": _plain(dict(normalization), "normalization"),
        "pixel_size_nm": float(pixel_size_nm),
        "pixel_size_range_nm": [low, high],
        "tile_px": int(tile_px),
        "metrics": _plain(dict(metrics or {}), "metrics"),
        "config": _plain(dict(config or {}), "config"),
        "postprocess": _plain(dict(postprocess or {}), "postprocess"),
        "state_dict": state_dict,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write to a temporary file first so that an interrupted save never leaves a corrupt file.
    fd, tmp_name = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(checkpoint, tmp_name)
        os.replace(tmp_name, path)
    finally:
        if os.path.exists(tmp_name):
            os.remove(tmp_name)
    return path


def _resolve_device(device):
    """torch.device from "auto"/"cpu"/"cuda"/torch.device (uses etem_helpers.device if present)."""
    import torch

    try:
        from .device import get_device
    except ImportError:  # pragma: no cover - fallback while the device module is absent
        get_device = None
    if get_device is not None:
        return get_device(device)
    if isinstance(device, torch.device):
        return device
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(str(device))


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
    meta : dict
        Everything saved besides the weights: ``preset``, ``normalization``,
        ``pixel_size_nm``, ``pixel_size_range_nm``, ``tile_px``, ``metrics``, ``config``,
        ``etem_helpers_version``, ...

    Raises
    ------
    CheckpointError
        The file is missing, unreadable, not a checkpoint of this package, from a newer format,
        or its weights do not fit its preset. The message names the file and what to do.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"Checkpoint {path} not found. Train a model (python -m etem_helpers.train) or pass "
            "the path of a .pt file written by etem_helpers.segment.save_checkpoint."
        )
    device = _resolve_device(device)
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
            f"{CHECKPOINT_FORMAT!r}); save models with etem_helpers.segment.save_checkpoint."
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
    preset = checkpoint["preset"]
    if preset not in PRESETS:
        raise CheckpointError(
            f"{path} uses preset {preset!r}, unknown to this etem_helpers (known: "
            f"{sorted(PRESETS)}); upgrade etem_helpers or retrain with a known preset."
        )
    model = build_unet(preset)
    try:
        model.load_state_dict(checkpoint["state_dict"], strict=True)
    except (RuntimeError, TypeError, AttributeError) as error:
        raise CheckpointError(
            f"The weights in {path} do not fit preset {preset!r} ({error}); the file is "
            "inconsistent: retrain or re-save the model with the right preset."
        ) from error
    model.to(device).eval()
    meta = {key: value for key, value in checkpoint.items() if key != "state_dict"}
    return model, meta


# --------------------------------------------------------------------------------------------
# Tiled inference
# --------------------------------------------------------------------------------------------


def _round_up(value: int, multiple: int) -> int:
    return int(math.ceil(value / multiple) * multiple)


def _iter_tile_batches(
    image: np.ndarray, tile_shape: tuple[int, int], overlap_px: int, batch_size: int
) -> Iterator[tuple[np.ndarray, list[tuple[int, int]]]]:
    """Yield (batch of tiles (b, th, tw), their top-left positions) without holding all tiles.

    Tiles and positions come from :func:`etem_helpers.data.iter_tiles` (the package's one
    tiling implementation).
    """
    from .data import iter_tiles

    tiles: list[np.ndarray] = []
    positions: list[tuple[int, int]] = []
    for tile, position in iter_tiles(image, tile_px=tile_shape, overlap_px=overlap_px):
        tiles.append(tile)
        positions.append(position)
        if len(tiles) == batch_size:
            yield np.stack(tiles), positions
            tiles, positions = [], []
    if tiles:
        yield np.stack(tiles), positions


def _forward_probabilities(model, batch, *, tta: bool):
    """Sigmoid probabilities of a (b, 1, h, w) batch, averaged over 4 flips with tta."""
    import torch

    if not tta:
        return torch.sigmoid(model(batch))
    total = None
    for dims in ((), (-1,), (-2,), (-2, -1)):
        flipped = torch.flip(batch, dims) if dims else batch
        prob = torch.sigmoid(model(flipped))
        prob = torch.flip(prob, dims) if dims else prob
        total = prob if total is None else total + prob
    return total / 4.0


def inference_tile_shape(image_shape, *, tile_px: int, multiple: int = 32) -> tuple[int, int]:
    """Tile (height, width) used by :func:`predict_probabilities` for an image.

    Parameters
    ----------
    image_shape : sequence of int
        (H, W) of the image in pixels.
    tile_px : int
        Requested tile side in pixels (a multiple of ``multiple``).
    multiple : int
        Side multiple the network needs, in pixels (``2**encoder_depth``).

    Returns
    -------
    (int, int)
        ``min(tile_px, L rounded up to multiple)`` per axis: an axis shorter than a tile
        gets one tile just large enough (reflect-padded) instead of a full tile.
    """
    height, width = (int(n) for n in tuple(image_shape)[-2:])
    return (
        min(int(tile_px), _round_up(height, multiple)),
        min(int(tile_px), _round_up(width, multiple)),
    )


def predict_probabilities(
    model,
    image: np.ndarray,
    *,
    tile_px: int = 512,
    overlap_px: int = 64,
    batch_size: int | None = None,
    device="cpu",
    tta: bool = False,
    progress: bool = False,
    precision: str = "float32",
) -> np.ndarray:
    """Per-pixel foreground and boundary probabilities of a normalised image of any size.

    The image is cut into overlapping tiles generated on the fly (at most ``batch_size`` tiles
    in memory) by :func:`etem_helpers.data.iter_tiles`, each tile is run through the network,
    and the sigmoid outputs are blended with a raised-cosine window into the preallocated
    arrays of a :class:`etem_helpers.data.TileStitcher`, so memory stays bounded for huge
    images (about 12 bytes per pixel besides the input).

    Parameters
    ----------
    model : torch.nn.Module
        Network from :func:`build_unet` / :func:`load_checkpoint` (2 output logits). It is put
        in eval mode and moved to ``device`` for the call; its train/eval mode is restored.
    image : ndarray, shape (H, W)
        Normalised 2-D image (as at training, e.g. percentile-normalised to [0, 1]), any size,
        at the model's pixel size.
    tile_px : int
        Tile side in pixels; a multiple of the network's size multiple (32 for depth-5 U-Nets).
        An axis shorter than a tile gets one tile of its length rounded up to that multiple
        (reflect-padded), see :func:`inference_tile_shape`. Tiles per axis:
        ``ceil((L - overlap_px) / (tile_px - overlap_px))``; e.g. a 1024-px side needs 3
        tiles of 512 but 2 tiles of 544 (with 64 px overlap).
    overlap_px : int
        Minimum overlap of neighbouring tiles in pixels (0 <= overlap_px < tile_px); the
        blending ramps over this width. A few tens of pixels hides tile-edge artefacts.
    batch_size : int or None
        Tiles per forward pass. None: 1 on the CPU (measured fastest there: a batch of four
        512×512 tiles took ~2× longer per tile than single tiles on a 2-core CPU) and 4 on
        GPUs.
    device : str or torch.device
        ``"cpu"``, ``"cuda"``, ``"mps"`` or ``"auto"``.
    tta : bool
        Test-time augmentation: average over the 4 horizontal/vertical flips (4× slower).
    progress : bool
        Show a progress bar over the tiles (tqdm).
    precision : {"float32", "bfloat16", "auto"}
        Number format of the network's computation. ``"bfloat16"`` runs it under
        :func:`torch.autocast` (channels-last memory layout on the CPU): about 2.5× faster on
        CPUs with native bfloat16 (AVX-512 BF16, AMX), probabilities within about 0.02 of
        float32. ``"auto"``: see :func:`etem_helpers.device.inference_precision`.

    Returns
    -------
    ndarray of float32, shape (2, H, W)
        Probabilities in [0, 1]: channel 0 foreground, channel 1 contact boundary.
        Deterministic for the same input, model, device and precision.
    """
    import torch

    from .data import TileStitcher, tile_positions

    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(
            f"`image` must be a 2-D array (H, W); got shape {image.shape}. Pass one grey-level "
            "micrograph (convert RGB to grey first)."
        )
    if image.size == 0:
        raise ValueError("`image` is empty.")
    if not np.issubdtype(image.dtype, np.number) or np.iscomplexobj(image):
        raise TypeError(f"`image` must be real-valued; got dtype {image.dtype}.")
    if not np.all(np.isfinite(image)):
        raise ValueError("`image` contains NaN or inf; fill or mask them before segmentation.")
    multiple = _size_multiple(model)
    if int(tile_px) != tile_px or tile_px < multiple or tile_px % multiple:
        raise ValueError(
            f"tile_px={tile_px} must be a positive multiple of {multiple} (the U-Net downsamples "
            f"by {multiple}); e.g. 256, 512 or 1024."
        )
    if int(overlap_px) != overlap_px or not 0 <= overlap_px < tile_px:
        raise ValueError(f"overlap_px={overlap_px} must be an integer in [0, tile_px={tile_px}).")
    if batch_size is not None and (int(batch_size) != batch_size or batch_size < 1):
        raise ValueError(f"batch_size={batch_size} must be a positive integer or None.")

    tile_shape = inference_tile_shape(image.shape, tile_px=int(tile_px), multiple=multiple)
    # An axis with a single (shrunk) tile has no overlap, so the clamp changes nothing there.
    overlap = min(int(overlap_px), min(tile_shape) - 1)
    work = image.astype(np.float32, copy=False)
    stitcher = TileStitcher(work.shape, tile_px=tile_shape, overlap_px=overlap, n_channels=_CLASSES)
    n_tiles = len(tile_positions(work.shape, tile_px=tile_shape, overlap_px=overlap))
    torch_device = _resolve_device(device)
    if batch_size is None:
        batch_size = 1 if torch_device.type == "cpu" else 4
    from .device import inference_precision

    precision = inference_precision(precision, torch_device)
    batches = _iter_tile_batches(work, tile_shape, overlap, int(batch_size))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_tiles, desc="tiles", unit="tile")
    was_training = model.training
    model.to(torch_device).eval()
    reduced = precision == "bfloat16"
    layout = torch.channels_last if reduced and torch_device.type == "cpu" else None
    if layout is not None:
        model.to(memory_format=layout)  # oneDNN's fast bfloat16 convolutions want NHWC
    autocast = (
        torch.autocast(device_type=torch_device.type, dtype=torch.bfloat16)
        if reduced
        else contextlib.nullcontext()
    )
    try:
        with torch.inference_mode(), autocast:
            for tiles, positions in batches:
                batch = torch.from_numpy(np.ascontiguousarray(tiles[:, None])).to(torch_device)
                if layout is not None:
                    batch = batch.contiguous(memory_format=layout)
                probs = _forward_probabilities(model, batch, tta=tta).float().cpu().numpy()
                for prob, position in zip(probs, positions, strict=True):
                    stitcher.add(prob[:_CLASSES], position)
                if bar is not None:
                    bar.update(len(positions))
    finally:
        if layout is not None:
            model.to(memory_format=torch.contiguous_format)
        model.train(was_training)
        if bar is not None:
            bar.close()
    return stitcher.result()
