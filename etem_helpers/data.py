"""Curation of micrograph datasets for segmentation training.

Everything a training notebook needs between "a folder of simulated micrographs" and
"a PyTorch ``DataLoader``":

* :func:`normalize_image`: robust intensity normalisation (percentiles or median/MAD).
* :func:`resample_to_pixel_size`: bring every micrograph to one physical scale (nm/px).
* :func:`tile_image`, :func:`iter_tiles`, :func:`stitch_tiles`, :class:`TileStitcher`:
  overlapping tiles for images of any size, and their exact (blended) inverse.
* :func:`split_by_micrograph`, :func:`assign_split_column`: leakage-free splits.
* :class:`SegmentationDataset`: crops or tiles, aligned augmentations, targets.
* :func:`dataset_card`, :func:`save_dataset_card`, :func:`plot_dataset_card`: what is in a
  dataset, as numbers and as a figure.

Dataset directory layout (written by :mod:`etem_helpers.simulate`)::

    out_dir/images/sim_00000.mrc    float32, calibrated
    out_dir/labels/sim_00000.tif    uint16 instance labels, 0 = background
    out_dir/particles.csv           micrograph_id, contract particle columns, kind, faults
    out_dir/manifest.csv            one row per micrograph (paths relative to out_dir)
    out_dir/dataset.json

Nothing runs at import: torch, matplotlib and the reader are imported inside the functions
that need them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage

try:  # the Dataset subclasses torch's Dataset when torch is there (it is a dependency)
    from torch.utils.data import Dataset as _TorchDataset
except ImportError:  # pragma: no cover - torch is a hard dependency of the package
    _TorchDataset = object  # type: ignore[assignment,misc]

__all__ = [
    "SPLIT_NAMES",
    "SegmentationDataset",
    "TileItem",
    "TileStitcher",
    "assign_split_column",
    "augment_pair",
    "dataset_card",
    "iter_tiles",
    "normalize_image",
    "plot_dataset_card",
    "read_manifest",
    "read_particles",
    "resample_to_pixel_size",
    "save_dataset_card",
    "split_by_micrograph",
    "stitch_tiles",
    "tile_image",
    "tile_positions",
]

SPLIT_NAMES = ("train", "val", "test")


# --------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------
def normalize_image(
    image: np.ndarray,
    *,
    method: str = "percentile",
    low_percentile: float = 0.5,
    high_percentile: float = 99.5,
) -> np.ndarray:
    """Normalise intensities robustly, ignoring a few extreme pixels.

    Detectors produce hot pixels (cosmic rays, X-rays: values many times the mean) and dead
    pixels (zeros). A min-max normalisation would let one hot pixel squash the whole image
    into a narrow band near 0; the mean and standard deviation are pulled the same way.
    Percentiles and the median/MAD ignore such outliers, so the same structure gets the same
    normalised values whatever a handful of bad pixels do.

    Parameters
    ----------
    image : numpy.ndarray
        Image of any real dtype (counts or arbitrary units). Non-finite pixels (NaN, inf)
        are ignored for the statistics and set to 0 in the output.
    method : {"percentile", "zscore"}
        ``"percentile"``: map the ``low_percentile`` value to 0 and the ``high_percentile``
        value to 1, then clip to [0, 1]. ``"zscore"``: subtract the median and divide by
        1.4826 × MAD (the standard deviation for Gaussian data); not clipped.
    low_percentile, high_percentile : float
        Percentiles (0–100) used by ``"percentile"``.

    Returns
    -------
    numpy.ndarray
        float32 array with the shape of ``image``. A constant image gives zeros (no
        division by zero, no NaN).
    """
    if method not in ("percentile", "zscore"):
        raise ValueError(f"method={method!r} is not known; use 'percentile' or 'zscore'.")
    if not 0.0 <= low_percentile < high_percentile <= 100.0:
        raise ValueError(
            f"Need 0 <= low_percentile < high_percentile <= 100, got low_percentile="
            f"{low_percentile} and high_percentile={high_percentile}."
        )
    values = np.asarray(image, dtype=np.float64)
    finite = np.isfinite(values)
    out = np.zeros(values.shape, dtype=np.float32)
    if not finite.any():
        return out
    valid = values[finite]
    if method == "percentile":
        low, high = np.percentile(valid, [low_percentile, high_percentile])
        scale = high - low
        if not scale > 0:
            return out
        out[finite] = np.clip((valid - low) / scale, 0.0, 1.0)
        return out
    median = np.median(valid)
    spread = 1.4826 * np.median(np.abs(valid - median))
    if not spread > 0:
        # More than half of the pixels share one value (e.g. a flat support with a few
        # particles): fall back to the standard deviation, still robust to the constant case.
        spread = float(np.std(valid))
    if not spread > 0:
        return out
    out[finite] = (valid - median) / spread
    return out


# --------------------------------------------------------------------------------------
# Resampling to a common pixel size
# --------------------------------------------------------------------------------------
def resample_to_pixel_size(
    image: np.ndarray,
    pixel_size_nm: float,
    target_pixel_size_nm: float,
    *,
    order: int = 1,
    is_label: bool = False,
) -> tuple[np.ndarray, float]:
    """Resample a 2-D image or label map to (almost exactly) a target pixel size.

    A CNN's receptive field and learned filters are measured in pixels. A network trained on
    particles 20–60 px across sees something else in a micrograph recorded at three times the
    magnification. Resampling every micrograph to one physical scale (nm/px) for training and
    for use makes a particle of a given size in nm span the same number of pixels, so the
    network's size range maps to a size range in nm.

    The output shape is rounded to whole pixels, so the achieved pixel size differs slightly
    from the target. One isotropic scale factor is used for both axes (set by the longer
    axis), so the returned pixel size is exact for both axes; along the shorter axis the field
    of view may differ from the input's by less than half an output pixel.

    Parameters
    ----------
    image : numpy.ndarray
        2-D image (any real dtype) or integer label map.
    pixel_size_nm : float
        Pixel size of ``image`` in nm/px.
    target_pixel_size_nm : float
        Wanted pixel size in nm/px.
    order : int
        Spline order for images (0–5; 1 = bilinear). Ignored when ``is_label`` (always 0).
    is_label : bool
        Treat ``image`` as a label map: nearest-neighbour sampling, no anti-aliasing, dtype
        kept, so no new label values can appear.

    Returns
    -------
    resampled : numpy.ndarray
        float32 for images; the input dtype for label maps.
    new_pixel_size_nm : float
        The pixel size actually achieved, in nm/px.

    Notes
    -----
    When shrinking, images are low-pass filtered first with a Gaussian of
    σ = (1/zoom − 1)/2 input pixels (as ``skimage.transform.rescale(anti_aliasing=True)``),
    otherwise lattice fringes and noise finer than the new Nyquist limit would alias into
    false low-frequency patterns (moiré).
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"image must be 2-D (H, W); got shape {image.shape}.")
    sizes = {"pixel_size_nm": pixel_size_nm, "target_pixel_size_nm": target_pixel_size_nm}
    for name, value in sizes.items():
        if not isinstance(value, int | float | np.number) or not np.isfinite(value) or value <= 0:
            raise ValueError(
                f"{name} must be a positive number of nm per pixel, got {value!r}. Read the "
                "calibration from the file header (etem_helpers.io.read_micrograph) or pass it "
                "explicitly; never assume 1 nm/px."
            )
    if is_label and not (np.issubdtype(image.dtype, np.integer) or image.dtype == bool):
        raise ValueError(f"is_label=True needs an integer or bool label map, got {image.dtype}.")
    if not 0 <= order <= 5:
        raise ValueError(f"order must be between 0 and 5, got {order}.")

    shape = np.array(image.shape)
    long_axis = int(np.argmax(shape))
    n_long = int(shape[long_axis])
    new_long = max(1, round(n_long * pixel_size_nm / target_pixel_size_nm))
    zoom = new_long / n_long  # output pixels per input pixel, both axes
    new_shape = tuple(max(1, round(int(n) * zoom)) for n in shape)
    new_pixel_size_nm = float(pixel_size_nm / zoom)

    if new_shape == tuple(shape) and zoom == 1.0:
        out = image.copy() if is_label else image.astype(np.float32)
        return out, new_pixel_size_nm

    # Output pixel centre i maps to input coordinate (i + 0.5) / zoom - 0.5 (pixel areas
    # aligned at the top-left corner).
    matrix = np.full(2, 1.0 / zoom)
    offset = np.full(2, 0.5 / zoom - 0.5)
    if is_label:
        source = image.astype(np.int64) if image.dtype == bool else image
        out = ndimage.affine_transform(
            source, matrix, offset=offset, output_shape=new_shape, order=0, mode="nearest"
        )
        return out.astype(image.dtype), new_pixel_size_nm

    data = image.astype(np.float32)
    if zoom < 1.0:
        sigma = (1.0 / zoom - 1.0) / 2.0
        data = ndimage.gaussian_filter(data, sigma=sigma, mode="reflect")
    out = ndimage.affine_transform(
        data, matrix, offset=offset, output_shape=new_shape, order=order, mode="nearest"
    )
    return out.astype(np.float32), new_pixel_size_nm


