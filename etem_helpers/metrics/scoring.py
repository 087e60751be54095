"""One evaluation of segmentation methods against the truth: :func:`evaluate`.

Every method (the U-Net through :class:`etem_helpers.Analyzer`, the classical baselines, a
model being trained in a notebook) is a function ``labels = method(image, pixel_size_nm)``. Each
image is scored once per method (:func:`score_image`: pixel counts, Hungarian matching at IoU >=
0.5, size/shape errors of the matched pairs, visibility), and the per-image records are pooled
over a set of images (:func:`pool_scores`): counts are summed first, then turned into Dice and
precision/recall/F1 (:func:`~etem_helpers.metrics.detection_scores`). The benchmark, the notebooks
and the post-processing tuning all use these functions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from etem_helpers.measure import measure_particles
from etem_helpers.metrics.matching import (
    detection_scores,
    match_instances,
    matched_errors,
    summarize_errors,
)
from etem_helpers.metrics.pixel import dice_coefficient
from etem_helpers.metrics.visibility import (
    ROSE_THRESHOLD,
    particle_visibility,
    visible_instance_scores,
)

__all__ = [
    "SNR_BIN_EDGES",
    "Evaluation",
    "evaluate",
    "pool_scores",
    "recall_by_snr",
    "score_image",
    "visibility_of",
]

#: Edges of the visibility bins of :func:`recall_by_snr` (Rose SNR; 5 = Rose's criterion).
SNR_BIN_EDGES = (3.0, 5.0, 7.0, 10.0)
_COUNTS = ("pixel_tp", "pixel_fp", "pixel_fn", "tp", "fp", "fn")


def visibility_of(image: np.ndarray, true_labels: np.ndarray) -> tuple[list[int], dict[int, float]]:
    """Visible true particles (Rose SNR >= 5 on the image itself) and every particle's SNR.

    Particles whose SNR cannot be measured count as visible.
    """
    table = particle_visibility(image, true_labels)
    invisible = table["snr"] < ROSE_THRESHOLD  # NaN compares False: visible
    visible_ids = table.loc[~invisible, "particle_id"].astype(int).tolist()
    return visible_ids, dict(zip(table["particle_id"].astype(int), table["snr"], strict=True))


def score_image(
    pred_labels: np.ndarray,
    true_labels: np.ndarray,
    *,
    pixel_size_nm: float | None = None,
    iou_threshold: float = 0.5,
    visible_ids: Sequence[int] | None = None,
    true_snr: Mapping[int, float] | None = None,
    true_table: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Pixel counts, instance counts and matched size/shape errors of one image.

    Parameters
    ----------
    pred_labels, true_labels : ndarray of int, shape (H, W)
        Predicted and true instance label maps (0 background).
    pixel_size_nm : float, optional
        nm/px; when given, the size/shape errors of matched pairs are measured (``errors``).
    iou_threshold : float
        IoU (0–1] a predicted and a true particle must reach to match.
    visible_ids : sequence of int, optional
        Visible true particles (:func:`visibility_of`); adds ``vis_tp``, ``vis_fp``,
        ``vis_fn`` and ``n_invisible`` (see
        :func:`~etem_helpers.metrics.visible_instance_scores`).
    true_snr : mapping of int to float, optional
        Rose SNR of each true particle; adds ``snr_found``: ``(snr, matched)`` per particle.
    true_table : pandas.DataFrame, optional
        ``measure_particles(true_labels, pixel_size_nm)``, if already computed (several methods
        scored on one image).

    Returns
    -------
    dict
        ``pixel_tp``, ``pixel_fp``, ``pixel_fn``, ``tp``, ``fp``, ``fn``, this image's ``dice``
        and ``f1``, and ``errors`` (:func:`~etem_helpers.metrics.matched_errors`; empty
        without ``pixel_size_nm``).
    """
    pred_labels, true_labels = np.asarray(pred_labels), np.asarray(true_labels)
    if pred_labels.shape != true_labels.shape:
        raise ValueError(
            f"pred_labels {pred_labels.shape} and true_labels {true_labels.shape} differ in "
            "shape; score label maps of the same image."
        )
    pred_fg, true_fg = pred_labels > 0, true_labels > 0
    match = match_instances(pred_labels, true_labels, iou_threshold=iou_threshold)
    tp, fp, fn = match.n_matched, match.unmatched_pred_ids.size, match.unmatched_true_ids.size
    record: dict[str, Any] = {
        "pixel_tp": int(np.count_nonzero(pred_fg & true_fg)),
        "pixel_fp": int(np.count_nonzero(pred_fg & ~true_fg)),
        "pixel_fn": int(np.count_nonzero(~pred_fg & true_fg)),
        "tp": int(tp), "fp": int(fp), "fn": int(fn),
        "dice": float(dice_coefficient(pred_fg, true_fg)),
        "f1": detection_scores(tp, fp, fn)["f1"],
        "errors": pd.DataFrame(),
    }
    if pixel_size_nm is not None:
        if true_table is None:
            true_table = measure_particles(true_labels, pixel_size_nm)
        record["errors"] = matched_errors(measure_particles(pred_labels, pixel_size_nm),
                                          true_table, match)
    if visible_ids is not None:
        scores = visible_instance_scores(pred_labels, true_labels, visible_ids, match=match)
        record.update(vis_tp=scores["tp"], vis_fp=scores["fp"], vis_fn=scores["fn"],
                      n_invisible=scores["n_invisible"])
    if true_snr is not None:
        found = set(int(i) for i in match.true_ids)
        record["snr_found"] = [(float(true_snr.get(int(i), np.nan)), int(i) in found)
                               for i in np.unique(true_labels[true_fg])]
    return record


