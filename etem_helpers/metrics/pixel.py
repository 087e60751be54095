"""Pixel metrics: Dice and IoU of foreground masks."""

from __future__ import annotations

import numpy as np


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

