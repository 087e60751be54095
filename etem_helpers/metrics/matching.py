"""Instance matching (Hungarian on IoU), detection scores and size/shape errors of matched particles."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment


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


def detection_scores(tp: int, fp: int, fn: int) -> dict[str, float]:
    """Precision, recall and F1 from true-positive, false-positive and false-negative counts.

    The one place these ratios are computed (per image, pooled over images, during tuning).

    Parameters
    ----------
    tp, fp, fn : int
        Matched pairs, unmatched predictions, unmatched true particles.

    Returns
    -------
    dict
        ``precision = tp / (tp + fp)``, ``recall = tp / (tp + fn)``,
        ``f1 = 2 tp / (2 tp + fp + fn)``. With no particle at all (all counts 0) every score
        is 1.0 (a perfect empty prediction); otherwise a zero denominator gives 0.0.
    """
    tp, fp, fn = int(tp), int(fp), int(fn)
    if tp + fp + fn == 0:
        return {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    return {
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "f1": 2 * tp / (2 * tp + fp + fn),
    }


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
    return {"tp": tp, "fp": fp, "fn": fn, **detection_scores(tp, fp, fn),
            "mean_matched_iou": mean_iou}


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



def relative_size_errors(errors_df) -> dict[str, float]:
    """Size bias of matched particles in relative terms (scale-free, so pixel sizes may be nominal).

    Parameters
    ----------
    errors_df : pandas.DataFrame
        :func:`matched_errors` of one or more images (``true_diameter_nm``, ``pred_diameter_nm``).

    Returns
    -------
    dict
        ``diameter_error`` (mean |d_pred - d_true| / d_true), ``diameter_bias`` (mean
        (d_pred - d_true) / d_true) and ``median_area_ratio`` (median (d_pred / d_true)^2, i.e.
        predicted / true area for area-equivalent diameters); NaN without matched pairs.
    """
    true_d = np.asarray(errors_df["true_diameter_nm"], dtype=np.float64)
    pred_d = np.asarray(errors_df["pred_diameter_nm"], dtype=np.float64)
    if true_d.size == 0:
        nan = float("nan")
        return {"diameter_error": nan, "diameter_bias": nan, "median_area_ratio": nan}
    relative = (pred_d - true_d) / true_d
    return {"diameter_error": float(np.mean(np.abs(relative))),
            "diameter_bias": float(np.mean(relative)),
            "median_area_ratio": float(np.median((pred_d / true_d) ** 2))}
