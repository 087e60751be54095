"""One-call particle analysis of a micrograph: :func:`analyze`.

``analyze(image_or_path, pixel_size_nm)`` runs the whole pipeline of the course with a trained
U-Net (by default the model shipped with the package) and returns an
:class:`~etem_helpers.result.AnalysisResult`:

1. **read** a file with :func:`etem_helpers.io.read_micrograph` (calibration from the file, an
   explicit ``pixel_size_nm`` overrides it), or check a 2-D array (its pixel size is required:
   1 nm/px is never assumed);
2. **resample** only when the pixel size is outside the model's documented range
   (``pixel_size_range_nm`` in the checkpoint): to the nearest end of the range, and back at
   the end (refused when the factor is extreme);
3. **normalise** exactly as the checkpoint's metadata says (same result as
   :func:`etem_helpers.data.normalize_image`, computed without full-size float64 temporaries);
4. **predict** foreground and contact-boundary probabilities with tiled inference
   (:func:`etem_helpers.segment.predict_probabilities`, bounded memory);
5. **split** touching particles (:func:`etem_helpers.instances.split_instances`; on large
   images block by block, see :func:`split_instances_blocked`);
6. **measure** every particle on the original pixel grid
   (:func:`etem_helpers.measure.measure_particles`).

Fault columns: ``fault_probability`` is NaN and ``has_fault`` is ``pd.NA`` for every particle
until the fault classifier is added (a later issue of the project).

Loaded models are kept in a small least-recently-used cache keyed by (checkpoint file,
modification time, size, device), so calling :func:`analyze` in a loop does not reload the
checkpoint. This cache is the module's only state; it never changes results. Empty it with
:func:`clear_model_cache`.
"""

from __future__ import annotations

import math
import os
import time
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from .io import (
    EmptyImageError,
    InvalidPixelSizeError,
    InvalidPixelValuesError,
    NotAnImageError,
    _validate_pixel_size,
    read_micrograph,
)
from .result import AnalysisResult

__all__ = [
    "DEFAULT_MODEL_PATH",
    "TRAIN_DEFAULT_COMMAND",
    "ResamplingPlan",
    "analyze",
    "clear_model_cache",
    "fuse_for_inference",
    "load_model",
    "measure_particles_blocked",
    "normalize_for_model",
    "plan_resampling",
    "split_instances_blocked",
]

#: The checkpoint shipped with the package (``model="default"``).
DEFAULT_MODEL_PATH = Path(__file__).resolve().parent / "models" / "default.pt"
#: The documented command that trains the shipped model.
TRAIN_DEFAULT_COMMAND = (
    "python -m etem_helpers.train --config etem_helpers/models/default_config.json "
    "--out etem_helpers/models/default.pt"
)

#: Largest resampling factor (either direction) before :func:`analyze` refuses.
MAX_RESAMPLING_FACTOR = 8.0
#: Smallest side (pixels) of a resampled image before :func:`analyze` refuses.
MIN_RESAMPLED_SIDE_PX = 32
#: Largest resampled image (pixels) before :func:`analyze` refuses (16384²).
MAX_RESAMPLED_PIXELS = 16384 * 16384
#: Images with more pixels than this are split into instances block by block.
BLOCKED_SPLIT_MIN_PIXELS = 2048 * 2048
#: Block side (pixels) of the blocked instance splitting.
SPLIT_BLOCK_PX = 2048
#: Largest CPU tile (pixels): per-pixel cost of the light U-Net rises for larger tiles.
_MAX_CPU_TILE_PX = 544
_MAX_GPU_TILE_PX = 1024
_MIN_AUTO_TILE_PX = 256
_DEFAULT_OVERLAP_PX = 64
_MODEL_CACHE_SIZE = 4
_MODEL_CACHE: OrderedDict[tuple, tuple[Any, dict]] = OrderedDict()
_NORMALIZATION_KEYS = {"function", "method", "low_percentile", "high_percentile"}
_ROWS_PER_CHUNK = 256


# --------------------------------------------------------------------------------------
# Model loading (cached)
# --------------------------------------------------------------------------------------
def clear_model_cache() -> None:
    """Forget every model loaded by :func:`load_model` / :func:`analyze` (frees memory)."""
    _MODEL_CACHE.clear()


def _missing_default_model_error() -> Exception:
    from .segment import CheckpointError

    return CheckpointError(
        f"The default segmentation model {DEFAULT_MODEL_PATH} is not installed. Train it with "
        f"`{TRAIN_DEFAULT_COMMAND}` (from the repository root), or pass model=<path to a .pt "
        "checkpoint written by etem_helpers.segment.save_checkpoint>."
    )


def fuse_for_inference(network):
    """A copy of ``network`` with each batch norm folded into the convolution before it.

    In eval mode a batch norm is an affine map per channel, so it can be merged into the
    weights and bias of the preceding convolution: the outputs agree to float rounding
    (about 1e-5 here) and CPU inference is about 15 % faster (measured on the light preset,
    544² tiles). The copy is for inference only (it has no batch-norm layers to train).
    Networks that :mod:`torch.fx` cannot trace are returned unchanged.

    Parameters
    ----------
    network : torch.nn.Module
        A model in eval mode (e.g. from :func:`etem_helpers.segment.load_checkpoint`).

    Returns
    -------
    torch.nn.Module
        The fused copy in eval mode, or ``network`` itself if fusing is not possible.
    """
    import copy

    try:
        from torch.fx.experimental.optimization import fuse
    except ImportError:  # pragma: no cover - very old torch
        return network
    try:
        fused = fuse(copy.deepcopy(network).eval())
    except Exception:  # noqa: BLE001 - any tracing failure: keep the plain network
        return network
    fused.eval()
    return fused


