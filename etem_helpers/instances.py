"""Instance targets and instance splitting for particle segmentation.

A semantic U-Net only says *where* particles are. To separate particles that touch, the
network in :mod:`etem_helpers.segment` predicts two channels:

0. foreground: the pixel belongs to some particle;
1. boundary: the pixel belongs to a particle **and** lies within a few pixels of a
   *different* particle (the contact zone between touching particles).

:func:`labels_to_targets` turns an instance label map into these two channels for training,
and :func:`split_instances` turns predicted probabilities back into an instance label map
(seeded watershed).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

__all__ = ["labels_to_targets", "split_instances"]


def _disk_footprint(radius_px: int) -> np.ndarray:
    """Boolean disk of the given radius (pixels), shape (2r+1, 2r+1)."""
    yy, xx = np.mgrid[-radius_px : radius_px + 1, -radius_px : radius_px + 1]
    return (yy * yy + xx * xx) <= radius_px * radius_px


def _check_2d(array: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError(
            f"`{name}` must be a 2-D array (H, W); got shape {array.shape}. "
            "Pass a single image, not a batch or a multi-channel stack."
        )
    return array


def labels_to_targets(labels: np.ndarray, *, boundary_width_px: int = 2) -> np.ndarray:
    """Make the two-channel training target (foreground, contact boundary) from instance labels.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W)
        Instance label map: 0 background, 1..N one id per particle (ids need not be
        consecutive).
    boundary_width_px : int, optional
        Half-width of the contact band, in pixels. A particle pixel is a boundary pixel when
        a pixel of a *different* nonzero instance lies within this Euclidean distance
        (pixels). Must be >= 1.

    Returns
    -------
    targets : ndarray of float32, shape (2, H, W)
        Channel 0 is 1 on foreground (``labels > 0``); channel 1 is 1 on the contact band
        between touching instances (a subset of the foreground) and 0 elsewhere. Contacts
        with the background or the image edge are **not** boundaries.

    Notes
    -----
    Computed without loops over ids: a grey dilation gives the largest id in the disk
    neighbourhood, and a grey erosion (with background set to the maximum id + 1) the
    smallest nonzero id; a pixel touches another instance when either differs from its own.

    Examples
    --------
    >>> lab = np.zeros((5, 6), dtype=int); lab[1:4, 1:3] = 1; lab[1:4, 3:5] = 2
    >>> labels_to_targets(lab, boundary_width_px=1)[1].astype(int)[2]
    array([0, 0, 1, 1, 0, 0])
    """
    labels = _check_2d(labels, "labels")
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(
            f"`labels` must be an integer label map; got dtype {labels.dtype}. "
            "Convert with labels.astype(np.int32) after checking it holds instance ids."
        )
    if int(boundary_width_px) != boundary_width_px or boundary_width_px < 1:
        raise ValueError(f"`boundary_width_px` must be an integer >= 1; got {boundary_width_px}.")
    if labels.size and labels.min() < 0:
        raise ValueError("`labels` must be >= 0 (0 = background, 1..N = particles).")

    lab = labels.astype(np.int64, copy=False)
    foreground = lab > 0
    targets = np.zeros((2, *lab.shape), dtype=np.float32)
    targets[0] = foreground
    if not foreground.any():
        return targets

    footprint = _disk_footprint(int(boundary_width_px))
    top = int(lab.max()) + 1
    # Largest id nearby (background 0 never wins over a particle; outside the image is 0).
    nearby_max = ndi.grey_dilation(lab, footprint=footprint, mode="constant", cval=0)
    # Smallest nonzero id nearby: lift background above every id before the erosion.
    lifted = np.where(foreground, lab, top)
    nearby_min = ndi.grey_erosion(lifted, footprint=footprint, mode="constant", cval=top)
    boundary = foreground & ((nearby_max != lab) | (nearby_min != lab))
    targets[1] = boundary
    return targets


def _remove_small_and_relabel(labels: np.ndarray, min_size_px: int) -> np.ndarray:
    """Drop instances smaller than ``min_size_px`` pixels and relabel 1..N in raster order."""
    labels = labels.astype(np.int64, copy=False)
    if labels.max(initial=0) == 0:
        return np.zeros(labels.shape, dtype=np.int32)
    counts = np.bincount(labels.ravel())
    keep = counts >= max(int(min_size_px), 1)
    keep[0] = False
    # Order the surviving ids by their first pixel in raster order (deterministic, intuitive).
    flat = labels.ravel()
    first_index = np.full(counts.size, flat.size, dtype=np.int64)
    np.minimum.at(first_index, flat, np.arange(flat.size))
    kept_ids = np.flatnonzero(keep)
    kept_ids = kept_ids[np.argsort(first_index[kept_ids], kind="stable")]
    mapping = np.zeros(counts.size, dtype=np.int32)
    mapping[kept_ids] = np.arange(1, kept_ids.size + 1, dtype=np.int32)
    return mapping[labels]


def _label_unseeded(labels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Give each connected part of ``mask`` that the watershed left at 0 its own new id."""
    leftover = mask & (labels == 0)
    if not leftover.any():
        return labels
    extra, n_extra = ndi.label(leftover)
    out = labels.copy()
    out[leftover] = extra[leftover] + labels.max()
    return out


