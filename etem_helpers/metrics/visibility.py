"""Particle visibility (Rose criterion) and detection scores on visible particles."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from etem_helpers.metrics.matching import MatchResult, detection_scores, match_instances

#: Rose (1948): an object is reliably seen when its contrast is at least about five times
#: the noise of a background region of the same size.
ROSE_THRESHOLD = 5.0


def particle_visibility(image, labels, *, ring_px: int = 3, robust: bool = False,
                        ids=None) -> pd.DataFrame:
    """Contrast-to-noise ratio of every particle of a labelled image (Rose criterion).

    For particle ``i`` with area ``A`` (pixels) and equivalent radius ``r = sqrt(A / pi)``:

    * contrast ``C = mean(image over the particle) - mean(image over a background ring)``,
      the ring being the background pixels (label 0) within ``ring_px + max(r, 4)`` pixels
      of the particle but not within ``ring_px`` (away from its edge fringes);
    * noise ``sigma_A`` = standard deviation, over the background, of the image averaged in
      square windows of the particle's area: how much the mean of a particle-sized patch of
      *empty* support fluctuates (shot noise **and** carbon texture, with its correlations);
    * ``snr = |C| / sigma_A``. Rose's criterion calls an object visible for ``snr >= 5``
      (:data:`ROSE_THRESHOLD`).

    Simulated ground truth can contain objects that no observer or method could find
    (e.g. a 2 nm polymer blob on 10 nm of carbon at a low dose); this measure lets an
    evaluation report scores on the visible particles beside the scores on all of them.

    Parameters
    ----------
    image : ndarray, shape (H, W)
        The micrograph (any real values; the measure is invariant to gain and offset).
    labels : ndarray of int, shape (H, W)
        True instance labels (0 background).
    ring_px : int
        Gap between a particle and its background ring, in pixels (>= 0).
    robust : bool
        Measure the ring level by its median and the noise by 1.4826 x the median absolute
        deviation of the patch means (equal to the standard deviation for Gaussian noise).
        For *predicted* labels, where particles the method missed are still in the
        "background" and would inflate the noise and bias the ring (dense small particles).
        False (default): mean and standard deviation, as defined above.
    ids : sequence of int, optional
        Measure only these particle ids (the others still count as particles, not as
        background); None: every id in ``labels``.

    Returns
    -------
    pandas.DataFrame
        One row per particle id (ascending): ``particle_id``, ``area_px``, ``contrast``,
        ``noise``, ``snr`` (NaN when there is too little background to measure).
    """
    image = np.asarray(image, dtype=np.float64)
    labels = np.asarray(labels)
    if image.shape != labels.shape or image.ndim != 2:
        raise ValueError(
            f"image {image.shape} and labels {labels.shape} must be 2-D arrays of the same shape."
        )
    if int(ring_px) != ring_px or ring_px < 0:
        raise ValueError(f"ring_px={ring_px!r} must be a non-negative integer (pixels).")
    present = np.unique(labels[labels > 0])
    ids = present if ids is None else np.intersect1d(present, np.asarray(ids, dtype=np.int64))
    columns = ["particle_id", "area_px", "contrast", "noise", "snr"]
    if ids.size == 0:
        return pd.DataFrame(columns=columns)
    background = labels == 0
    n = int(labels.max()) + 1
    area = np.bincount(labels.ravel(), minlength=n).astype(np.float64)
    mean = np.bincount(labels.ravel(), weights=image.ravel(), minlength=n) / np.maximum(area, 1)
    # Every background pixel belongs to the ring of its nearest particle if its distance lies
    # in (ring_px, ring_px + max(r, 4)]: one pass over the image for all rings.
    distance, (iy, ix) = ndi.distance_transform_edt(background, return_indices=True)
    nearest = labels[iy, ix]
    outer_px = ring_px + np.maximum(np.sqrt(area / np.pi), 4.0)
    ring = background & (distance > ring_px) & (distance <= outer_px[nearest])
    ring_count = np.bincount(nearest[ring], minlength=n)
    ring_mean = np.bincount(nearest[ring], weights=image[ring], minlength=n) / np.maximum(
        ring_count, 1
    )
    if robust and ring.any():
        ring_ids = np.unique(nearest[ring])
        ring_mean[ring_ids] = ndi.median(image, np.where(ring, nearest, 0), ring_ids)
    weighted_bg = np.where(background, image, 0.0)
    noise_cache: dict[int, float] = {}
    rows = []
    for pid in ids:
        side = max(int(round(np.sqrt(area[pid]))), 1)
        if side not in noise_cache:
            total = ndi.uniform_filter(weighted_bg, size=side, mode="constant")
            cover = ndi.uniform_filter(background.astype(np.float64), size=side, mode="constant")
            full = cover > 0.999  # windows entirely on the background
            noise_cache[side] = (_spread(total[full] / cover[full], robust)
                                 if full.sum() > 10 else np.nan)
        noise = noise_cache[side]
        contrast = float(mean[pid] - ring_mean[pid]) if ring_count[pid] else np.nan
        snr = abs(contrast) / noise if noise and np.isfinite(noise) else np.nan
        rows.append((int(pid), int(area[pid]), contrast, noise, snr))
    return pd.DataFrame(rows, columns=columns)


def _spread(values: np.ndarray, robust: bool) -> float:
    """Standard deviation, or 1.4826 x the median absolute deviation when ``robust``."""
    if not robust:
        return float(np.std(values))
    return float(1.4826 * np.median(np.abs(values - np.median(values))))


def visible_instance_scores(
    pred_labels, true_labels, visible_ids, *, iou_threshold: float = 0.5,
    match: MatchResult | None = None,
) -> dict:
    """Detection scores that neither reward nor punish invisible true particles.

    Predictions are matched to **all** true particles (as in :func:`instance_scores`).
    A match to a visible particle is a true positive; a match to an invisible one is
    ignored (finding what cannot be seen is not an error, but not counted either); a
    visible particle left unmatched is a false negative; an unmatched prediction is a
    false positive. This is the usual "ignore region" protocol of detection benchmarks.

    Parameters
    ----------
    pred_labels, true_labels : (H, W) ndarray of int
        Instance label maps of the same image (0 background).
    visible_ids : iterable of int
        Ids in ``true_labels`` that are visible (e.g. ``snr >= 5`` in
        :func:`particle_visibility`).
    iou_threshold : float
        Minimum IoU of a match (default 0.5).
    match : MatchResult, optional
        The :func:`match_instances` result of these two label maps, if already computed
        (it is then used as is, and ``iou_threshold`` is ignored).

    Returns
    -------
    dict
        ``tp``, ``fp``, ``fn``, ``ignored`` (matches to invisible particles),
        ``n_invisible``, and ``precision``, ``recall``, ``f1`` as in :func:`instance_scores`.
    """
    if match is None:
        match = match_instances(pred_labels, true_labels, iou_threshold=iou_threshold)
    visible_ids = np.asarray(list(visible_ids), dtype=np.int64)
    matched_visible = np.isin(match.true_ids, visible_ids)
    missed_visible = np.isin(match.unmatched_true_ids, visible_ids)
    tp = int(matched_visible.sum())
    fp = int(match.unmatched_pred_ids.size)
    fn = int(missed_visible.sum())
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "ignored": int((~matched_visible).sum()),
        "n_invisible": int((~matched_visible).sum() + (~missed_visible).sum()),
        **detection_scores(tp, fp, fn),
    }