def load_model(model: str | os.PathLike = "default", *, device="auto") -> tuple[Any, dict]:
    """Load a segmentation checkpoint once and reuse it (small LRU cache).

    Parameters
    ----------
    model : "default" or str or path-like
        ``"default"``: the checkpoint shipped in ``etem_helpers/models/default.pt``;
        otherwise the path of a checkpoint written by
        :func:`etem_helpers.segment.save_checkpoint`.
    device : str or torch.device
        ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``, ...

    Returns
    -------
    model : torch.nn.Module
        The network in eval mode on ``device``, with batch norms folded into the
        convolutions for speed (:func:`fuse_for_inference`); shared with later calls. For a
        network to train further, use :func:`etem_helpers.segment.load_checkpoint`.
    meta : dict
        The checkpoint metadata plus ``"path"`` (the resolved file).

    Raises
    ------
    etem_helpers.segment.CheckpointError
        Missing, corrupt or incompatible checkpoint (the message says what to do).
    """
    from .device import get_device
    from .segment import load_checkpoint

    torch_device = get_device(device)
    if isinstance(model, str) and model == "default":
        path = DEFAULT_MODEL_PATH
        if not path.is_file():
            raise _missing_default_model_error()
    else:
        path = Path(model)
    try:
        resolved = path.resolve()
        stat = resolved.stat()
        key = (str(resolved), stat.st_mtime_ns, stat.st_size, str(torch_device))
    except OSError:
        key = None  # load_checkpoint raises the informative error
    if key is not None and key in _MODEL_CACHE:
        _MODEL_CACHE.move_to_end(key)
        return _MODEL_CACHE[key]
    network, meta = load_checkpoint(path, device=torch_device)
    network = fuse_for_inference(network)
    meta = {**meta, "path": str(path.resolve())}
    if key is not None:
        _MODEL_CACHE[key] = (network, meta)
        while len(_MODEL_CACHE) > _MODEL_CACHE_SIZE:
            _MODEL_CACHE.popitem(last=False)
    return network, meta


def _resolve_model(model, device) -> tuple[Any, dict]:
    """(network, meta) from "default", a path or a (network, meta) tuple."""
    from .segment import CheckpointError

    if isinstance(model, tuple):
        if len(model) != 2 or not isinstance(model[1], Mapping):
            raise TypeError(
                "model given as a tuple must be (network, meta) as returned by "
                "etem_helpers.segment.load_checkpoint."
            )
        network, meta = model
        missing = [k for k in ("pixel_size_range_nm", "normalization") if k not in meta]
        if missing:
            raise CheckpointError(
                f"The model metadata lacks {missing}; pass the meta dict returned by "
                "etem_helpers.segment.load_checkpoint (or a checkpoint path)."
            )
        return network, dict(meta)
    if isinstance(model, str | os.PathLike):
        return load_model(model, device=device)
    raise TypeError(
        f"model must be 'default', a checkpoint path or a (network, meta) tuple; got "
        f"{type(model).__name__}."
    )


# --------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------
def _check_image_array(image) -> np.ndarray:
    """Return a 2-D finite float32 array or raise an error that says what to do."""
    array = np.asarray(image)
    if array.dtype == bool or not np.issubdtype(array.dtype, np.number):
        raise TypeError(
            f"image must hold real numbers; got dtype {array.dtype}. Pass a grey-level "
            "micrograph (e.g. the float32 array from etem_helpers.io.read_micrograph)."
        )
    if np.iscomplexobj(array):
        raise TypeError(
            f"image is complex ({array.dtype}); pass a real image, e.g. np.abs(image)."
        )
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        raise NotAnImageError(
            f"image has shape {array.shape}, which looks like an RGB(A) colour image; convert "
            "it to grey (e.g. skimage.color.rgb2gray(image[..., :3])) or pass one channel "
            "(image[..., 0])."
        )
    if array.ndim == 3:
        raise NotAnImageError(
            f"image has shape {array.shape}, a stack of {array.shape[0]} frames; choose a "
            "frame (image[i]) or combine them (image.mean(axis=0)) and pass a 2-D array."
        )
    if array.ndim != 2:
        raise NotAnImageError(
            f"image must be a 2-D array (rows, columns); got {array.ndim} dimension(s) with "
            f"shape {array.shape}."
        )
    if array.size == 0:
        raise EmptyImageError(f"image is empty (shape {array.shape}); pass a non-empty image.")
    array = array.astype(np.float32, copy=False)
    if not np.isfinite(array).all():
        n_nan = int(np.count_nonzero(np.isnan(array)))
        n_inf = int(array.size - n_nan - np.count_nonzero(np.isfinite(array)))
        raise InvalidPixelValuesError(
            f"image contains {n_nan} NaN and {n_inf} infinite pixel(s) (of {array.size}); "
            "replace them first, e.g. image = np.where(np.isfinite(image), image, "
            "np.nanmedian(image)), or read the file with "
            "read_micrograph(path, nan_policy='fill')."
        )
    return np.ascontiguousarray(array)


# --------------------------------------------------------------------------------------
# Normalisation (as data.normalize_image, bounded memory)
# --------------------------------------------------------------------------------------
def _normalization_params(normalization: Mapping[str, Any]) -> dict[str, Any]:
    from .segment import CheckpointError

    if not isinstance(normalization, Mapping):
        raise CheckpointError(
            f"The checkpoint's normalization must be a dict, got {normalization!r}."
        )
    unknown = sorted(set(normalization) - _NORMALIZATION_KEYS)
    function = normalization.get("function", "etem_helpers.data.normalize_image")
    if unknown or function != "etem_helpers.data.normalize_image":
        raise CheckpointError(
            f"The checkpoint's normalization {dict(normalization)} has settings this version "
            f"cannot reproduce ({unknown or function}); upgrade etem_helpers or re-save the "
            "model with etem_helpers.data.normalize_image settings."
        )
    params = {k: normalization[k] for k in ("method", "low_percentile", "high_percentile")
              if k in normalization}
    params.setdefault("method", "percentile")
    return params


