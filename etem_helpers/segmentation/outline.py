"""Where a particle's outline is drawn: the physical edge or the half-contrast line people draw.

The simulator's ground truth, and so the shipped network, puts the outline where the projected
thickness ends: on the *foot* of the intensity edge (about 12 % of the particle's contrast on
simulated low-magnification images). People draw the edge where it looks like an edge: at about
half contrast (53 % on the real sample's hand outlines; ``benchmarks/edge_profiles.py``). On a
blurred edge the two lie several pixels apart, so the network's particles come out larger than
hand-drawn ones. :func:`half_contrast_outlines` moves each outline to the half-contrast line of
the image around it, for comparisons with manual measurements.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

__all__ = ["OUTLINES", "half_contrast_outlines"]

#: The particle level is measured deeper than this fraction of the particle's largest inscribed
#: radius (the network's outline includes the edge's foot; chosen on the real sample's
#: calibration images image_0..4 only).
CORE_FRACTION = 0.4

#: Outline conventions of :class:`etem_helpers.pipeline.Analyzer` (setting ``outline``).
OUTLINES = ("physical", "half_contrast")


def half_contrast_outlines(
    image: np.ndarray,
    labels: np.ndarray,
    *,
    search_px: int = 8,
    ring_px: tuple[int, int] = (6, 12),
    smooth_px: float = 1.0,
) -> np.ndarray:
    """Move every particle's outline to the line of half its local contrast.

    For each particle: the particle level is the median of the (lightly smoothed) image
    inside, more than 2 px from its outline; the support level the median of a ring
    ``ring_px`` outside it, away from other particles. The new particle is the connected
    region on the particle's side of the mean of the two levels, grown or shrunk from its
    core by at most ``search_px``, never into another particle nor past the midline between
    them. A particle without
    measurable contrast, or whose core does not pass the half level, keeps its outline.

    Parameters
    ----------
    image : (H, W) ndarray
        The micrograph on the grid of ``labels``.
    labels : (H, W) ndarray of int
        Instance labels (0 = background).
    search_px : int, optional
        How far (px) an outline may move outwards or inwards. Default 8.
    ring_px : (int, int), optional
        Inner and outer distance (px) of the support ring. Default (6, 12).
    smooth_px : float, optional
        Gaussian sigma (px) applied to the image first (noise). Default 1.

    Returns
    -------
    (H, W) ndarray of int32
        Labels with the same ids; particles may be smaller or larger than before.
    """
    image = np.asarray(image, dtype=np.float32)
    labels = np.asarray(labels)
    if image.shape != labels.shape or image.ndim != 2:
        raise ValueError(f"image {image.shape} and labels {labels.shape} must be 2-D and of the "
                         "same shape.")
    inner, outer = (int(v) for v in ring_px)
    if not 0 < inner < outer or int(search_px) < 1:
        raise ValueError(f"need 0 < ring_px[0] < ring_px[1] and search_px >= 1; got ring_px="
                         f"{ring_px!r}, search_px={search_px!r}.")
    smooth = ndi.gaussian_filter(image, float(smooth_px))
    out = labels.astype(np.int32, copy=True)
    margin = outer + int(search_px) + 1
    for k, box in enumerate(ndi.find_objects(labels), start=1):
        if box is None:
            continue
        window = tuple(slice(max(s.start - margin, 0), s.stop + margin) for s in box)
        refined = _refine_one(smooth[window], labels[window], k, int(search_px), inner, outer)
        if refined is None:
            continue
        local = out[window]
        local[(local == k) & ~refined] = 0
        local[refined & (local == 0)] = k
    return out


def _refine_one(smooth, labels, k, search_px, inner, outer):
    """The half-contrast region of particle ``k`` in a window, or None to keep it as it is."""
    mask = labels == k
    others = ndi.binary_dilation((labels > 0) & ~mask, iterations=2)
    outside = ndi.distance_transform_edt(~mask)
    inside = ndi.distance_transform_edt(mask)
    core = inside > max(2.0, CORE_FRACTION * float(inside.max()))
    ring = (outside >= inner) & (outside <= outer) & ~others
    if core.sum() < 4 or ring.sum() < 10:
        return None
    level_in, level_out = float(np.median(smooth[core])), float(np.median(smooth[ring]))
    noise = 1.4826 * float(np.median(np.abs(smooth[ring] - level_out)))
    if abs(level_in - level_out) < max(noise, 1e-12):
        return None
    sign = 1.0 if level_out > level_in else -1.0  # dark particles: inside below the support
    half = 0.5 * (level_in + level_out)
    other = (labels > 0) & ~mask
    nearer_other = (ndi.distance_transform_edt(~other) <= outside if other.any()
                    else np.zeros_like(mask))
    allowed = (outside <= search_px) & ~other & ~nearer_other  # never past the midline
    candidate = allowed & (sign * (half - smooth) > 0)
    regions, _ = ndi.label(candidate)
    keep = np.unique(regions[core & candidate])
    keep = keep[keep > 0]
    if keep.size == 0:
        return None
    refined = np.isin(regions, keep) | (inside > search_px)  # shrinks by search_px at most
    return ndi.binary_fill_holes(refined) & allowed
