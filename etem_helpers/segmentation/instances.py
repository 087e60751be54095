"""Instance targets and instance splitting for particle segmentation.

A semantic U-Net only says *where* particles are. To separate particles that touch, the
network in :mod:`etem_helpers.segmentation.model` predicts two channels:

0. foreground: the pixel belongs to some particle;
1. boundary: the pixel belongs to a particle **and** lies within a few pixels of a
   *different* particle (the contact zone between touching particles).

:func:`labels_to_targets` turns an instance label map into these two channels for training,
and :func:`split_instances` turns predicted probabilities back into an instance label map
(seeded watershed). :func:`filter_instances` then drops instances that are too small or that
the network is unsure of.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from etem_helpers.measure import SPLIT_BLOCK_PX, relabel_sequential
from etem_helpers.preprocess.normalize import _row_chunks

__all__ = ["filter_instances", "labels_to_targets", "split_instances"]


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
    # Order the surviving ids by their first pixel in raster order (deterministic, intuitive).
    keep = np.bincount(labels.ravel()) >= max(int(min_size_px), 1)
    return relabel_sequential(labels, keep=keep, raster_order=True)


def _label_unseeded(labels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Give each connected part of ``mask`` that the watershed left at 0 its own new id."""
    leftover = mask & (labels == 0)
    if not leftover.any():
        return labels
    extra, n_extra = ndi.label(leftover)
    out = labels.copy()
    out[leftover] = extra[leftover] + labels.max()
    return out