def _row_chunks(n_rows: int):
    for start in range(0, n_rows, _ROWS_PER_CHUNK):
        yield slice(start, min(start + _ROWS_PER_CHUNK, n_rows))


def normalize_for_model(image: np.ndarray, normalization: Mapping[str, Any]) -> np.ndarray:
    """Normalise a finite image as a checkpoint's metadata says, with bounded memory.

    Gives exactly (bit for bit) the result of :func:`etem_helpers.data.normalize_image` with
    the same settings for a finite image, but needs one float64 copy of the pixel values
    (for the percentiles/median) and row chunks instead of several full-size float64
    temporaries (about 16 instead of ~40 bytes per pixel).

    Parameters
    ----------
    image : numpy.ndarray
        2-D image, any real dtype, finite values.
    normalization : dict
        The checkpoint's ``meta["normalization"]``: ``method`` ("percentile" or "zscore"),
        optional ``low_percentile`` / ``high_percentile`` (0–100) and ``function``.

    Returns
    -------
    numpy.ndarray
        float32 array with the shape of ``image``.
    """
    from .data import normalize_image

    params = _normalization_params(normalization)
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"image must be 2-D (H, W); got shape {image.shape}.")
    method = params["method"]
    if method not in ("percentile", "zscore"):
        return normalize_image(image, **params)  # raises the informative error
    low_p = float(params.get("low_percentile", 0.5))
    high_p = float(params.get("high_percentile", 99.5))
    if not 0.0 <= low_p < high_p <= 100.0:
        return normalize_image(image, **params)  # raises the informative error
    out = np.zeros(image.shape, dtype=np.float32)
    if image.size == 0:
        return out
    work = image.astype(np.float64).ravel()
    if method == "percentile":
        low, high = np.percentile(work, [low_p, high_p], overwrite_input=True)
        del work
        scale = high - low
        if not scale > 0:
            return out
        for rows in _row_chunks(image.shape[0]):
            out[rows] = np.clip((image[rows].astype(np.float64) - low) / scale, 0.0, 1.0)
        return out
    median = np.median(work, overwrite_input=True)
    width = image.shape[1]
    for rows in _row_chunks(image.shape[0]):
        flat = slice(rows.start * width, rows.stop * width)
        work[flat] = np.abs(image[rows].astype(np.float64) - median).ravel()
    spread = 1.4826 * np.median(work, overwrite_input=True)
    if not spread > 0:
        # As normalize_image: fall back to the standard deviation of the pixel values.
        for rows in _row_chunks(image.shape[0]):
            work[rows.start * width : rows.stop * width] = image[rows].astype(np.float64).ravel()
        spread = float(np.std(work))
    del work
    if not spread > 0:
        return out
    for rows in _row_chunks(image.shape[0]):
        out[rows] = (image[rows].astype(np.float64) - median) / spread
    return out


# --------------------------------------------------------------------------------------
# Pixel size: resampling plan and mapping back
# --------------------------------------------------------------------------------------
class ResamplingPlan(dict):
    """What :func:`plan_resampling` decided (a dict, stored in ``result.info``).

    Keys: ``resample`` (bool), ``pixel_size_nm`` (input), ``target_pixel_size_nm``,
    ``factor`` (output pixels per input pixel along each axis), ``shape`` (input) and
    ``reason`` (text).
    """


def plan_resampling(
    image_shape, pixel_size_nm: float, pixel_size_range_nm
) -> ResamplingPlan:
    """Decide whether an image must be resampled to fit a model's pixel-size range.

    Parameters
    ----------
    image_shape : sequence of int
        (H, W) in pixels.
    pixel_size_nm : float
        Pixel size of the image, nm/px.
    pixel_size_range_nm : (float, float)
        The model's documented range (nm/px).

    Returns
    -------
    ResamplingPlan
        Inside the range (ends included): no resampling. Outside: resample to the nearest
        end of the range.

    Raises
    ------
    ValueError
        The needed factor exceeds :data:`MAX_RESAMPLING_FACTOR` in either direction, the
        resampled image would have a side below :data:`MIN_RESAMPLED_SIDE_PX` pixels, or
        more than :data:`MAX_RESAMPLED_PIXELS` pixels. The message gives the numbers.
    """
    low, high = (float(v) for v in pixel_size_range_nm)
    height, width = (int(n) for n in tuple(image_shape)[-2:])
    plan = ResamplingPlan(
        resample=False,
        pixel_size_nm=float(pixel_size_nm),
        target_pixel_size_nm=float(pixel_size_nm),
        factor=1.0,
        shape=(height, width),
        reason=f"{pixel_size_nm:.4g} nm/px is inside the model's range {low:.4g}–{high:.4g} "
        "nm/px: image used as it is",
    )
    if low <= pixel_size_nm <= high:
        return plan
    target = low if pixel_size_nm < low else high
    factor = pixel_size_nm / target  # output pixels per input pixel
    new_shape = (max(1, round(height * factor)), max(1, round(width * factor)))
    advice = (
        f"The model handles {low:.4g}–{high:.4g} nm/px; check pixel_size_nm "
        f"({pixel_size_nm:.4g} nm/px), bin or crop the image yourself, or use a model trained "
        "for this magnification."
    )
    if max(factor, 1.0 / factor) > MAX_RESAMPLING_FACTOR:
        raise ValueError(
            f"The image's pixel size {pixel_size_nm:.4g} nm/px needs resampling by "
            f"{factor:.3g}× to reach {target:.4g} nm/px, beyond the {MAX_RESAMPLING_FACTOR:g}× "
            f"this function accepts (results would be unreliable). {advice}"
        )
    if min(new_shape) < MIN_RESAMPLED_SIDE_PX:
        raise ValueError(
            f"Resampling the {height}×{width} image from {pixel_size_nm:.4g} to {target:.4g} "
            f"nm/px would leave {new_shape[0]}×{new_shape[1]} pixels, fewer than "
            f"{MIN_RESAMPLED_SIDE_PX} px per side: too little to segment. {advice}"
        )
    if new_shape[0] * new_shape[1] > MAX_RESAMPLED_PIXELS:
        raise ValueError(
            f"Resampling the {height}×{width} image from {pixel_size_nm:.4g} to {target:.4g} "
            f"nm/px would give {new_shape[0]}×{new_shape[1]} pixels (more than "
            f"{MAX_RESAMPLED_PIXELS} px); crop the image into parts first. {advice}"
        )
    plan.update(
        resample=True,
        target_pixel_size_nm=float(target),
        factor=float(factor),
        reason=f"{pixel_size_nm:.4g} nm/px is outside the model's range {low:.4g}–{high:.4g} "
        f"nm/px: resampled by {factor:.4g}× to {target:.4g} nm/px for the prediction, "
        "probability and labels mapped back to the original grid",
    )
    return plan