def _ratio(numerator: float, denominator: float, *, empty: float) -> float:
    return float(numerator / denominator) if denominator > 0 else empty


def pool_scores(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Pool per-image records of :func:`score_image` over a set of images.

    Returns
    -------
    dict
        ``n_images``; ``pixel_dice`` and ``pixel_iou`` from pixel counts summed over the
        images (1.0 with no foreground anywhere); ``mean_image_dice``; ``tp``, ``fp``, ``fn``
        summed and ``precision``, ``recall``, ``f1`` from them; ``mean_image_f1``; the
        :func:`~etem_helpers.metrics.summarize_errors` of all matched pairs; with visibility,
        ``visible_precision/recall/f1`` and ``n_invisible``; with SNRs, ``recall_by_snr``; and
        ``seconds_per_image`` (mean of ``seconds``, NaN without timings).
    """
    if not records:
        raise ValueError("records is empty: score at least one image.")
    sums = {k: sum(int(r[k]) for r in records) for k in _COUNTS}
    ptp, pfp, pfn = sums["pixel_tp"], sums["pixel_fp"], sums["pixel_fn"]
    errors = [r["errors"] for r in records if len(r["errors"])]
    pooled: dict[str, Any] = {
        "n_images": len(records),
        "pixel_dice": _ratio(2 * ptp, 2 * ptp + pfp + pfn, empty=1.0),
        "pixel_iou": _ratio(ptp, ptp + pfp + pfn, empty=1.0),
        "mean_image_dice": float(np.mean([r["dice"] for r in records])),
        "tp": sums["tp"], "fp": sums["fp"], "fn": sums["fn"],
        **detection_scores(sums["tp"], sums["fp"], sums["fn"]),
        "mean_image_f1": float(np.mean([r["f1"] for r in records])),
    }
    pooled.update(summarize_errors(pd.concat(errors, ignore_index=True) if errors
                                   else pd.DataFrame()))
    if all("vis_tp" in r for r in records):
        vis = detection_scores(*(sum(int(r[k]) for r in records)
                                 for k in ("vis_tp", "vis_fp", "vis_fn")))
        pooled.update({f"visible_{k}": v for k, v in vis.items()},
                      n_invisible=sum(int(r["n_invisible"]) for r in records))
    if all("snr_found" in r for r in records):
        pooled["recall_by_snr"] = recall_by_snr([p for r in records for p in r["snr_found"]])
    seconds = [float(r["seconds"]) for r in records if "seconds" in r]
    pooled["seconds_per_image"] = float(np.mean(seconds)) if seconds else float("nan")
    return pooled


def recall_by_snr(snr_found: Sequence[tuple[float, bool]]) -> dict[str, dict[str, float]]:
    """Recall of true particles binned by their visibility (Rose SNR on the image).

    Parameters
    ----------
    snr_found : sequence of (float, bool)
        ``(snr, matched)`` per true particle; NaN SNR (not measurable) goes to "n/a".

    Returns
    -------
    dict
        ``{bin label: {"n": count, "recall": matched fraction (NaN if empty)}}`` for the bins
        ``< 3``, ``3-5``, ``5-7``, ``7-10``, ``>= 10`` and ``n/a``.
    """
    edges = (-np.inf, *SNR_BIN_EDGES, np.inf)
    labels = [f"< {edges[1]:g}"]
    labels += [f"{a:g}-{b:g}" for a, b in zip(edges[1:-2], edges[2:-1], strict=True)]
    labels.append(f">= {edges[-2]:g}")
    snr = np.array([p[0] for p in snr_found], dtype=float)
    hit = np.array([p[1] for p in snr_found], dtype=bool)
    groups = [(snr >= lo) & (snr < hi) for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    out = {}
    for label, inside in zip([*labels, "n/a"], [*groups, ~np.isfinite(snr)], strict=True):
        out[label] = {"n": int(inside.sum()),
                      "recall": float(hit[inside].mean()) if inside.any() else float("nan")}
    return out


Method = Callable[[np.ndarray, float], np.ndarray]


@dataclass
class Evaluation:
    """Per-image records of every method (:func:`evaluate`), pooled on demand.

    Attributes
    ----------
    records : dict
        ``{method: [score_image(...) + {"name", "seconds"} per image]}``.
    """

    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def pooled(self, names: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        """``{method: pool_scores(...)}`` over all images, or only those in ``names``."""
        keep = None if names is None else set(names)
        out = {}
        for method, rows in self.records.items():
            chosen = [r for r in rows if keep is None or r["name"] in keep]
            if chosen:
                out[method] = pool_scores(chosen)
        return out

    def per_image(self) -> pd.DataFrame:
        """One row per (method, image): name, dice, f1, tp, fp, fn, seconds."""
        rows = [{"method": method, **{k: r.get(k) for k in
                                      ("name", "dice", "f1", "tp", "fp", "fn", "seconds")}}
                for method, records in self.records.items() for r in records]
        return pd.DataFrame(rows)


def evaluate(
    samples: Iterable[tuple[str, np.ndarray, np.ndarray, float]],
    methods: Mapping[str, Method],
    *,
    iou_threshold: float = 0.5,
    visibility: bool = False,
) -> Evaluation:
    """Run every method on every image and score it against the true labels.

    Parameters
    ----------
    samples : iterable of (name, image, true_labels, pixel_size_nm)
        Images with their true instance labels and pixel size (nm/px).
    methods : dict
        ``{name: function(image, pixel_size_nm) -> labels}``, e.g.
        ``{"unet": lambda im, px: analyzer(im, px).labels}``.
    iou_threshold : float
        Matching threshold of :func:`score_image`.
    visibility : bool
        Also score against the visible true particles (:func:`visibility_of`) and record the
        recall by SNR.

    Returns
    -------
    Evaluation
        Its ``records`` hold each image's scores and the method's wall-clock ``seconds``.
    """
    result = Evaluation({name: [] for name in methods})
    for name, image, true_labels, pixel_size_nm in samples:
        visible_ids = true_snr = None
        if visibility:
            visible_ids, true_snr = visibility_of(image, true_labels)
        true_table = measure_particles(true_labels, pixel_size_nm)  # once per image
        for method, function in methods.items():
            started = time.perf_counter()
            labels = function(image, pixel_size_nm)
            seconds = time.perf_counter() - started
            record = score_image(labels, true_labels, pixel_size_nm=pixel_size_nm,
                                 iou_threshold=iou_threshold, visible_ids=visible_ids,
                                 true_snr=true_snr, true_table=true_table)
            record.update(name=name, seconds=seconds)
            result.records[method].append(record)
    return result