# --------------------------------------------------------------------------------------
# Tiling and stitching
# --------------------------------------------------------------------------------------
# This is the package's one tiling implementation: the training dataset (grid mode), the
# tile/stitch helpers below and the tiled U-Net inference of
# :func:`etem_helpers.segment.predict_probabilities` all use these positions and windows.
def _tile_shape(tile_px: int | Sequence[int]) -> tuple[int, int]:
    """(tile height, tile width) in pixels from an int (square) or a (height, width) pair."""
    if isinstance(tile_px, int | np.integer):
        sides = (tile_px, tile_px)
    else:
        try:
            sides = tuple(tile_px)
        except TypeError:
            sides = (tile_px, tile_px)
    if len(sides) != 2 or any(
        isinstance(s, bool) or not isinstance(s, int | np.integer | float) or int(s) != s or s < 1
        for s in sides
    ):
        raise ValueError(
            f"tile_px must be a positive integer or a (height, width) pair of them, got "
            f"{tile_px!r}."
        )
    return int(sides[0]), int(sides[1])


def _check_tile_args(tile_px: int | Sequence[int], overlap_px: int) -> tuple[int, int]:
    """Validate tile side(s) and overlap; return the tile shape (height, width) in pixels."""
    shape = _tile_shape(tile_px)
    smallest = min(shape)
    if isinstance(overlap_px, bool) or int(overlap_px) != overlap_px or not (
        0 <= overlap_px < smallest
    ):
        raise ValueError(
            f"overlap_px must be an integer with 0 <= overlap_px < tile_px={smallest}, "
            f"got {overlap_px!r}."
        )
    return shape


def _axis_starts(length: int, tile_px: int, overlap_px: int) -> list[int]:
    if length <= tile_px:
        return [0]
    step = tile_px - overlap_px
    starts = list(range(0, length - tile_px, step))
    starts.append(length - tile_px)  # last tile snapped to the edge
    return sorted(set(starts))


def tile_positions(
    image_shape: Sequence[int], *, tile_px: int | Sequence[int], overlap_px: int
) -> np.ndarray:
    """Top-left corners of the tiles covering an image.

    Parameters
    ----------
    image_shape : sequence of int
        (H, W) of the image in pixels (extra leading entries are ignored).
    tile_px : int or (int, int)
        Tile side in pixels, or (height, width) for rectangular tiles.
    overlap_px : int
        Minimum overlap between neighbouring tiles in pixels (0 <= overlap_px < tile_px).
        The last row and column of tiles are snapped to the image edge, so they may overlap
        their neighbours more. Tiles per axis: ``ceil((L - overlap_px) / (tile_px -
        overlap_px))`` for an axis of L > tile_px pixels, e.g. 2 tiles of 544 px (or 3 of
        512 px) for 1024 px with 64 px overlap.

    Returns
    -------
    numpy.ndarray
        int64 array (N, 2) of (y, x) in pixels, row-major order. Images smaller than a tile
        along an axis get the single start 0 (they are padded at the bottom/right).
    """
    tile_h, tile_w = _check_tile_args(tile_px, overlap_px)
    height, width = (int(n) for n in tuple(image_shape)[-2:])
    ys = _axis_starts(height, tile_h, overlap_px)
    xs = _axis_starts(width, tile_w, overlap_px)
    return np.array([(y, x) for y in ys for x in xs], dtype=np.int64).reshape(-1, 2)