def _map_back(
    array: np.ndarray, zoom: float, shape: tuple[int, int], *, is_label: bool
) -> np.ndarray:
    """Map an array on the resampled grid back onto the original grid of ``shape``.

    ``zoom`` is the resampled/original pixel ratio used by
    :func:`etem_helpers.data.resample_to_pixel_size` (both axes); original pixel centre j
    sits at resampled coordinate ``(j + 0.5) * zoom - 0.5``. Labels use nearest neighbour,
    probabilities linear interpolation (low-pass filtered first when shrinking).
    """
    matrix = np.full(2, zoom)
    offset = np.full(2, 0.5 * zoom - 0.5)
    if is_label:
        return ndi.affine_transform(
            array, matrix, offset=offset, output_shape=shape, order=0, mode="nearest"
        )
    data = array.astype(np.float32, copy=False)
    if zoom > 1.0:
        data = ndi.gaussian_filter(data, sigma=(zoom - 1.0) / 2.0, mode="reflect")
    out = ndi.affine_transform(
        data, matrix, offset=offset, output_shape=shape, order=1, mode="nearest",
        output=np.float32,
    )
    return np.clip(out, 0.0, 1.0, out=out)


def _relabel_in_order(labels: np.ndarray) -> np.ndarray:
    """Renumber the ids present in ``labels`` as 1..N keeping their order (int32)."""
    present = np.bincount(labels.ravel())
    present[0] = 0
    mapping = np.zeros(present.size, dtype=np.int32)
    ids = np.flatnonzero(present)
    mapping[ids] = np.arange(1, ids.size + 1, dtype=np.int32)
    return mapping[labels]


