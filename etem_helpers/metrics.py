"""Segmentation and instance-matching metrics, and size/shape error summaries.

Pixel metrics (:func:`dice_coefficient`, :func:`iou_score`) compare foreground
masks. Instance metrics match predicted to true particles one-to-one by the
Hungarian algorithm on their intersection-over-union (IoU) and count a match as a
true positive when its IoU reaches a threshold (0.5 by default, where a match is
necessarily unique). :func:`matched_errors` then compares the measured size and
shape of matched particles, which is what a size distribution depends on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from scipy.optimize import linear_sum_assignment

__all__ = [
    "MatchResult",
    "dice_coefficient",
    "iou_score",
    "match_instances",
    "instance_scores",
    "matched_errors",
    "particle_visibility",
    "summarize_errors",
    "visible_instance_scores",
]

#: Rose (1948): an object is reliably seen when its contrast is at least about five times
#: the noise of a background region of the same size.
ROSE_THRESHOLD = 5.0


def _as_masks(pred_mask, true_mask) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred_mask)
    true = np.asarray(true_mask)
    if pred.shape != true.shape:
        raise ValueError(
            f"pred_mask has shape {pred.shape} but true_mask has shape {true.shape}; "
            "compare masks of the same image."
        )
    return pred != 0, true != 0


def dice_coefficient(pred_mask, true_mask) -> float:
    """Dice coefficient ``2 |P & T| / (|P| + |T|)`` of two foreground masks.

    Parameters
    ----------
    pred_mask, true_mask : ndarray
        Masks of the same shape; any nonzero value is foreground (label maps work).

    Returns
    -------
    float
        In [0, 1]; 1.0 when both masks are empty.
    """
    pred, true = _as_masks(pred_mask, true_mask)
    total = int(pred.sum()) + int(true.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(pred, true).sum()) / total


def iou_score(pred_mask, true_mask) -> float:
    """Intersection over union (Jaccard index) ``|P & T| / |P | T|`` of two masks.

    Parameters
    ----------
    pred_mask, true_mask : ndarray
        Masks of the same shape; any nonzero value is foreground (label maps work).

    Returns
    -------
    float
        In [0, 1]; 1.0 when both masks are empty.
    """
    pred, true = _as_masks(pred_mask, true_mask)
    union = int(np.logical_or(pred, true).sum())
    if union == 0:
        return 1.0
    return int(np.logical_and(pred, true).sum()) / union


@dataclass(frozen=True)
class MatchResult:
    """One-to-one matching of predicted to true instances.

    Attributes
    ----------
    pred_ids, true_ids : ndarray of int
        Ids of the matched pairs, ``pred_ids[i]`` matched to ``true_ids[i]``.
    ious : ndarray of float
        IoU of each matched pair (>= the threshold used).
    unmatched_pred_ids : ndarray of int
        Predicted ids without a match (false positives), sorted.
    unmatched_true_ids : ndarray of int
        True ids without a match (false negatives, missed particles), sorted.
    iou_threshold : float
        The IoU threshold a pair had to reach.
    """

    pred_ids: np.ndarray
    true_ids: np.ndarray
    ious: np.ndarray
    unmatched_pred_ids: np.ndarray
    unmatched_true_ids: np.ndarray
    iou_threshold: float = 0.5

    @property
    def n_matched(self) -> int:
        """Number of matched pairs (true positives)."""
        return int(self.pred_ids.size)

    @property
    def n_pred(self) -> int:
        """Number of predicted instances."""
        return int(self.pred_ids.size + self.unmatched_pred_ids.size)

    @property
    def n_true(self) -> int:
        """Number of true instances."""
        return int(self.true_ids.size + self.unmatched_true_ids.size)


def _validate_label_pair(pred_labels, true_labels) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred_labels)
    true = np.asarray(true_labels)
    for name, arr in (("pred_labels", pred), ("true_labels", true)):
        if arr.ndim != 2:
            raise ValueError(f"{name} must be a 2-D label map, got shape {arr.shape}.")
        if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(
                f"{name} must be an integer instance label map, got dtype {arr.dtype}; "
                "label a boolean mask with skimage.measure.label first."
            )
    if pred.shape != true.shape:
        raise ValueError(
            f"pred_labels has shape {pred.shape} but true_labels has shape {true.shape}; "
            "compare label maps of the same image."
        )
    return pred, true


def match_instances(pred_labels, true_labels, *, iou_threshold=0.5) -> MatchResult:
    """Match predicted to true instances one-to-one by maximal total IoU.

    The IoU of every overlapping (pred, true) pair is computed sparsely from the
    counts of the combined ids (``np.unique``), the assignment maximising the sum of
    IoU over pairs with IoU >= ``iou_threshold`` is found with
    :func:`scipy.optimize.linear_sum_assignment`, and only pairs reaching the
    threshold are kept.

    Parameters
    ----------
    pred_labels, true_labels : (H, W) ndarray of int
        Instance label maps of the same image (0 background); ids need not be
        contiguous.
    iou_threshold : float, optional
        Minimum IoU for a pair to count as a match, in (0, 1]. Default 0.5.

    Returns
    -------
    MatchResult
    """
    pred, true = _validate_label_pair(pred_labels, true_labels)
    if not (0.0 < float(iou_threshold) <= 1.0):
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold!r}.")
    iou_threshold = float(iou_threshold)

    pred_flat = pred.ravel()
    true_flat = true.ravel()
    pred_ids, pred_area = np.unique(pred_flat[pred_flat != 0], return_counts=True)
    true_ids, true_area = np.unique(true_flat[true_flat != 0], return_counts=True)
    empty = np.zeros(0, dtype=np.int64)

    both = (pred_flat != 0) & (true_flat != 0)
    if pred_ids.size == 0 or true_ids.size == 0 or not both.any():
        return MatchResult(
            pred_ids=empty,
            true_ids=empty.copy(),
            ious=np.zeros(0),
            unmatched_pred_ids=pred_ids.astype(np.int64),
            unmatched_true_ids=true_ids.astype(np.int64),
            iou_threshold=iou_threshold,
        )

    # Compact indices of the ids at overlapping pixels, then pair counts.
    p_idx = np.searchsorted(pred_ids, pred_flat[both])
    t_idx = np.searchsorted(true_ids, true_flat[both])
    pair_key = p_idx.astype(np.int64) * true_ids.size + t_idx
    pair_key, intersection = np.unique(pair_key, return_counts=True)
    pair_p = pair_key // true_ids.size
    pair_t = pair_key % true_ids.size
    union = pred_area[pair_p] + true_area[pair_t] - intersection
    pair_iou = intersection / union

    keep = pair_iou >= iou_threshold
    pair_p, pair_t, pair_iou = pair_p[keep], pair_t[keep], pair_iou[keep]
    matched_p = np.zeros(0, dtype=np.int64)
    matched_t = np.zeros(0, dtype=np.int64)
    matched_iou = np.zeros(0)
    if pair_iou.size:
        rows, row_inv = np.unique(pair_p, return_inverse=True)
        cols, col_inv = np.unique(pair_t, return_inverse=True)
        cost = np.zeros((rows.size, cols.size))
        cost[row_inv, col_inv] = -pair_iou
        r, c = linear_sum_assignment(cost)
        iou_rc = -cost[r, c]
        ok = iou_rc >= iou_threshold
        matched_p, matched_t, matched_iou = rows[r[ok]], cols[c[ok]], iou_rc[ok]
        order = np.argsort(matched_t, kind="stable")
        matched_p, matched_t, matched_iou = matched_p[order], matched_t[order], matched_iou[order]

    unmatched_p = np.setdiff1d(np.arange(pred_ids.size), matched_p)
    unmatched_t = np.setdiff1d(np.arange(true_ids.size), matched_t)
    return MatchResult(
        pred_ids=pred_ids[matched_p].astype(np.int64),
        true_ids=true_ids[matched_t].astype(np.int64),
        ious=matched_iou.astype(np.float64),
        unmatched_pred_ids=pred_ids[unmatched_p].astype(np.int64),
        unmatched_true_ids=true_ids[unmatched_t].astype(np.int64),
        iou_threshold=iou_threshold,
    )


def _ratio(numerator: int, denominator: int, *, both_empty: bool) -> float:
    if denominator == 0:
        return 1.0 if both_empty else 0.0
    return numerator / denominator


def instance_scores(pred_labels, true_labels, *, iou_threshold=0.5) -> dict:
    """Detection scores of an instance segmentation against the truth.

    Parameters
    ----------
    pred_labels, true_labels : (H, W) ndarray of int
        Instance label maps of the same image (0 background).
    iou_threshold : float, optional
        Minimum IoU for a matched pair to count as a true positive. Default 0.5.

    Returns
    -------
    dict
        ``tp``, ``fp``, ``fn`` (int); ``precision = tp / (tp + fp)``,
        ``recall = tp / (tp + fn)``, ``f1 = 2 tp / (2 tp + fp + fn)`` and
        ``mean_matched_iou`` (float). Zero denominators: when both maps have no
        particle every score is 1.0 (a perfect empty prediction); otherwise a score
        with a zero denominator is 0.0 (e.g. precision when nothing was predicted
        but there were particles), and ``mean_matched_iou`` is NaN when no pair
        matched.
    """
    match = match_instances(pred_labels, true_labels, iou_threshold=iou_threshold)
    tp = match.n_matched
    fp = int(match.unmatched_pred_ids.size)
    fn = int(match.unmatched_true_ids.size)
    both_empty = match.n_pred == 0 and match.n_true == 0
    if tp:
        mean_iou = float(match.ious.mean())
    else:
        mean_iou = 1.0 if both_empty else float("nan")
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": _ratio(tp, tp + fp, both_empty=both_empty),
        "recall": _ratio(tp, tp + fn, both_empty=both_empty),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn, both_empty=both_empty),
        "mean_matched_iou": mean_iou,
    }


_ERROR_QUANTITIES = ("diameter_nm", "aspect_ratio", "roundness")


def matched_errors(pred_table, true_table, match: MatchResult) -> pd.DataFrame:
    """Per-pair size and shape errors of matched particles.

    Parameters
    ----------
    pred_table, true_table : pandas.DataFrame
        Particle tables (as from :func:`etem_helpers.measure.measure_particles`) with
        at least ``particle_id``, ``diameter_nm``, ``aspect_ratio``, ``roundness``.
    match : MatchResult
        Matching of the two label maps the tables were measured from.

    Returns
    -------
    pandas.DataFrame
        One row per matched pair: ``pred_id``, ``true_id``, ``iou``, and for each of
        ``diameter_nm``, ``aspect_ratio``, ``roundness``: ``true_<q>``, ``pred_<q>``
        and ``<q>_error = pred - true`` (so ``diameter_nm_error`` is in nm).
    """
    for name, table in (("pred_table", pred_table), ("true_table", true_table)):
        missing = {"particle_id", *_ERROR_QUANTITIES} - set(table.columns)
        if missing:
            raise ValueError(
                f"{name} lacks the columns {sorted(missing)}; pass a table from "
                "etem_helpers.measure.measure_particles."
            )
    pred_indexed = pred_table.set_index("particle_id")
    true_indexed = true_table.set_index("particle_id")
    for name, indexed, ids in (
        ("pred_table", pred_indexed, match.pred_ids),
        ("true_table", true_indexed, match.true_ids),
    ):
        absent = np.setdiff1d(ids, indexed.index.to_numpy())
        if absent.size:
            raise ValueError(
                f"{name} has no rows for the matched ids {absent[:5].tolist()}; measure "
                "the same label maps that were passed to match_instances."
            )
    out = {
        "pred_id": np.asarray(match.pred_ids, dtype=np.int64),
        "true_id": np.asarray(match.true_ids, dtype=np.int64),
        "iou": np.asarray(match.ious, dtype=np.float64),
    }
    for quantity in _ERROR_QUANTITIES:
        true_values = true_indexed.loc[match.true_ids, quantity].to_numpy(dtype=np.float64)
        pred_values = pred_indexed.loc[match.pred_ids, quantity].to_numpy(dtype=np.float64)
        out[f"true_{quantity}"] = true_values
        out[f"pred_{quantity}"] = pred_values
        out[f"{quantity}_error"] = pred_values - true_values
    return pd.DataFrame(out)


def summarize_errors(errors_df) -> dict:
    """Summary statistics of :func:`matched_errors`.

    Parameters
    ----------
    errors_df : pandas.DataFrame
        Output of :func:`matched_errors`.

    Returns
    -------
    dict
        ``n_matched`` (int); ``diameter_mae_nm``, ``diameter_rmse_nm``,
        ``diameter_bias_nm`` (mean pred - true, nm); ``aspect_ratio_rmse``,
        ``roundness_rmse`` (dimensionless). NaN when nothing matched.
    """
    n = len(errors_df)
    if n == 0:
        nan = float("nan")
        return {
            "n_matched": 0,
            "diameter_mae_nm": nan,
            "diameter_rmse_nm": nan,
            "diameter_bias_nm": nan,
            "aspect_ratio_rmse": nan,
            "roundness_rmse": nan,
        }
    d = errors_df["diameter_nm_error"].to_numpy(dtype=np.float64)
    a = errors_df["aspect_ratio_error"].to_numpy(dtype=np.float64)
    r = errors_df["roundness_error"].to_numpy(dtype=np.float64)
    return {
        "n_matched": int(n),
        "diameter_mae_nm": float(np.mean(np.abs(d))),
        "diameter_rmse_nm": float(np.sqrt(np.mean(d**2))),
        "diameter_bias_nm": float(np.mean(d)),
        "aspect_ratio_rmse": float(np.sqrt(np.mean(a**2))),
        "roundness_rmse": float(np.sqrt(np.mean(r**2))),
    }


def particle_visibility(image, labels, *, ring_px: int = 3) -> pd.DataFrame:
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
    ids = np.unique(labels[labels > 0])
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
    weighted_bg = np.where(background, image, 0.0)
    noise_cache: dict[int, float] = {}
    rows = []
    for pid in ids:
        side = max(int(round(np.sqrt(area[pid]))), 1)
        if side not in noise_cache:
            total = ndi.uniform_filter(weighted_bg, size=side, mode="constant")
            cover = ndi.uniform_filter(background.astype(np.float64), size=side, mode="constant")
            full = cover > 0.999  # windows entirely on the background
            noise_cache[side] = float(np.std(total[full] / cover[full])) if full.sum() > 10 else np.nan
        noise = noise_cache[side]
        contrast = float(mean[pid] - ring_mean[pid]) if ring_count[pid] else np.nan
        snr = abs(contrast) / noise if noise and np.isfinite(noise) else np.nan
        rows.append((int(pid), int(area[pid]), contrast, noise, snr))
    return pd.DataFrame(rows, columns=columns)


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
    both_empty = tp + fp + fn == 0
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "ignored": int((~matched_visible).sum()),
        "n_invisible": int((~matched_visible).sum() + (~missed_visible).sum()),
        "precision": _ratio(tp, tp + fp, both_empty=both_empty),
        "recall": _ratio(tp, tp + fn, both_empty=both_empty),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn, both_empty=both_empty),
    }