def _distance_markers(
    distance_px: np.ndarray,
    components: np.ndarray,
    *,
    min_distance_px: int,
    h_px: float,
) -> np.ndarray:
    """Watershed markers from the distance transform (peaks merged along flat ridges)."""
    from skimage.feature import peak_local_max
    from skimage.measure import label as sk_label
    from skimage.morphology import h_maxima

    peaks = peak_local_max(
        distance_px,
        min_distance=max(int(min_distance_px), 1),
        labels=components,
        exclude_border=False,
    )
    if peaks.size == 0:
        return np.zeros(distance_px.shape, dtype=np.int64)
    # Regional maxima with a dynamic of at least h_px: a flat ridge (e.g. along a rod) is one
    # region, so several peak_local_max peaks on it become a single marker.
    ridges = sk_label(h_maxima(distance_px, h_px) > 0, connectivity=2)
    peak_ids = ridges[peaks[:, 0], peaks[:, 1]]
    markers = np.where(np.isin(ridges, peak_ids[peak_ids > 0]), ridges, 0)
    # Peaks not on any h-maximum (shallow bumps) are dropped; each component keeps >= 1 seed
    # because leftover components are labelled afterwards by the caller.
    return markers.astype(np.int64)


def split_instances(
    foreground_prob: np.ndarray,
    boundary_prob: np.ndarray | None = None,
    *,
    threshold: float = 0.5,
    boundary_threshold: float = 0.5,
    min_size_px: int = 10,
    min_distance_px: int = 3,
    h_px: float = 1.0,
) -> np.ndarray:
    """Turn foreground (and contact-boundary) probabilities into an instance label map.

    Parameters
    ----------
    foreground_prob : ndarray of float, shape (H, W)
        Probability (0–1) that each pixel belongs to a particle.
    boundary_prob : ndarray of float, shape (H, W), optional
        Probability (0–1) that each pixel is in the contact band between touching particles
        (channel 1 of :func:`labels_to_targets`). If omitted, touching particles are split by
        a distance-transform watershed with :func:`skimage.feature.peak_local_max` markers.
    threshold : float, optional
        Foreground threshold on ``foreground_prob`` (0–1).
    boundary_threshold : float, optional
        Pixels with ``boundary_prob >= boundary_threshold`` are excluded from the seeds.
    min_size_px : int, optional
        Instances with fewer pixels than this (area, pixels) are removed.
    min_distance_px : int, optional
        Without a boundary map: minimum separation of two distance-transform peaks, in
        pixels (roughly the smallest particle radius to split).
    h_px : float, optional
        Without a boundary map: a distance-transform maximum must rise at least this many
        pixels above the saddle to its neighbour to seed its own particle (suppresses
        over-splitting of elongated particles).

    Returns
    -------
    labels : ndarray of int32, shape (H, W)
        0 background, 1..N one id per particle, numbered consecutively in raster order of
        their first pixel. Deterministic.

    Notes
    -----
    With a boundary map, the seeds are the connected components of
    ``(foreground_prob > threshold) & (boundary_prob < boundary_threshold)`` (particle cores
    without the contact band); they are grown by a watershed on the negative Euclidean
    distance transform of the foreground mask, restricted to that mask, so the split line
    falls at the narrowest neck. Foreground parts that contain no seed become their own
    instances.
    """
    from skimage.segmentation import watershed

    foreground_prob = _check_2d(foreground_prob, "foreground_prob").astype(np.float32, copy=False)
    if boundary_prob is not None:
        boundary_prob = _check_2d(boundary_prob, "boundary_prob").astype(np.float32, copy=False)
        if boundary_prob.shape != foreground_prob.shape:
            raise ValueError(
                f"`boundary_prob` shape {boundary_prob.shape} differs from `foreground_prob` "
                f"shape {foreground_prob.shape}; pass the two channels of the same prediction."
            )
    if not np.all(np.isfinite(foreground_prob)):
        raise ValueError("`foreground_prob` contains NaN or inf; pass probabilities in [0, 1].")

    mask = foreground_prob > threshold
    if not mask.any():
        return np.zeros(mask.shape, dtype=np.int32)
    distance_px = ndi.distance_transform_edt(mask)
    if boundary_prob is not None:
        cores = mask & ~(np.nan_to_num(boundary_prob, nan=1.0) >= boundary_threshold)
        markers, _ = ndi.label(cores)
    else:
        components, _ = ndi.label(mask)
        markers = _distance_markers(
            distance_px, components, min_distance_px=min_distance_px, h_px=h_px
        )
    if markers.max(initial=0) > 0:
        labels = watershed(-distance_px, markers=markers, mask=mask)
    else:
        labels = np.zeros(mask.shape, dtype=np.int64)
    labels = _label_unseeded(labels, mask)
    return _remove_small_and_relabel(labels, min_size_px)