# --------------------------------------------------------------------------------------
# Instance splitting on large images
# --------------------------------------------------------------------------------------
def split_instances_blocked(
    foreground_prob: np.ndarray,
    boundary_prob: np.ndarray | None = None,
    *,
    threshold: float = 0.5,
    block_px: int = SPLIT_BLOCK_PX,
    **split_kwargs,
) -> np.ndarray:
    """:func:`etem_helpers.instances.split_instances` on a large image, block by block.

    The foreground mask is cut into its 8-connected components; each component goes to the
    block (a ``block_px`` grid) that holds the top-left corner of its bounding box, and each
    block is split on the union of its components' bounding boxes with every other
    component removed. Components never straddle two blocks' work, so ids are consistent
    without any merging, and peak memory is that of one block (plus the int32 output).

    Every step of ``split_instances`` stays within one 8-connected component of the mask
    (the distance transforms to the nearest background pixel cannot reach across: the pixel
    next to any closer pixel of another component would join the two), so the result
    matches ``split_instances`` on the whole image up to rare ties in the merging of
    shallow distance peaks (whose order depends on marker numbers).

    Limitation: a component larger than a block is processed whole, so memory then scales
    with its bounding box. When the foreground percolates across the whole image (e.g. an
    untrained network marking noise as foreground) this is the whole image: ~5 GB resident
    for 8192² (measured), as plain ``split_instances``.

    Parameters
    ----------
    foreground_prob, boundary_prob : numpy.ndarray
        (H, W) probabilities (0–1), as for ``split_instances``.
    threshold : float
        Foreground threshold (0–1).
    block_px : int
        Block side in pixels (>= 64).
    **split_kwargs
        Other keyword arguments of ``split_instances`` (``boundary_threshold``,
        ``min_size_px``, ``min_distance_px``, ``h_px``).

    Returns
    -------
    numpy.ndarray
        int32 labels (H, W), ids 1..N numbered in raster order of each particle's first
        pixel, as ``split_instances``.
    """
    from .instances import split_instances

    foreground_prob = np.asarray(foreground_prob)
    if foreground_prob.ndim != 2:
        raise ValueError(
            f"foreground_prob must be 2-D (H, W); got shape {foreground_prob.shape}."
        )
    if boundary_prob is not None and np.shape(boundary_prob) != foreground_prob.shape:
        raise ValueError(
            f"boundary_prob shape {np.shape(boundary_prob)} differs from foreground_prob "
            f"shape {foreground_prob.shape}; pass the two channels of the same prediction."
        )
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold={threshold!r} must be in [0, 1).")
    if int(block_px) != block_px or block_px < 64:
        raise ValueError(f"block_px={block_px!r} must be an integer >= 64 (pixels).")
    height, width = foreground_prob.shape
    groups, n_groups = ndi.label(foreground_prob > threshold, structure=np.ones((3, 3), bool))
    out = np.zeros((height, width), dtype=np.int32)
    if n_groups == 0:
        return out
    boxes = ndi.find_objects(groups)
    starts = np.array([(b[0].start, b[1].start) for b in boxes], dtype=np.int64)
    stops = np.array([(b[0].stop, b[1].stop) for b in boxes], dtype=np.int64)
    n_block_x = -(-width // int(block_px))
    block_of = (starts[:, 0] // block_px) * n_block_x + starts[:, 1] // block_px
    order = np.argsort(block_of, kind="stable")
    bounds = np.flatnonzero(np.r_[True, np.diff(block_of[order]) != 0, True])
    first_pixel: list[np.ndarray] = []
    next_id = 0
    for first, last in zip(bounds[:-1], bounds[1:], strict=True):
        members = order[first:last]  # group index (id - 1)
        y0, x0 = starts[members].min(axis=0)
        y1, x1 = stops[members].max(axis=0)
        window = (slice(int(y0), int(y1)), slice(int(x0), int(x1)))
        lookup = np.zeros(n_groups + 1, dtype=bool)
        lookup[members + 1] = True
        keep = lookup[groups[window]]
        local_fg = np.where(keep, foreground_prob[window], np.float32(0.0)).astype(
            np.float32, copy=False
        )
        local_bd = None if boundary_prob is None else boundary_prob[window]
        local = split_instances(local_fg, local_bd, threshold=threshold, **split_kwargs)
        n_local = int(local.max(initial=0))
        if n_local == 0:
            continue
        flat = np.flatnonzero(local)
        values = local.ravel()[flat]
        # split_instances numbers ids by first pixel in raster order: an id appears first
        # exactly where it exceeds every id seen before.
        seen = np.maximum.accumulate(np.r_[0, values[:-1]])
        firsts = flat[values > seen]
        rows, cols = np.divmod(firsts, local.shape[1])
        first_pixel.append((rows + y0) * width + (cols + x0))
        target = out[window]
        mask = local > 0
        target[mask] = local[mask] + next_id
        next_id += n_local
    if next_id == 0:
        return out
    global_first = np.concatenate(first_pixel)
    mapping = np.zeros(next_id + 1, dtype=np.int32)
    mapping[np.argsort(global_first, kind="stable") + 1] = np.arange(
        1, next_id + 1, dtype=np.int32
    )
    for rows in _row_chunks(height):
        out[rows] = mapping[out[rows]]
    return out


def measure_particles_blocked(
    labels: np.ndarray,
    pixel_size_nm: float,
    *,
    probability: np.ndarray | None = None,
    block_px: int = SPLIT_BLOCK_PX,
):
    """:func:`etem_helpers.measure.measure_particles` on a large label map, block by block.

    ``measure_particles`` keeps several 8-byte arrays per foreground pixel; on an 8192²
    map that is mostly foreground this needs more than 5 GB. Here each particle goes to
    the ``block_px`` block holding the top-left corner of its bounding box, each block's
    particles are measured on the union of their bounding boxes (other ids removed), and
    the centroids are shifted back and ``touches_border`` is taken from the bounding box
    in the whole image. Every measurement is translation invariant, so the table equals
    ``measure_particles`` on the whole map (same columns, dtypes and row order).

    Parameters
    ----------
    labels : numpy.ndarray
        (H, W) integer label map (0 background).
    pixel_size_nm : float
        nm per pixel.
    probability : numpy.ndarray, optional
        (H, W) foreground probability for ``confidence``.
    block_px : int
        Block side in pixels (>= 64).

    Returns
    -------
    pandas.DataFrame
        One row per id, sorted by id, the contract columns.
    """
    import pandas as pd

    from .measure import measure_particles

    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.dtype == bool or not np.issubdtype(labels.dtype, np.integer):
        return measure_particles(labels, pixel_size_nm, probability=probability)  # its errors
    if int(block_px) != block_px or block_px < 64:
        raise ValueError(f"block_px={block_px!r} must be an integer >= 64 (pixels).")
    if probability is not None and np.shape(probability) != labels.shape:
        return measure_particles(labels, pixel_size_nm, probability=probability)  # its error
    height, width = labels.shape
    boxes = ndi.find_objects(labels.astype(np.int32, copy=False))
    ids = np.array([i + 1 for i, box in enumerate(boxes) if box is not None], dtype=np.int64)
    if ids.size == 0 or labels.min() < 0:
        return measure_particles(labels, pixel_size_nm, probability=probability)
    starts = np.array([(boxes[i - 1][0].start, boxes[i - 1][1].start) for i in ids])
    stops = np.array([(boxes[i - 1][0].stop, boxes[i - 1][1].stop) for i in ids])
    n_block_x = -(-width // int(block_px))
    block_of = (starts[:, 0] // block_px) * n_block_x + starts[:, 1] // block_px
    order = np.argsort(block_of, kind="stable")
    bounds = np.flatnonzero(np.r_[True, np.diff(block_of[order]) != 0, True])
    lookup = np.zeros(int(ids.max()) + 1, dtype=bool)
    tables = []
    for first, last in zip(bounds[:-1], bounds[1:], strict=True):
        members = order[first:last]
        y0, x0 = starts[members].min(axis=0)
        y1, x1 = stops[members].max(axis=0)
        window = (slice(int(y0), int(y1)), slice(int(x0), int(x1)))
        lookup[:] = False
        lookup[ids[members]] = True
        crop = labels[window]
        local = np.where(lookup[crop], crop, 0)
        table = measure_particles(
            local,
            pixel_size_nm,
            probability=None if probability is None else probability[window],
        )
        table["centroid_y_px"] += float(y0)
        table["centroid_x_px"] += float(x0)
        box_index = table["particle_id"].to_numpy().astype(np.int64) - 1
        table["touches_border"] = [
            boxes[i][0].start == 0
            or boxes[i][1].start == 0
            or boxes[i][0].stop == height
            or boxes[i][1].stop == width
            for i in box_index
        ]
        tables.append(table)
    result = pd.concat(tables, ignore_index=True)
    result = result.sort_values("particle_id", kind="stable").reset_index(drop=True)
    reference = measure_particles(np.zeros((1, 1), dtype=np.int32), pixel_size_nm)
    return result.astype(reference.dtypes.to_dict())


# --------------------------------------------------------------------------------------
# Tiles
# --------------------------------------------------------------------------------------
def _auto_tile_px(shape, *, overlap_px: int, multiple: int, max_tile_px: int) -> int:
    """Tile side (multiple of ``multiple``) that minimises the pixels sent to the network."""
    from .segment import inference_tile_shape

    best, best_cost = None, None
    top = max(multiple, max_tile_px - max_tile_px % multiple)
    low = min(top, max(multiple, _MIN_AUTO_TILE_PX))
    for tile in range(top, low - 1, -multiple):
        if tile <= overlap_px:
            break
        tile_h, tile_w = inference_tile_shape(shape, tile_px=tile, multiple=multiple)
        cost = 1
        for length, side in zip(shape, (tile_h, tile_w), strict=True):
            n = 1 if length <= side else math.ceil((length - overlap_px) / (side - overlap_px))
            cost *= n * side
        if best_cost is None or cost < best_cost:
            best, best_cost = tile, cost
    return int(best)


def _size_multiple(network) -> int:
    from .segment import _size_multiple as size_multiple

    return size_multiple(network)


# --------------------------------------------------------------------------------------
# The pipeline
# --------------------------------------------------------------------------------------
def _base_info(meta, torch_device, plan, prediction_pixel_size_nm, threshold, tta, batch_size):
    """The parts of ``AnalysisResult.info`` that do not depend on the prediction."""
    from ._version import __version__

    return {
        "model_path": meta.get("path"),
        "model_preset": meta.get("preset", "custom"),
        "model_etem_helpers_version": meta.get("etem_helpers_version"),
        "model_format_version": meta.get("format_version"),
        "etem_helpers_version": __version__,
        "model_pixel_size_nm": meta.get("pixel_size_nm"),
        "model_pixel_size_range_nm": [float(v) for v in meta["pixel_size_range_nm"]],
        "normalization": dict(meta["normalization"]),
        "device": str(torch_device),
        "batch_size": batch_size,
        "tta": bool(tta),
        "threshold": float(threshold),
        "resampling": dict(plan),
        "prediction_pixel_size_nm": float(prediction_pixel_size_nm),
        "faults": "not classified yet (later issue): fault_probability is NaN and has_fault "
        "is <NA> for every particle",
    }


def _result(labels, particles, probability, info, *, meta, timing, file_info, pixel_size_nm,
            pixel_size_source) -> AnalysisResult:
    """The AnalysisResult of :func:`analyze`, with timings, image shape and file in ``info``."""
    info.update(timing_s=timing, image_shape=[int(n) for n in labels.shape])
    if file_info:
        info["file"] = file_info
    return AnalysisResult(
        labels=labels,
        particles=particles,
        probability=probability,
        pixel_size_nm=pixel_size_nm,
        pixel_size_source=pixel_size_source,
        method=f"unet:{meta.get('preset', 'custom')}",
        info=info,
    )


def analyze(
    image,
    pixel_size_nm: float | None = None,
    *,
    model="default",
    device="auto",
    tile_px: int | None = None,
    overlap_px: int | None = None,
    tta: bool = False,
    threshold: float | None = None,
    batch_size: int | None = None,
    min_diameter_nm: float | None = None,
    min_confidence: float | None = None,
    precision: str = "auto",
    progress: bool = False,
) -> AnalysisResult:
    """Find, separate and measure the particles of a micrograph with a trained U-Net.

    Parameters
    ----------
    image : numpy.ndarray or str or path-like
        A 2-D grey-level array (any real dtype, finite values) or the path of a micrograph
        file (MRC, TIFF, DM3/DM4, EMD, SER, PNG/JPEG; read with
        :func:`etem_helpers.io.read_micrograph`, its calibration used).
    pixel_size_nm : float, optional
        Pixel size in nm per pixel. Required for an array (1 nm/px is never assumed);
        for a file it overrides the file's calibration.
    model : "default" or str or path-like or (torch.nn.Module, dict)
        ``"default"``: the model shipped with the package; a checkpoint path written by
        :func:`etem_helpers.segment.save_checkpoint`; or ``(network, meta)`` as returned by
        :func:`etem_helpers.segment.load_checkpoint`. Loaded checkpoints are cached (see
        :func:`clear_model_cache`).
    device : str or torch.device
        ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``, ``"mps"``.
    tile_px : int, optional
        Inference tile side in pixels (a multiple of 32). None chooses, among multiples of
        32 up to 544 px on the CPU (1024 px on GPUs), the side that sends the fewest pixels
        through the network (e.g. 2 × 2 tiles of 544 px for 1024 × 1024; one tile for
        images up to 544 px).
    overlap_px : int, optional
        Overlap of neighbouring tiles in pixels (default 64), blended with a raised cosine.
    tta : bool
        Average the prediction over 4 flips (4× slower, slightly smoother).
    threshold : float, optional
        Foreground probability threshold, in (0, 1). None uses the model's own setting,
        chosen on its validation data when it was trained (``meta["postprocess"]``; 0.5
        for a model without one).
    batch_size : int, optional
        Tiles per forward pass (None: 1 on the CPU, 4 on GPUs).
    min_diameter_nm : float, optional
        Remove particles whose area-equivalent diameter is below this (nm). None uses the
        model's smallest instance size in pixels (on the grid the model sees; 10 px for a
        model without one).
    min_confidence : float, optional
        Remove particles whose mean foreground probability (``confidence``) is below this
        (0–1). None uses the model's setting (0 for a model without one). Spurious
        detections on the support are mostly uncertain ones.
    precision : {"auto", "float32", "bfloat16"}
        Number format of the network. ``"auto"`` uses bfloat16 on CPUs that compute it
        natively (AVX-512 BF16 / AMX: about 2.5× faster, probabilities within about 0.02)
        and float32 elsewhere; see :func:`etem_helpers.device.inference_precision`. The
        choice is recorded in ``info["precision"]``.
    progress : bool
        Show a progress bar over the tiles.

    Returns
    -------
    AnalysisResult
        ``labels`` (int32, 0 background, 1..N in raster order of each particle's first
        pixel), ``probability`` (float32 foreground probability), ``particles``
        (:func:`etem_helpers.measure.measure_particles` on the original grid; ``confidence``
        = mean foreground probability over the particle; ``fault_probability`` NaN and
        ``has_fault`` ``pd.NA`` until the fault classifier exists), ``pixel_size_nm``,
        ``pixel_size_source`` (``"argument"`` or ``"file:..."``), ``method``
        (``"unet:<preset>"``) and ``info`` (model path and versions, device, tiles,
        resampling, normalisation, ``timing_s`` per stage).

    Raises
    ------
    ValueError
        Missing or invalid pixel size (:class:`~etem_helpers.io.InvalidPixelSizeError`),
        not a 2-D image (:class:`~etem_helpers.io.NotAnImageError`), empty image, NaN/Inf
        pixels (:class:`~etem_helpers.io.InvalidPixelValuesError`), a pixel size needing
        extreme resampling, or bad arguments. Errors reading a file are those of
        :func:`etem_helpers.io.read_micrograph`.
    etem_helpers.segment.CheckpointError
        Missing or unusable checkpoint.

    Notes
    -----
    A constant image (no contrast) gives zero particles without running the network.
    Deterministic for the same input, model and device (``torch.inference_mode``, no
    randomness). Memory is bounded: the prediction holds about 12 bytes per pixel besides
    the image, and images above 2048² pixels are split into instances block by block
    (:func:`split_instances_blocked`, :func:`measure_particles_blocked`); an 8192² float32
    micrograph peaked at 2.4 GB resident (``benchmarks/bench_analyze.py``). A foreground
    that forms one connected region across a huge image cannot be split in blocks (see
    :func:`split_instances_blocked`).

    Speed: models loaded by path or ``"default"`` have their batch norms folded into the
    convolutions, and on CPUs with native bfloat16 the network runs in bfloat16
    (``precision="auto"``); ``BENCHMARKS.md`` has the measured seconds per image. On a CPU
    shared with other busy processes, PyTorch's multi-threaded inference can slow down
    5–10× because its OpenMP threads spin while waiting for each other. Start Python with
    the environment variable ``OMP_WAIT_POLICY=PASSIVE`` or call ``torch.set_num_threads(1)``
    there (measured on 2 cores with one busy: the 1024² prediction took 5–11 s with 2
    spinning threads, 1.1–1.4 s with either fix, in float32).

    Examples
    --------
    >>> from etem_helpers import analyze
    >>> result = analyze("particles.mrc")  # doctest: +SKIP
    >>> result.particles[["diameter_nm", "confidence"]].describe()  # doctest: +SKIP
    """
    from .device import get_device
    from .measure import measure_particles
    from .segment import predict_probabilities

    timing: dict[str, float] = {}
    started = time.perf_counter()
    clock = started

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timing[stage] = round(now - clock, 4)
        clock = now

    if threshold is not None and not (
        isinstance(threshold, int | float) and 0.0 < float(threshold) < 1.0
    ):
        raise ValueError(f"threshold={threshold!r} must be a number in (0, 1) or None.")
    if min_confidence is not None and not (
        isinstance(min_confidence, int | float) and 0.0 <= float(min_confidence) <= 1.0
    ):
        raise ValueError(f"min_confidence={min_confidence!r} must be a number in [0, 1] or None.")
    if min_diameter_nm is not None:
        min_diameter_nm = _validate_pixel_size(
            min_diameter_nm, argument="min_diameter_nm",
            quantity="the smallest particle diameter to keep as a finite positive number in nm",
        )
    for name, value in (("tile_px", tile_px), ("overlap_px", overlap_px)):
        if value is not None and (isinstance(value, bool) or int(value) != value or value < 0):
            raise ValueError(f"{name}={value!r} must be a non-negative integer (pixels) or None.")

    # 1. read / check --------------------------------------------------------------------
    file_info: dict[str, Any] = {}
    if isinstance(image, str | os.PathLike):
        try:
            micrograph = read_micrograph(image, pixel_size_nm=pixel_size_nm)
        except NotAnImageError as error:
            if "stack" not in str(error):
                raise
            raise NotAnImageError(
                f"{error} analyze() takes one 2-D image: read the frame you want with "
                "etem_helpers.io.read_micrograph(path, frame=...) and pass its image and "
                "pixel_size_nm to analyze()."
            ) from error
        array = micrograph.image
        pixel_size_nm = float(micrograph.pixel_size_nm)
        pixel_size_source = str(micrograph.metadata["pixel_size_source"])
        file_info = {
            "path": micrograph.metadata.get("path"),
            "format": micrograph.metadata.get("format"),
        }
        if pixel_size_source != "argument" and not pixel_size_source.startswith("file"):
            pixel_size_source = f"file:{pixel_size_source}"
    else:
        if pixel_size_nm is None:
            raise InvalidPixelSizeError(
                "pixel_size_nm is required when image is an array: pass pixel_size_nm=<nm per "
                "pixel> (from the file header or the scale bar), or pass the file path so the "
                "calibration is read from it. 1 nm/px is never assumed."
            )
        pixel_size_nm = _validate_pixel_size(pixel_size_nm, argument="pixel_size_nm")
        array = _check_image_array(image)
        pixel_size_source = "argument"
    lap("read")

    # model -----------------------------------------------------------------------------
    torch_device = get_device(device)
    from .device import inference_precision

    precision = inference_precision(precision, torch_device)
    network, meta = _resolve_model(model, torch_device)
    from .postprocess import postprocess_settings

    settings = postprocess_settings(
        meta.get("postprocess"), threshold=threshold, min_confidence=min_confidence
    )
    threshold = float(settings["threshold"])
    lap("load_model")

    # 2. resample if outside the model's range ---------------------------------------------
    plan = plan_resampling(array.shape, pixel_size_nm, meta["pixel_size_range_nm"])
    work = array
    prediction_pixel_size_nm = pixel_size_nm
    zoom = 1.0
    if plan["resample"]:
        from .data import resample_to_pixel_size

        work, prediction_pixel_size_nm = resample_to_pixel_size(
            array, pixel_size_nm, plan["target_pixel_size_nm"]
        )
        zoom = pixel_size_nm / prediction_pixel_size_nm
        plan["achieved_pixel_size_nm"] = float(prediction_pixel_size_nm)
        plan["resampled_shape"] = tuple(int(n) for n in work.shape)
    lap("resample")

    if float(array.min()) == float(array.max()):
        # No contrast, nothing to find: a constant image has no particles (any network
        # would answer the same everywhere, so its output would be meaningless here).
        labels = np.zeros(array.shape, dtype=np.int32)
        probability = np.zeros(array.shape, dtype=np.float32)
        particles = measure_particles(labels, pixel_size_nm, probability=probability)
        timing["total"] = round(time.perf_counter() - started, 4)
        info = _base_info(meta, torch_device, plan, pixel_size_nm, threshold, tta, batch_size)
        info.update(constant_image=True)
        return _result(labels, particles, probability, info, meta=meta, timing=timing,
                       file_info=file_info, pixel_size_nm=pixel_size_nm,
                       pixel_size_source=pixel_size_source)

    # 3. normalise ------------------------------------------------------------------------
    normalized = normalize_for_model(work, meta["normalization"])
    if work is not array:
        del work
    lap("normalize")

    # 4. predict ---------------------------------------------------------------------------
    multiple = _size_multiple(network)
    overlap = _DEFAULT_OVERLAP_PX if overlap_px is None else int(overlap_px)
    if tile_px is None:
        max_tile = _MAX_CPU_TILE_PX if torch_device.type == "cpu" else _MAX_GPU_TILE_PX
        tile = _auto_tile_px(
            normalized.shape, overlap_px=overlap, multiple=multiple, max_tile_px=max_tile
        )
    else:
        tile = int(tile_px)
    if overlap >= tile:
        raise ValueError(f"overlap_px={overlap} must be smaller than tile_px={tile}.")
    from .data import tile_positions
    from .segment import inference_tile_shape

    tile_shape = inference_tile_shape(normalized.shape, tile_px=tile, multiple=multiple)
    n_tiles = len(
        tile_positions(
            normalized.shape, tile_px=tile_shape, overlap_px=min(overlap, min(tile_shape) - 1)
        )
    )
    probabilities = predict_probabilities(
        network,
        normalized,
        tile_px=tile,
        overlap_px=overlap,
        batch_size=batch_size,
        device=torch_device,
        tta=tta,
        progress=progress,
        precision=precision,
    )
    del normalized
    lap("predict")

    # 5. split touching particles ----------------------------------------------------------
    from .instances import filter_instances

    split_kwargs: dict[str, Any] = {
        key: settings[key] for key in ("threshold", "boundary_threshold", "min_distance_px", "h_px")
    }
    min_size_px = int(settings["min_size_px"])
    if min_diameter_nm is not None:
        radius_px = 0.5 * min_diameter_nm / prediction_pixel_size_nm
        min_size_px = max(1, math.ceil(math.pi * radius_px**2))
    foreground, boundary = probabilities[0], probabilities[1]
    if foreground.size > BLOCKED_SPLIT_MIN_PIXELS:
        labels = split_instances_blocked(foreground, boundary, min_size_px=1, **split_kwargs)
        split_mode = f"blocked ({SPLIT_BLOCK_PX} px blocks)"
    else:
        from .instances import split_instances

        labels = split_instances(foreground, boundary, min_size_px=1, **split_kwargs)
        split_mode = "whole image"
    labels = filter_instances(
        labels, foreground, min_size_px=min_size_px,
        min_confidence=float(settings["min_confidence"]),
    )
    lap("split")

    # map back to the original grid ----------------------------------------------------------
    if plan["resample"]:
        probability = _map_back(foreground, zoom, array.shape, is_label=False)
        del probabilities, foreground, boundary
        labels = _relabel_in_order(_map_back(labels, zoom, array.shape, is_label=True))
    else:
        probability = np.array(foreground, dtype=np.float32)  # frees the boundary channel
        del probabilities, foreground, boundary
    labels = labels.astype(np.int32, copy=False)
    lap("map_back")

    # 6. measure ----------------------------------------------------------------------------
    if labels.size > BLOCKED_SPLIT_MIN_PIXELS:
        particles = measure_particles_blocked(labels, pixel_size_nm, probability=probability)
    else:
        particles = measure_particles(labels, pixel_size_nm, probability=probability)
    lap("measure")
    timing["total"] = round(time.perf_counter() - started, 4)

    info = _base_info(
        meta, torch_device, plan, prediction_pixel_size_nm, threshold, tta, batch_size
    )
    info.update(
        constant_image=False,
        precision=precision,
        tile_px=[int(n) for n in tile_shape],
        overlap_px=int(overlap),
        n_tiles=int(n_tiles),
        min_size_px=min_size_px,
        postprocess={**settings, "min_size_px": min_size_px},
        split=split_mode,
    )
    return _result(labels, particles, probability, info, meta=meta, timing=timing,
                   file_info=file_info, pixel_size_nm=pixel_size_nm,
                   pixel_size_source=pixel_size_source)