def _pad_to_tile(image: np.ndarray, tile_px: int | Sequence[int]) -> np.ndarray:
    """Reflect-pad the last two axes at the bottom/right up to at least the tile shape."""
    tile_h, tile_w = _tile_shape(tile_px)
    height, width = image.shape[-2:]
    pad_y, pad_x = max(0, tile_h - height), max(0, tile_w - width)
    if pad_y == 0 and pad_x == 0:
        return image
    pad = [(0, 0)] * (image.ndim - 2) + [(0, pad_y), (0, pad_x)]
    # numpy's reflect needs at least 2 samples along an axis; symmetric works for 1.
    mode = "reflect" if min(height, width) > 1 else "symmetric"
    return np.pad(image, pad, mode=mode)


def iter_tiles(
    image: np.ndarray, *, tile_px: int | Sequence[int], overlap_px: int
) -> Iterator[tuple[np.ndarray, tuple[int, int]]]:
    """Yield ``(tile, (y, x))`` one at a time (bounded memory for huge images).

    Same tiles and positions as :func:`tile_image`; tiles are views where possible (only an
    image smaller than a tile is copied, to pad it).

    Parameters
    ----------
    image : numpy.ndarray
        (H, W) or (C, H, W) array.
    tile_px : int or (int, int)
        Tile side (or (height, width)) in pixels, see :func:`tile_positions`.
    overlap_px : int
        Minimum overlap in pixels, see :func:`tile_positions`.
    """
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ValueError(f"image must be (H, W) or (C, H, W); got shape {image.shape}.")
    tile_h, tile_w = _check_tile_args(tile_px, overlap_px)
    positions = tile_positions(image.shape, tile_px=(tile_h, tile_w), overlap_px=overlap_px)
    padded = _pad_to_tile(image, (tile_h, tile_w))
    for y, x in positions:
        yield padded[..., y : y + tile_h, x : x + tile_w], (int(y), int(x))


def tile_image(
    image: np.ndarray, *, tile_px: int | Sequence[int], overlap_px: int
) -> tuple[np.ndarray, np.ndarray]:
    """Cut an image into overlapping tiles that cover every pixel.

    Parameters
    ----------
    image : numpy.ndarray
        (H, W) or (C, H, W) array of any dtype.
    tile_px : int or (int, int)
        Tile side in pixels (square tiles), or (height, width).
    overlap_px : int
        Minimum overlap between neighbouring tiles in pixels; use about the receptive-field
        margin of the network (predictions near tile edges are less reliable).

    Returns
    -------
    tiles : numpy.ndarray
        (N, tile_h, tile_w) or (N, C, tile_h, tile_w), dtype of ``image``.
    positions : numpy.ndarray
        (N, 2) int64 top-left (y, x) of each tile in image pixels.

    Notes
    -----
    An image smaller than a tile along an axis is reflect-padded at the bottom/right. The
    positions are in the original image's coordinates, so the original shape (which the
    caller has: ``image.shape``) is all :func:`stitch_tiles` needs to undo the padding.
    This holds every tile in memory; for huge images use :func:`iter_tiles` with a
    :class:`TileStitcher`.
    """
    pairs = list(iter_tiles(image, tile_px=tile_px, overlap_px=overlap_px))
    tiles = np.stack([np.array(tile) for tile, _ in pairs])
    positions = np.array([pos for _, pos in pairs], dtype=np.int64).reshape(-1, 2)
    return tiles, positions


def _taper(tile_px: int, overlap_px: int, *, start: bool, end: bool) -> np.ndarray:
    """1-D raised-cosine window, tapered only on the sides that have a neighbour.

    The ramp ``0.5 - 0.5 cos(pi (i + 0.5) / overlap_px)`` never reaches 0, so every pixel
    covered by a tile gets a positive weight.
    """
    window = np.ones(tile_px, dtype=np.float64)
    if overlap_px > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(overlap_px) + 0.5) / overlap_px)
        if start:
            window[:overlap_px] = np.minimum(window[:overlap_px], ramp)
        if end:
            window[-overlap_px:] = np.minimum(window[-overlap_px:], ramp[::-1])
    return window


