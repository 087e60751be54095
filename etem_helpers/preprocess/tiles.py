"""Overlapping tiles for images of any size, and their exact (blended) inverse."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np


# --------------------------------------------------------------------------------------
# Tiling and stitching
# --------------------------------------------------------------------------------------
# This is the package's one tiling implementation: the training dataset (grid mode), the
# tile/stitch helpers below and the tiled U-Net inference of
# :func:`etem_helpers.segmentation.predict_probabilities` all use these positions and windows.
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