def _region_saddles(
    height: np.ndarray, regions: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pass height between every pair of touching regions (8-connectivity).

    Returns arrays (a, b, saddle) with a < b region ids and saddle the highest value of
    min(height[p], height[q]) over neighbouring pixels p in a, q in b.
    """
    firsts, seconds, values = [], [], []
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        ys = slice(0, regions.shape[0] - dy)
        ys2 = slice(dy, regions.shape[0])
        xs = slice(max(0, -dx), regions.shape[1] - max(0, dx))
        xs2 = slice(max(0, dx), regions.shape[1] + min(0, dx))
        a, b = regions[ys, xs], regions[ys2, xs2]
        touching = (a > 0) & (b > 0) & (a != b)
        if touching.any():
            firsts.append(a[touching])
            seconds.append(b[touching])
            values.append(np.minimum(height[ys, xs][touching], height[ys2, xs2][touching]))
    if not firsts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.float64)
    a, b = np.concatenate(firsts), np.concatenate(seconds)
    lo, hi = np.minimum(a, b).astype(np.int64), np.maximum(a, b).astype(np.int64)
    values = np.concatenate(values).astype(np.float64)
    keys = lo * (int(regions.max()) + 1) + hi
    unique_keys, inverse = np.unique(keys, return_inverse=True)
    saddles = np.full(unique_keys.size, -np.inf)
    np.maximum.at(saddles, inverse, values)
    n = int(regions.max()) + 1
    return unique_keys // n, unique_keys % n, saddles


def _find(parent: np.ndarray, i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def _merge_shallow_peaks(
    height: np.ndarray, regions: np.ndarray, peak_height: np.ndarray, h_px: float,
    h_fraction: float = 1.0,
) -> np.ndarray:
    """Group peak regions whose peak rises less than h_px above the pass to a higher peak.

    Flooding from the top (saddles in decreasing order, union-find): when two flooded
    basins meet at a saddle, the one with the lower top has dynamic ``top - saddle``; if it
    is below ``min(h_px, h_fraction * top)`` its peak joins the group of the region across
    the saddle (``h_fraction`` 1: the plain h-dome rule, since ``top - saddle < top``).
    Returns ``group[region_id]`` (group 0 for the background).
    """
    n = regions.max(initial=0) + 1
    group = np.arange(n)
    a_ids, b_ids, saddles = _region_saddles(height, regions)
    if saddles.size == 0:
        return group
    flood = np.arange(n)
    top = peak_height.astype(np.float64).copy()
    top_region = np.arange(n)
    for index in np.argsort(-saddles, kind="stable"):
        a, b, saddle = int(a_ids[index]), int(b_ids[index]), float(saddles[index])
        root_a, root_b = _find(flood, a), _find(flood, b)
        if root_a == root_b:
            continue
        if top[root_a] < top[root_b] or (top[root_a] == top[root_b] and root_a > root_b):
            lower, higher, across = root_a, root_b, b
        else:
            lower, higher, across = root_b, root_a, a
        if top[lower] - saddle < min(h_px, h_fraction * top[lower]):
            group_low = _find(group, int(top_region[lower]))
            group_high = _find(group, across)
            group[max(group_low, group_high)] = min(group_low, group_high)
        flood[lower] = higher
    return np.array([_find(group, i) for i in range(n)])


def _distance_markers(
    distance_px: np.ndarray,
    components: np.ndarray,
    *,
    min_distance_px: int,
    h_px: float,
    h_fraction: float = 1.0,
) -> np.ndarray:
    """Watershed markers: distance-transform peaks, merged when separated by shallow saddles.

    Peaks come from :func:`skimage.feature.peak_local_max` (``min_distance_px`` apart, at
    least one per component). A peak that rises less than ``h_px`` above the pass to a higher
    peak shares its marker (its h-dome), so a flat or wavy ridge (a rod, a disk cut by a
    boundary band) gives one marker while a real neck between two particles gives two.
    """
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    peaks = peak_local_max(
        distance_px,
        min_distance=max(int(min_distance_px), 1),
        labels=components,
        exclude_border=False,
    )
    markers = np.zeros(distance_px.shape, dtype=np.int64)
    if peaks.size == 0:
        return markers
    markers[peaks[:, 0], peaks[:, 1]] = np.arange(1, len(peaks) + 1)
    regions = watershed(-distance_px, markers=markers, mask=components > 0)
    peak_height = np.concatenate([[0.0], distance_px[peaks[:, 0], peaks[:, 1]]])
    group = _merge_shallow_peaks(distance_px, regions, peak_height, float(h_px),
                                 float(h_fraction))
    return group[markers]


def split_instances(
    foreground_prob: np.ndarray,
    boundary_prob: np.ndarray | None = None,
    *,
    threshold: float = 0.5,
    boundary_threshold: float = 0.5,
    min_size_px: int = 10,
    min_distance_px: int = 3,
    h_px: float = 1.0,
    h_fraction: float = 1.0,
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
        Minimum separation of two seeds (distance-transform peaks), in pixels (roughly the
        smallest particle radius to split).
    h_px : float, optional
        A distance-transform maximum must rise at least this many pixels above the saddle to
        its neighbour to seed its own particle (suppresses over-splitting of elongated or
        irregular particles).
    h_fraction : float, optional
        In (0, 1]: a maximum of height ``t`` pixels needs to rise only
        ``min(h_px, h_fraction * t)`` above its saddle, so that small touching particles
        (distance peaks lower than ``h_px / h_fraction``) are split while larger ones follow
        ``h_px`` unchanged. 1 (default) is the plain ``h_px`` rule.

    Returns
    -------
    labels : ndarray of int32, shape (H, W)
        0 background, 1..N one id per particle, numbered consecutively in raster order of
        their first pixel. Deterministic.

    Notes
    -----
    With a boundary map, the *cores* are ``(foreground_prob > threshold) & (boundary_prob <
    boundary_threshold)``: particles without their contact band. Every connected core gets a
    seed, and a core whose distance transform has several maxima (rising ``h_px`` above
    their saddle and ``min_distance_px`` apart) gets one seed per maximum, so touching
    particles are still split where the predicted boundary has gaps. Seeds are grown by a
    watershed on ``-distance * (1 - boundary_prob)`` (distance transform of the foreground),
    restricted to the foreground, so the split line follows the predicted boundary and the
    narrowest neck. Without a boundary map the same is done with the foreground alone.
    Foreground parts that contain no seed become their own instances.

    On a short CPU training run (light preset, 48 synthetic 128×128 images with touching
    disks, 24 epochs; 12 validation images, 112 particles), seeding with the core
    components alone reached an instance F1 of 0.36 at IoU 0.5 (gaps in the predicted band
    merged particles); this scheme reached 0.90 and the foreground-only distance watershed
    0.85.
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
    if not 0.0 < float(h_fraction) <= 1.0:
        raise ValueError(
            f"`h_fraction` must be in (0, 1]; got {h_fraction!r} (1 = the plain h_px rule)."
        )

    mask = foreground_prob > threshold
    if not mask.any():
        return np.zeros(mask.shape, dtype=np.int32)
    distance_px = ndi.distance_transform_edt(mask)
    if boundary_prob is not None:
        boundary = np.clip(np.nan_to_num(boundary_prob, nan=1.0), 0.0, 1.0)
        cores = mask & (boundary < boundary_threshold)
        core_distance_px = ndi.distance_transform_edt(cores)
        core_components, _ = ndi.label(cores)
        markers = _distance_markers(
            core_distance_px, core_components, min_distance_px=min_distance_px, h_px=h_px,
            h_fraction=h_fraction,
        )
        elevation = -distance_px * (1.0 - boundary)
    else:
        components, _ = ndi.label(mask)
        markers = _distance_markers(
            distance_px, components, min_distance_px=min_distance_px, h_px=h_px,
            h_fraction=h_fraction,
        )
        elevation = -distance_px
    if markers.max(initial=0) > 0:
        labels = watershed(elevation, markers=markers, mask=mask)
    else:
        labels = np.zeros(mask.shape, dtype=np.int64)
    labels = _label_unseeded(labels, mask)
    return _remove_small_and_relabel(labels, min_size_px)


def _instance_sums(labels: np.ndarray, values: np.ndarray | None, n_ids: int):
    """Pixel counts (and sums of ``values``, if given) per label id, in row chunks of about
    4 million pixels so that memory stays bounded on huge images."""
    rows = max(1, 4_000_000 // max(labels.shape[1], 1))
    counts = np.zeros(n_ids, dtype=np.int64)
    sums = None if values is None else np.zeros(n_ids, dtype=np.float64)
    for start in range(0, labels.shape[0], rows):
        block = labels[start : start + rows].ravel()
        counts += np.bincount(block, minlength=n_ids)
        if sums is not None:
            weights = values[start : start + rows].ravel()
            sums += np.bincount(block, weights=weights, minlength=n_ids)
    return counts, sums


def filter_instances(
    labels: np.ndarray,
    foreground_prob: np.ndarray | None = None,
    *,
    min_size_px: int = 1,
    min_confidence: float = 0.0,
) -> np.ndarray:
    """Remove small or low-confidence instances and renumber the rest, keeping their order.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W)
        Instance label map (0 background, positive ids), e.g. from :func:`split_instances`.
    foreground_prob : ndarray of float, shape (H, W), optional
        Foreground probability (0–1). Needed when ``min_confidence > 0``.
    min_size_px : int, optional
        Instances with fewer pixels (area, pixels) are removed.
    min_confidence : float, optional
        Instances whose mean foreground probability (the ``confidence`` column of
        :func:`etem_helpers.measure.measure_particles`) is below this (0–1) are removed.
        Spurious detections on the support film are mostly faint and uncertain, while real
        particles are predicted with high confidence.

    Returns
    -------
    labels : ndarray of int32, shape (H, W)
        The kept instances renumbered 1..N in the order of their old ids.

    Examples
    --------
    >>> lab = np.array([[1, 1, 0, 2]])
    >>> prob = np.array([[0.9, 0.9, 0.0, 0.6]])
    >>> filter_instances(lab, prob, min_confidence=0.8).tolist()
    [[1, 1, 0, 0]]
    """
    labels = _check_2d(labels, "labels")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min(initial=0) < 0:
        raise ValueError("`labels` must be a non-negative integer label map (0 = background).")
    if int(min_size_px) != min_size_px or min_size_px < 1:
        raise ValueError(f"`min_size_px` must be an integer >= 1; got {min_size_px!r}.")
    if not 0.0 <= float(min_confidence) <= 1.0:
        raise ValueError(f"`min_confidence` must be in [0, 1]; got {min_confidence!r}.")
    n_ids = int(labels.max(initial=0)) + 1
    if n_ids == 1:
        return np.zeros(labels.shape, dtype=np.int32)
    if min_confidence > 0:
        if foreground_prob is None:
            raise ValueError("`foreground_prob` is required when `min_confidence` > 0.")
        foreground_prob = _check_2d(foreground_prob, "foreground_prob")
        if foreground_prob.shape != labels.shape:
            raise ValueError(
                f"`foreground_prob` shape {foreground_prob.shape} differs from `labels` shape "
                f"{labels.shape}; pass the probability map the labels were made from."
            )
    values = foreground_prob if min_confidence > 0 else None
    counts, sums = _instance_sums(labels, values, n_ids)
    keep = counts >= int(min_size_px)
    if sums is not None:
        keep &= sums / np.maximum(counts, 1) >= float(min_confidence)
    return relabel_sequential(labels, keep=keep)





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
    """:func:`etem_helpers.segmentation.split_instances` on a large image, block by block.

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