class TileStitcher:
    """Accumulate tiles one by one into a blended image (bounded memory).

    Holds one float32 sum array (C, H, W) and one float32 weight array (H, W) for the padded
    image, allocated once; each tile is weighted by a raised-cosine window that tapers over
    ``overlap_px`` on the sides shared with a neighbour, so seams are smooth and a pixel
    covered by one tile only gets that tile's value. :meth:`result` divides in place, so the
    whole stitch needs about (C + 1) × H × W × 4 bytes.

    Parameters
    ----------
    image_shape : sequence of int
        (H, W) of the original (unpadded) image in pixels.
    tile_px : int or (int, int)
        Tile side (or (height, width)) in pixels, as given to :func:`tile_image`.
    overlap_px : int
        Overlap in pixels, as given to :func:`tile_image`; the width of the blending ramp.
    n_channels : int or None
        Channels per tile, or None for 2-D tiles.

    Examples
    --------
    >>> stitcher = TileStitcher((300, 500), tile_px=128, overlap_px=16)
    >>> for tile, pos in iter_tiles(image, tile_px=128, overlap_px=16):  # doctest: +SKIP
    ...     stitcher.add(predict(tile), pos)
    >>> probability = stitcher.result()  # doctest: +SKIP
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        *,
        tile_px: int | Sequence[int],
        overlap_px: int,
        n_channels: int | None = None,
    ) -> None:
        self.tile_shape = _check_tile_args(tile_px, overlap_px)
        self.image_shape = tuple(int(n) for n in tuple(image_shape)[-2:])
        self.tile_px = tile_px
        self.overlap_px = int(overlap_px)
        self.n_channels = n_channels
        height, width = self.image_shape
        tile_h, tile_w = self.tile_shape
        self._padded_shape = (max(height, tile_h), max(width, tile_w))
        channels = 1 if n_channels is None else int(n_channels)
        self._sum: np.ndarray | None = np.zeros((channels, *self._padded_shape), np.float32)
        self._weight: np.ndarray | None = np.zeros(self._padded_shape, dtype=np.float32)
        self._result: np.ndarray | None = None

    def _window(self, length: int, tile: int, start: int) -> np.ndarray:
        return _taper(tile, self.overlap_px, start=start > 0, end=start + tile < length)

    def add(self, tile: np.ndarray, position: Sequence[int]) -> None:
        """Add one tile (2-D, or (C, h, w) when ``n_channels`` is set) at top-left (y, x)."""
        if self._sum is None:
            raise ValueError(
                "This TileStitcher is finished (result() was called); make a new one."
            )
        tile = np.asarray(tile, dtype=np.float32)
        expected = self.tile_shape
        if self.n_channels is None:
            if tile.shape != expected:
                raise ValueError(f"Expected a tile of shape {expected}, got {tile.shape}.")
            tile = tile[None]
        elif tile.shape != (self.n_channels, *expected):
            raise ValueError(
                f"Expected a tile of shape {(self.n_channels, *expected)}, got {tile.shape}."
            )
        y, x = (int(v) for v in position)
        height, width = self._padded_shape
        tile_h, tile_w = expected
        if not (0 <= y <= height - tile_h and 0 <= x <= width - tile_w):
            raise ValueError(
                f"Tile position {(y, x)} does not fit the image of padded shape "
                f"{self._padded_shape} with tiles of {expected}."
            )
        weight = np.outer(
            self._window(height, tile_h, y), self._window(width, tile_w, x)
        ).astype(np.float32)
        region = (slice(y, y + tile_h), slice(x, x + tile_w))
        tile = tile * weight
        self._sum[(slice(None), *region)] += tile
        self._weight[region] += weight

    def result(self) -> np.ndarray:
        """Blended float32 image (H, W) or (C, H, W), padding removed.

        The division by the summed weights is done in place (no full-size temporary), so
        the stitcher is finished afterwards: :meth:`add` raises, and further calls return
        the same array.

        Raises
        ------
        ValueError
            If some pixel was not covered by any tile.
        """
        if self._result is not None:
            return self._result
        height, width = self.image_shape
        weight = self._weight[:height, :width]
        if np.any(weight <= 0):
            raise ValueError(
                "Some pixels were not covered by any tile; pass all tiles and positions "
                "returned by tile_image/iter_tiles for this image shape."
            )
        out = self._sum[:, :height, :width]
        np.divide(out, weight, out=out)
        if self._padded_shape != self.image_shape:
            out = np.ascontiguousarray(out)  # small: only images smaller than a tile pad
        self._result = out[0] if self.n_channels is None else out
        self._sum = self._weight = None
        return self._result


def stitch_tiles(
    tiles: np.ndarray | Iterable[np.ndarray],
    positions: np.ndarray | Sequence[Sequence[int]],
    image_shape: Sequence[int],
    *,
    overlap_px: int,
    blend: str = "cosine",
) -> np.ndarray:
    """Blend overlapping tiles back into one image (inverse of :func:`tile_image`).

    Parameters
    ----------
    tiles : numpy.ndarray or iterable of numpy.ndarray
        (N, h, w) or (N, C, h, w), e.g. network outputs per tile; an iterable of tiles is
        consumed one at a time.
    positions : array-like
        (N, 2) top-left (y, x) in pixels, as returned by :func:`tile_image`.
    image_shape : sequence of int
        (H, W) of the original image (a longer shape uses its last two entries).
    overlap_px : int
        The overlap used for tiling, in pixels; sets the width of the blending ramp.
    blend : {"cosine", "mean"}
        ``"cosine"``: raised-cosine weights over the overlaps; ``"mean"``: plain average.

    Returns
    -------
    numpy.ndarray
        float32 (H, W) or (C, H, W). Tiles of an unchanged image give the image back exactly
        (up to float32 rounding).
    """
    if blend not in ("cosine", "mean"):
        raise ValueError(f"blend={blend!r} is not known; use 'cosine' or 'mean'.")
    positions = np.asarray(positions, dtype=np.int64).reshape(-1, 2)
    iterator = iter(tiles)
    stitcher: TileStitcher | None = None
    count = 0
    for tile, position in zip(iterator, positions, strict=False):
        tile = np.asarray(tile)
        if stitcher is None:
            if tile.ndim not in (2, 3):
                raise ValueError(f"Tiles must be (h, w) or (C, h, w); got {tile.shape}.")
            stitcher = TileStitcher(
                image_shape,
                tile_px=tile.shape[-2:],
                overlap_px=overlap_px if blend == "cosine" else 0,
                n_channels=tile.shape[0] if tile.ndim == 3 else None,
            )
        stitcher.add(tile, position)
        count += 1
    if stitcher is None or count != len(positions):
        raise ValueError(
            f"Got {count} tiles for {len(positions)} positions; pass one tile per position."
        )
    return stitcher.result()


# --------------------------------------------------------------------------------------
# Splits
# --------------------------------------------------------------------------------------
def _split_counts(n: int, fractions: Sequence[float]) -> list[int]:
    exact = [n * f for f in fractions]
    counts = [math.floor(e) for e in exact]
    remainders = [e - c for e, c in zip(exact, counts, strict=True)]
    # Largest remainder (Hamilton): ties go to the earlier split (train, then val).
    for index in sorted(range(len(counts)), key=lambda i: -remainders[i])[: n - sum(counts)]:
        counts[index] += 1
    # Non-empty splits when possible: take one item from the largest split.
    wanted = [i for i, f in enumerate(fractions) if f > 0]
    if n >= len(wanted):
        for index in wanted:
            if counts[index] == 0:
                donor = int(np.argmax(counts))
                counts[donor] -= 1
                counts[index] += 1
    return counts


def split_by_micrograph(
    micrograph_ids: Iterable[Any],
    *,
    fractions: Sequence[float] = (0.70, 0.15, 0.15),
    seed: int = 0,
) -> dict[str, list]:
    """Split micrographs (not tiles, not particles) into train / val / test.

    All tiles and particles of a micrograph share its noise, defocus and neighbours, so a
    micrograph cut across two splits leaks test information into training. Splitting the
    micrograph ids avoids that.

    Parameters
    ----------
    micrograph_ids : iterable
        Ids (duplicates allowed, e.g. one per tile or particle; each id is placed once).
    fractions : sequence of 3 float
        Train, val and test fractions (non-negative, sum 1).
    seed : int
        Seed of the shuffle; the same ids and seed give the same split in any order.

    Returns
    -------
    dict
        ``{"train": [...], "val": [...], "test": [...]}``, ids sorted within each split.

    Notes
    -----
    Counts use the largest-remainder rule: each split first gets ``floor(n·fraction)``
    micrographs, the left-over ones go to the splits with the largest fractional parts, so
    every count is within one micrograph of ``n·fraction``. Then, if n is at least the number
    of splits with a positive fraction, an empty split takes one micrograph from the largest
    split (for n = 3 and 70/15/15 this gives 1/1/1, a deliberate departure from the
    fractions so that validation and test are never empty).
    """
    fractions = [float(f) for f in fractions]
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(
            f"fractions must be three non-negative numbers (train, val, test) summing to 1, "
            f"got {tuple(fractions)}."
        )
    unique = sorted(set(micrograph_ids), key=lambda v: (str(type(v)), v))
    rng = np.random.default_rng(seed)
    order = [unique[i] for i in rng.permutation(len(unique))]
    counts = _split_counts(len(unique), fractions)
    splits: dict[str, list] = {}
    start = 0
    for name, count in zip(SPLIT_NAMES, counts, strict=True):
        splits[name] = sorted(order[start : start + count], key=lambda v: (str(type(v)), v))
        start += count
    return splits


def assign_split_column(
    manifest: pd.DataFrame,
    *,
    id_column: str = "micrograph_id",
    fractions: Sequence[float] = (0.70, 0.15, 0.15),
    seed: int = 0,
    column: str = "split",
) -> pd.DataFrame:
    """Return a copy of a table with a ``split`` column from :func:`split_by_micrograph`.

    Works for the manifest (one row per micrograph) and for particle or tile tables (many
    rows per micrograph: all rows of a micrograph get the same split).

    Parameters
    ----------
    manifest : pandas.DataFrame
        Table with an ``id_column``.
    id_column : str
        Column holding the micrograph id.
    fractions, seed
        As in :func:`split_by_micrograph`.
    column : str
        Name of the new column.
    """
    if id_column not in manifest.columns:
        raise KeyError(
            f"Column {id_column!r} not in the table (columns: {list(manifest.columns)}); "
            "pass id_column=... naming the micrograph id column."
        )
    splits = split_by_micrograph(manifest[id_column], fractions=fractions, seed=seed)
    lookup = {mid: name for name, ids in splits.items() for mid in ids}
    out = manifest.copy()
    out[column] = out[id_column].map(lookup)
    return out


# --------------------------------------------------------------------------------------
# Reading a dataset directory
# --------------------------------------------------------------------------------------
def _dataset_file(dataset_dir: str | Path, name: str) -> Path:
    path = Path(dataset_dir) / name
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found. Expected a dataset directory written by "
            "etem_helpers.simulate (images/, labels/, manifest.csv, particles.csv)."
        )
    return path


def read_manifest(dataset_dir: str | Path) -> pd.DataFrame:
    """Read ``manifest.csv`` of a dataset directory (``micrograph_id`` as str).

    Parameters
    ----------
    dataset_dir : str or pathlib.Path
        Dataset directory.
    """
    return pd.read_csv(_dataset_file(dataset_dir, "manifest.csv"), dtype={"micrograph_id": str})


def read_particles(dataset_dir: str | Path) -> pd.DataFrame:
    """Read ``particles.csv`` of a dataset directory (``micrograph_id`` as str).

    Parameters
    ----------
    dataset_dir : str or pathlib.Path
        Dataset directory.
    """
    return pd.read_csv(
        _dataset_file(dataset_dir, "particles.csv"), dtype={"micrograph_id": str}
    )


# --------------------------------------------------------------------------------------
# Augmentation
# --------------------------------------------------------------------------------------
def _geometric(
    image: np.ndarray, labels: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One of the 8 symmetries of the square, identical for image and labels."""
    k = int(rng.integers(4))
    flip = bool(rng.integers(2))
    image, labels = np.rot90(image, k), np.rot90(labels, k)
    if flip:
        image, labels = image[:, ::-1], labels[:, ::-1]
    return np.ascontiguousarray(image), np.ascontiguousarray(labels)


def _intensity(
    image: np.ndarray,
    rng: np.random.Generator,
    *,
    blur_probability: float = 0.3,
    max_blur_sigma_px: float = 1.2,
) -> np.ndarray:
    """Image-only changes on a [0, 1]-normalised image: contrast, gamma, blur, dose noise."""
    out = image.astype(np.float32, copy=True)
    if rng.random() < 0.8:  # contrast and brightness
        contrast = rng.uniform(0.7, 1.3)
        mean = float(out.mean())
        out = (out - mean) * contrast + mean + rng.uniform(-0.1, 0.1)
    if rng.random() < 0.5:  # gamma (monotonic)
        out = np.clip(out, 0.0, 1.0) ** rng.uniform(0.7, 1.5)
    if rng.random() < blur_probability:  # defocus / drift / vibration blur
        out = ndimage.gaussian_filter(out, sigma=rng.uniform(0.3, max_blur_sigma_px))
    if rng.random() < 0.5:  # lower dose: Poisson noise on 20–500 counts at intensity 1
        counts_at_one = rng.uniform(20.0, 500.0)
        out = rng.poisson(np.clip(out, 0.0, None) * counts_at_one) / counts_at_one
    return np.asarray(out, dtype=np.float32)


def augment_pair(
    image: np.ndarray,
    labels: np.ndarray,
    *,
    rng: np.random.Generator,
    geometric: bool = True,
    intensity: bool = True,
    blur_probability: float = 0.3,
    max_blur_sigma_px: float = 1.2,
) -> tuple[np.ndarray, np.ndarray]:
    """Randomly augment an image crop and its label map, keeping them aligned.

    Geometric changes (90° rotations and flips: exact, no interpolation) are applied to the
    image and the *label map* identically, before targets are computed from the labels.
    Intensity changes (contrast/brightness, gamma, Gaussian blur, Poisson noise at a random
    lower dose) touch the image only.

    Parameters
    ----------
    image : numpy.ndarray
        (t, t) image normalised to about [0, 1].
    labels : numpy.ndarray
        (t, t) instance label map.
    rng : numpy.random.Generator
        Source of randomness (e.g. ``numpy.random.default_rng(seed)``).
    geometric, intensity : bool
        Which kinds of augmentation to apply.
    blur_probability : float
        Probability (0–1) of a Gaussian blur (intensity augmentation). The labels are not
        blurred, so the network learns where the edge of a blurred particle lies.
    max_blur_sigma_px : float
        The blur's standard deviation is drawn uniformly from 0.3 px to this (pixels, >= 0.3).

    Returns
    -------
    image : numpy.ndarray
        float32 (t, t).
    labels : numpy.ndarray
        (t, t), same dtype and label values as the input.
    """
    if image.shape != labels.shape:
        raise ValueError(
            f"image {image.shape} and labels {labels.shape} must have the same shape."
        )
    if not 0.0 <= blur_probability <= 1.0:
        raise ValueError(f"blur_probability={blur_probability!r} must be in [0, 1].")
    if not max_blur_sigma_px >= 0.3:
        raise ValueError(f"max_blur_sigma_px={max_blur_sigma_px!r} must be >= 0.3 (pixels).")
    if geometric:
        image, labels = _geometric(image, labels, rng)
    if intensity:
        image = _intensity(
            image, rng, blur_probability=blur_probability, max_blur_sigma_px=max_blur_sigma_px
        )
    return np.asarray(image, dtype=np.float32), labels


# --------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TileItem:
    """One dataset item: which micrograph, and the tile corner (None for random crops)."""

    micrograph_id: str
    y: int | None = None
    x: int | None = None


def _read_labels(path: Path) -> np.ndarray:
    import tifffile

    return np.asarray(tifffile.imread(path))


class SegmentationDataset(_TorchDataset):
    """Crops or tiles of simulated micrographs with aligned segmentation targets.

    Each micrograph is read once (``etem_helpers.io.read_micrograph`` for the image,
    tifffile for the labels), optionally resampled to ``target_pixel_size_nm``, normalised
    over the whole micrograph (as at inference), reflect-padded if smaller than a tile, and
    kept in memory (the course datasets are small).

    Parameters
    ----------
    dataset_dir : str or pathlib.Path
        Dataset directory (``manifest.csv``, ``images/``, ``labels/``).
    micrograph_ids : sequence or None
        Micrographs to use (e.g. ``split["train"]``); None uses all in the manifest.
    tile_px : int
        Side of the crops in pixels.
    mode : {"random", "grid"}
        ``"random"``: ``tiles_per_image`` random crops per micrograph (training).
        ``"grid"``: the regular tile grid of :func:`tile_positions` (validation, testing).
    tiles_per_image : int
        Random crops per micrograph per epoch (``mode="random"`` only).
    overlap_px : int
        Overlap of the grid tiles in pixels (``mode="grid"`` only).
    target_pixel_size_nm : float or None
        Resample every micrograph to this pixel size (nm/px); None keeps each file's own.
    target : {"instances", "foreground"}
        ``"instances"``: (2, t, t) from ``etem_helpers.instances.labels_to_targets``
        (foreground, touching boundary). ``"foreground"``: (1, t, t) labels > 0.
    augment : bool
        Apply random flips and 90° rotations (image and labels alike).
    intensity_augment : bool
        With ``augment``, also apply contrast, gamma, blur and dose noise to the image.
    blur_probability, max_blur_sigma_px : float
        The blur of the intensity augmentation (see :func:`augment_pair`).
    normalize : {"percentile", "zscore"}
        Method passed to :func:`normalize_image`.
    seed : int
        Item ``i`` uses ``numpy.random.default_rng([seed, epoch, i])``: identical results for
        any number of DataLoader workers; call :meth:`set_epoch` to draw new crops each epoch.

    Attributes
    ----------
    items : list of TileItem
        ``items[i].micrograph_id`` is the micrograph of item ``i`` (for leakage checks).
    micrograph_ids : list of str
        Micrographs in this dataset.
    pixel_sizes_nm : dict
        Pixel size (nm/px) used for each micrograph after resampling (filled when read).
    """

    def __init__(
        self,
        dataset_dir: str | Path,
        micrograph_ids: Sequence[Any] | None = None,
        *,
        tile_px: int = 256,
        mode: str = "random",
        tiles_per_image: int = 8,
        overlap_px: int = 32,
        target_pixel_size_nm: float | None = None,
        target: str = "instances",
        augment: bool = False,
        intensity_augment: bool = True,
        blur_probability: float = 0.3,
        max_blur_sigma_px: float = 1.2,
        normalize: str = "percentile",
        seed: int = 0,
    ) -> None:
        if mode not in ("random", "grid"):
            raise ValueError(f"mode={mode!r} is not known; use 'random' or 'grid'.")
        if target not in ("instances", "foreground"):
            raise ValueError(f"target={target!r} is not known; use 'instances' or 'foreground'.")
        if mode == "random" and (int(tiles_per_image) != tiles_per_image or tiles_per_image < 1):
            raise ValueError(f"tiles_per_image must be a positive integer, got {tiles_per_image}.")
        _check_tile_args(tile_px, overlap_px)
        self.dataset_dir = Path(dataset_dir)
        self.tile_px = int(tile_px)
        self.mode = mode
        self.tiles_per_image = int(tiles_per_image)
        self.overlap_px = int(overlap_px)
        self.target_pixel_size_nm = target_pixel_size_nm
        self.target = target
        self.augment = bool(augment)
        self.intensity_augment = bool(intensity_augment)
        self.blur = {"blur_probability": float(blur_probability),
                     "max_blur_sigma_px": float(max_blur_sigma_px)}
        self.normalize = normalize
        self.seed = int(seed)
        self.epoch = 0
        self.pixel_sizes_nm: dict[str, float] = {}
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

        manifest = read_manifest(self.dataset_dir)
        duplicated = manifest["micrograph_id"][manifest["micrograph_id"].duplicated()]
        if len(duplicated):
            raise ValueError(
                f"{self.dataset_dir / 'manifest.csv'} lists micrograph ids more than once: "
                f"{sorted(set(duplicated))[:10]}; each micrograph needs a unique id."
            )
        manifest = manifest.set_index("micrograph_id", drop=False)
        if micrograph_ids is None:
            ids = list(manifest.index)
        else:
            ids = [str(mid) for mid in micrograph_ids]
            missing = sorted(set(ids) - set(manifest.index))
            if missing:
                raise ValueError(
                    f"micrograph_ids not in {self.dataset_dir / 'manifest.csv'}: "
                    f"{missing[:10]}{' ...' if len(missing) > 10 else ''}."
                )
        if not ids:
            raise ValueError("No micrographs selected; micrograph_ids is empty.")
        self._manifest = manifest
        self.micrograph_ids = ids

        self.items: list[TileItem] = []
        for mid in ids:
            if mode == "random":
                self.items.extend(TileItem(mid) for _ in range(self.tiles_per_image))
            else:
                image, _ = self._load(mid)
                for y, x in tile_positions(
                    image.shape, tile_px=self.tile_px, overlap_px=self.overlap_px
                ):
                    self.items.append(TileItem(mid, int(y), int(x)))

    def __len__(self) -> int:
        return len(self.items)

    def set_epoch(self, epoch: int) -> None:
        """Change the random crops and augmentations (deterministically) for a new epoch."""
        self.epoch = int(epoch)

    def _load(self, micrograph_id: str) -> tuple[np.ndarray, np.ndarray]:
        """Read, resample, normalise and pad one micrograph (cached)."""
        if micrograph_id in self._cache:
            return self._cache[micrograph_id]
        from etem_helpers.io import read_micrograph

        row = self._manifest.loc[micrograph_id]
        image_path = self.dataset_dir / str(row["image_path"])
        labels_path = self.dataset_dir / str(row["labels_path"])
        image, pixel_size_nm, _ = read_micrograph(image_path, require_calibration=False)
        image = np.asarray(image)
        labels = _read_labels(labels_path)
        if image.shape != labels.shape:
            raise ValueError(
                f"{image_path} has shape {image.shape} but {labels_path} has {labels.shape}; "
                "images and label maps must match."
            )
        if pixel_size_nm is None and "pixel_size_nm" in row and pd.notna(row["pixel_size_nm"]):
            pixel_size_nm = float(row["pixel_size_nm"])
        if self.target_pixel_size_nm is not None:
            if pixel_size_nm is None:
                raise ValueError(
                    f"{image_path} has no pixel size (header and manifest), so it cannot be "
                    "resampled to target_pixel_size_nm; fix the file or pass "
                    "target_pixel_size_nm=None."
                )
            image, new_size = resample_to_pixel_size(
                image, pixel_size_nm, self.target_pixel_size_nm
            )
            labels, _ = resample_to_pixel_size(
                labels, pixel_size_nm, self.target_pixel_size_nm, is_label=True
            )
            pixel_size_nm = new_size
        if pixel_size_nm is not None:
            self.pixel_sizes_nm[micrograph_id] = float(pixel_size_nm)
        image = normalize_image(image, method=self.normalize)
        # Pad image and labels the same way (reflect) so that they stay aligned.
        image = _pad_to_tile(image, self.tile_px)
        labels = _pad_to_tile(labels, self.tile_px)
        self._cache[micrograph_id] = (image, labels)
        return image, labels

    def _targets(self, labels: np.ndarray) -> np.ndarray:
        if self.target == "foreground":
            return (labels > 0).astype(np.float32)[None]
        from etem_helpers.instances import labels_to_targets

        return np.asarray(labels_to_targets(labels), dtype=np.float32)

    def __getitem__(self, index: int):
        import torch

        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items.")
        index = index % len(self)
        item = self.items[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        image, labels = self._load(item.micrograph_id)
        t = self.tile_px
        if item.y is None:
            y = int(rng.integers(image.shape[0] - t + 1))
            x = int(rng.integers(image.shape[1] - t + 1))
        else:
            y, x = item.y, item.x
        image_crop = image[y : y + t, x : x + t]
        labels_crop = labels[y : y + t, x : x + t]
        if self.augment:
            image_crop, labels_crop = augment_pair(
                image_crop, labels_crop, rng=rng, intensity=self.intensity_augment, **self.blur
            )
        targets = self._targets(np.ascontiguousarray(labels_crop))
        image_tensor = torch.from_numpy(np.ascontiguousarray(image_crop, dtype=np.float32)[None])
        return image_tensor, torch.from_numpy(np.ascontiguousarray(targets))


# --------------------------------------------------------------------------------------
# Dataset card
# --------------------------------------------------------------------------------------
_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def _summary(values: pd.Series) -> dict[str, Any]:
    values = pd.to_numeric(values, errors="coerce").dropna()
    if values.empty:
        return {"n": 0}
    out: dict[str, Any] = {"n": int(values.size), "mean": float(values.mean())}
    for q in _QUANTILES:
        out[f"q{round(q * 100):02d}"] = float(values.quantile(q))
    out["min"], out["max"] = float(values.min()), float(values.max())
    return out


def _bool_count(values: pd.Series) -> dict[str, int]:
    """Count true/false in a column that may be bool, 0/1, or "True"/"False" text with gaps."""
    values = values.dropna()
    if not pd.api.types.is_bool_dtype(values):
        lookup = {"true": True, "false": False, "1": True, "0": False, "1.0": True, "0.0": False}
        values = values.astype(str).str.strip().str.lower().map(lookup).dropna()
    values = values.astype(bool)
    return {"true": int(values.sum()), "false": int((~values).sum())}


def dataset_card(
    dataset_dir: str | Path, *, splits: dict[str, Sequence[Any]] | None = None
) -> dict[str, Any]:
    """Summarise a dataset directory as a JSON-serialisable dict.

    Parameters
    ----------
    dataset_dir : str or pathlib.Path
        Dataset directory with ``manifest.csv`` and ``particles.csv``.
    splits : dict or None
        Output of :func:`split_by_micrograph`; adds per-split counts.

    Returns
    -------
    dict
        ``n_micrographs``, ``n_particles``, ``regimes`` (micrographs per regime), ``kinds``
        (particles per kind), ``diameter_nm`` (quantiles per kind and ``"all"``),
        ``aspect_ratio`` (quantiles), ``faults`` (true/false counts of ``has_fault`` and
        ``fault_visible``, overall and per regime), ``pixel_size_nm``, ``dose_e_per_a2``,
        ``defocus_nm``, ``gas_fraction`` (quantiles over micrographs) and ``splits``.
    """
    manifest = read_manifest(dataset_dir)
    particles = read_particles(dataset_dir)
    card: dict[str, Any] = {
        "dataset_dir": str(Path(dataset_dir)),
        "n_micrographs": int(len(manifest)),
        "n_particles": int(len(particles)),
    }
    if "regime" in manifest.columns:
        card["regimes"] = {str(k): int(v) for k, v in manifest["regime"].value_counts().items()}
    if "kind" in particles.columns:
        card["kinds"] = {str(k): int(v) for k, v in particles["kind"].value_counts().items()}
    if "diameter_nm" in particles.columns:
        diameters = {"all": _summary(particles["diameter_nm"])}
        if "kind" in particles.columns:
            for kind, group in particles.groupby("kind"):
                diameters[str(kind)] = _summary(group["diameter_nm"])
        card["diameter_nm"] = diameters
    if "aspect_ratio" in particles.columns:
        card["aspect_ratio"] = _summary(particles["aspect_ratio"])
    faults: dict[str, Any] = {}
    regime_of = (
        manifest.set_index("micrograph_id")["regime"] if "regime" in manifest.columns else None
    )
    for column in ("has_fault", "fault_visible"):
        if column not in particles.columns:
            continue
        entry: dict[str, Any] = {"all": _bool_count(particles[column])}
        if regime_of is not None and "micrograph_id" in particles.columns:
            regimes = particles["micrograph_id"].map(regime_of)
            for regime, group in particles.groupby(regimes):
                entry[str(regime)] = _bool_count(group[column])
        faults[column] = entry
    if faults:
        card["faults"] = faults
    for column in ("pixel_size_nm", "dose_e_per_a2", "defocus_nm", "gas_fraction"):
        if column in manifest.columns:
            card[column] = _summary(manifest[column])
    if splits is not None:
        per_split = {}
        counts = (
            particles["micrograph_id"].value_counts()
            if "micrograph_id" in particles.columns
            else pd.Series(dtype=int)
        )
        known = set(manifest["micrograph_id"])
        for name, ids in splits.items():
            ids = [str(mid) for mid in ids]
            per_split[str(name)] = {
                "n_micrographs": int(sum(mid in known for mid in ids)),
                "n_particles": int(sum(int(counts.get(mid, 0)) for mid in ids)),
            }
        card["splits"] = per_split
    return card


def save_dataset_card(card: dict[str, Any], path: str | Path, *, overwrite: bool = False) -> Path:
    """Write a dataset card as JSON.

    Parameters
    ----------
    card : dict
        Output of :func:`dataset_card`.
    path : str or pathlib.Path
        Output file (parent directories are created).
    overwrite : bool
        Replace an existing file; otherwise an existing file raises ``FileExistsError``.

    Returns
    -------
    pathlib.Path
        The written path.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it.")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(card, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path


def plot_dataset_card(
    source: str | Path | pd.DataFrame, *, manifest: pd.DataFrame | None = None
):
    """Plot what a dataset contains (no ``plt.show``; the figure is returned).

    Four panels: diameter histograms per kind; micrographs per regime; fault balance
    (``has_fault`` and ``fault_visible``); pixel size against dose per micrograph.

    Parameters
    ----------
    source : str, pathlib.Path or pandas.DataFrame
        A dataset directory, or a particles table (then pass ``manifest`` for the regime and
        imaging panels).
    manifest : pandas.DataFrame or None
        Manifest table when ``source`` is a particles table.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    if isinstance(source, pd.DataFrame):
        particles = source
    else:
        particles = read_particles(source)
        manifest = read_manifest(source)

    fig = Figure(figsize=(10, 7), layout="constrained")
    ax_d, ax_r, ax_f, ax_p = fig.subplots(2, 2).ravel()

    if "diameter_nm" in particles.columns and len(particles):
        groups = particles.groupby("kind") if "kind" in particles.columns else [("all", particles)]
        bins = np.histogram_bin_edges(particles["diameter_nm"].dropna(), bins=30)
        for kind, group in groups:
            ax_d.hist(group["diameter_nm"].dropna(), bins=bins, alpha=0.6, label=str(kind))
        ax_d.legend(fontsize="small")
    ax_d.set(xlabel="diameter (nm)", ylabel="particles", title="Size by kind")

    regimes = None
    if manifest is not None and "regime" in manifest.columns:
        regimes = manifest["regime"].value_counts()
    if regimes is not None and len(regimes):
        ax_r.bar([str(k) for k in regimes.index], regimes.to_numpy())
    else:
        ax_r.text(0.5, 0.5, "no regime information", ha="center", va="center",
                  transform=ax_r.transAxes)
    ax_r.set(ylabel="micrographs", title="Imaging regime")

    columns = [c for c in ("has_fault", "fault_visible") if c in particles.columns]
    if columns:
        counts = [_bool_count(particles[c]) for c in columns]
        positions = np.arange(len(columns))
        ax_f.bar(positions - 0.2, [c["true"] for c in counts], width=0.4, label="true")
        ax_f.bar(positions + 0.2, [c["false"] for c in counts], width=0.4, label="false")
        ax_f.set_xticks(positions, columns)
        ax_f.legend(fontsize="small")
    else:
        ax_f.text(0.5, 0.5, "no fault labels", ha="center", va="center",
                  transform=ax_f.transAxes)
    ax_f.set(ylabel="particles", title="Fault balance")

    if manifest is not None and {"pixel_size_nm", "dose_e_per_a2"} <= set(manifest.columns):
        ax_p.scatter(manifest["pixel_size_nm"], manifest["dose_e_per_a2"], s=12)
        ax_p.set_xscale("log")
        ax_p.set_yscale("log")
    else:
        ax_p.text(0.5, 0.5, "no imaging metadata", ha="center", va="center",
                  transform=ax_p.transAxes)
    ax_p.set(xlabel="pixel size (nm/px)", ylabel="dose (e/Å²)", title="Imaging conditions")
    return fig
