"""One tidy comparison table for several methods against a reference, and a report.

:func:`compare_methods` matches, per image, each method's instance label map to the
reference label map (:func:`etem_helpers.metrics.match_instances`, IoU >= 0.5) and
measures both with :func:`etem_helpers.measure.measure_particles`, so every method is
measured by the same code. :func:`summarize_comparison` turns the table into estimates
with image-level bootstrap intervals; :func:`write_report` writes CSV tables, PNG figures
and a short Markdown summary into a folder of its own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from etem_helpers.measure import measure_particles
from etem_helpers.metrics import match_instances

from .agreement import bland_altman, tost
from .bootstrap import cluster_bootstrap, detection_intervals, ratio_interval
from .distributions import ks_two_sample, wasserstein_nm

__all__ = [
    "ComparisonImage",
    "ComparisonTables",
    "QUANTITIES",
    "compare_methods",
    "equivalence_table",
    "summarize_comparison",
    "write_report",
    "REPORT_MARKER",
]

#: Quantities of the particle table compared by default.
QUANTITIES: tuple[str, ...] = ("diameter_nm", "aspect_ratio", "roundness")
#: Name of the marker file that makes a folder a report folder.
REPORT_MARKER = ".etem_stats_report.json"


@dataclass(frozen=True)
class ComparisonImage:
    """One image of a comparison.

    Attributes
    ----------
    image_id : str
        Name of the image (the resampling unit of the intervals).
    reference_labels : (H, W) ndarray of int
        Reference instance labels (simulator truth or hand outlines).
    predictions : mapping of str to (H, W) ndarray of int
        Instance labels of each method, keyed by method name.
    pixel_size_nm : float
        Pixel size of the image (nm/px).
    measurements : mapping of str to pandas.DataFrame, optional
        A method's own particle table (``particle_id``, ``touches_border`` and the compared
        quantities), used instead of :func:`etem_helpers.measure.measure_particles` on its
        labels: for sizing estimators (contour, FeatureNet) that measure the same particles
        differently. Methods not named here are measured from their labels.
    """

    image_id: str
    reference_labels: np.ndarray
    predictions: Mapping[str, np.ndarray]
    pixel_size_nm: float
    measurements: Mapping[str, pd.DataFrame] = field(default_factory=dict)


@dataclass(frozen=True)
class ComparisonTables:
    """Tidy results of :func:`compare_methods`.

    Attributes
    ----------
    particles : pandas.DataFrame
        One row per (image, method, particle pair or unmatched particle, quantity):
        ``image``, ``method``, ``status`` ("tp" matched, "fp" predicted only, "fn"
        reference only), ``matched`` (bool), ``pred_id``, ``true_id`` (-1 when
        absent), ``iou`` (NaN unless matched), ``touches_border`` (either side),
        ``quantity``, ``measured``, ``reference`` (NaN when absent).
    detections : pandas.DataFrame
        One row per (image, method): ``image``, ``method``, ``tp``, ``fp``, ``fn``,
        ``n_pred``, ``n_true``.
    iou_threshold : float
    """

    particles: pd.DataFrame
    detections: pd.DataFrame
    iou_threshold: float = 0.5
    methods: tuple[str, ...] = field(default_factory=tuple)


def _pairs_frame(pred_tab, true_tab, match, quantities) -> pd.DataFrame:
    """Wide rows (one per particle pair / unmatched particle) of one image and method."""
    p = pred_tab.set_index("particle_id")
    t = true_tab.set_index("particle_id")
    parts = []
    for status, pid, tid, iou in (
        ("tp", match.pred_ids, match.true_ids, match.ious),
        ("fp", match.unmatched_pred_ids, None, None),
        ("fn", None, match.unmatched_true_ids, None),
    ):
        n = len(pid) if pid is not None else len(tid)
        row = {
            "status": np.full(n, status),
            "pred_id": np.asarray(pid if pid is not None else np.full(n, -1), np.int64),
            "true_id": np.asarray(tid if tid is not None else np.full(n, -1), np.int64),
            "iou": np.asarray(iou if iou is not None else np.full(n, np.nan), np.float64),
        }
        border = np.zeros(n, dtype=bool)
        if pid is not None:
            border |= p.loc[pid, "touches_border"].to_numpy(bool)
        if tid is not None:
            border |= t.loc[tid, "touches_border"].to_numpy(bool)
        row["touches_border"] = border
        for q in quantities:
            row[f"measured:{q}"] = (p.loc[pid, q].to_numpy(np.float64) if pid is not None
                                    else np.full(n, np.nan))
            row[f"reference:{q}"] = (t.loc[tid, q].to_numpy(np.float64) if tid is not None
                                     else np.full(n, np.nan))
        parts.append(pd.DataFrame(row))
    return pd.concat(parts, ignore_index=True)


def _to_long(wide: pd.DataFrame, quantities) -> pd.DataFrame:
    keys = ["image", "method", "status", "matched", "pred_id", "true_id", "iou",
            "touches_border"]
    frames = []
    for q in quantities:
        f = wide[keys].copy()
        f["quantity"] = q
        f["measured"] = wide[f"measured:{q}"].to_numpy()
        f["reference"] = wide[f"reference:{q}"].to_numpy()
        frames.append(f)
    return pd.concat(frames, ignore_index=True)


def compare_methods(
    images: Iterable[ComparisonImage],
    *,
    iou_threshold: float = 0.5,
    quantities: tuple[str, ...] = QUANTITIES,
) -> ComparisonTables:
    """Match and measure every method's particles against the reference, per image.

    Parameters
    ----------
    images : iterable of ComparisonImage
        The images; each must hold a prediction of every method named in the first.
    iou_threshold : float, optional
        IoU a pair needs to count as matched. Default 0.5.
    quantities : tuple of str, optional
        Columns of :func:`etem_helpers.measure.measure_particles` to compare.

    Returns
    -------
    ComparisonTables
    """
    wide_parts, det_rows, methods, seen = [], [], None, set()
    for img in images:
        if img.image_id in seen:
            raise ValueError(f"image_id {img.image_id!r} appears twice; names must be unique.")
        seen.add(img.image_id)
        if methods is None:
            methods = tuple(img.predictions)
            if not methods:
                raise ValueError(f"image {img.image_id!r} has no predictions.")
        if tuple(img.predictions) != methods:
            raise ValueError(
                f"image {img.image_id!r} has methods {tuple(img.predictions)}, expected "
                f"{methods}; give every image the same methods in the same order."
            )
        true_tab = measure_particles(img.reference_labels, img.pixel_size_nm)
        for method, labels in img.predictions.items():
            match = match_instances(labels, img.reference_labels, iou_threshold=iou_threshold)
            pred_tab = img.measurements.get(method)
            if pred_tab is None:
                pred_tab = measure_particles(labels, img.pixel_size_nm)
            wide = _pairs_frame(pred_tab, true_tab, match, quantities)
            wide.insert(0, "method", method)
            wide.insert(0, "image", str(img.image_id))
            wide_parts.append(wide)
            det_rows.append({
                "image": str(img.image_id), "method": method, "tp": match.n_matched,
                "fp": int(match.unmatched_pred_ids.size),
                "fn": int(match.unmatched_true_ids.size),
                "n_pred": match.n_pred, "n_true": match.n_true,
            })
    if methods is None:
        raise ValueError("images is empty; pass at least one ComparisonImage.")
    wide = pd.concat(wide_parts, ignore_index=True)
    wide["matched"] = wide["status"] == "tp"
    return ComparisonTables(
        particles=_to_long(wide, quantities),
        detections=pd.DataFrame(det_rows),
        iou_threshold=float(iou_threshold),
        methods=methods,
    )


def _row(method, metric, unit, iv, replication=(np.nan, np.nan)) -> dict:
    return {"method": method, "metric": metric, "unit": unit, "estimate": iv.estimate,
            "ci_low": iv.ci_low, "ci_high": iv.ci_high, "rep_low": replication[0],
            "rep_high": replication[1], "n": iv.n, "n_images": iv.n_groups,
            "interval": f"{iv.method}, image-level" if iv.n_resamples else iv.method}


def _replication(numerators, denominators, transform=None, **bootstrap) -> tuple:
    """Bootstrap-t replication limits of a pooled ratio of per-image totals (NaN if undefined)."""
    try:
        iv = ratio_interval(numerators, denominators, kind="replication", **bootstrap)
    except ValueError:
        return np.nan, np.nan
    if transform is not None:
        return transform(iv.ci_low), transform(iv.ci_high)
    return iv.ci_low, iv.ci_high


def _ratio_parts(per_image: pd.DataFrame) -> dict:
    """Per-image (numerator, denominator) of each pooled metric from summed columns."""
    tp, fp, fn = (per_image[c].to_numpy(float) for c in ("tp", "fp", "fn"))
    return {"precision": (tp, tp + fp), "recall": (tp, tp + fn), "f1": (2 * tp, 2 * tp + fp + fn)}


def summarize_comparison(
    tables: ComparisonTables,
    *,
    quantity: str = "diameter_nm",
    exclude_border: bool = True,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed=0,
) -> pd.DataFrame:
    """Detection and size-error metrics per method with image-level bootstrap intervals.

    Parameters
    ----------
    tables : ComparisonTables
        From :func:`compare_methods`.
    quantity : str, optional
        Quantity whose errors are summarised. Default ``"diameter_nm"``.
    exclude_border : bool, optional
        Leave particles cut by the image edge out of the size errors (their size is a
        lower bound). Detection counts always include them.
    n_resamples, confidence, seed
        Bootstrap settings (the same seed for every method).

    Returns
    -------
    pandas.DataFrame
        Long table: ``method``, ``metric`` (precision, recall, f1, bias, mae, rmse,
        loa_low, loa_high, n_matched), ``unit``, ``estimate``, ``ci_low``, ``ci_high``,
        ``rep_low``, ``rep_high``, ``n``, ``n_images``, ``interval``. ``ci_*`` is the
        percentile image-level bootstrap confidence interval; ``rep_*`` the 95 %
        *replication* interval of the pooled ratios (precision to rmse: where the value of
        an independent test set of as many images should fall; bootstrap-t, see
        :func:`etem_helpers.stats.ratio_interval`). Limits of agreement carry the exact
        normal-theory interval (Carkeet), which treats particles as independent, and no
        replication interval.
    """
    rows = []
    for method in tables.methods:
        det = tables.detections[tables.detections["method"] == method]
        scores = detection_intervals(det, n_resamples=n_resamples, confidence=confidence,
                                  seed=seed)
        bootstrap = {"confidence": confidence, "n_resamples": n_resamples, "seed": seed}
        parts = _ratio_parts(det)
        for name in ("precision", "recall", "f1"):
            rows.append(_row(method, name, "", getattr(scores, name),
                             _replication(*parts[name], **bootstrap)))
        sel = tables.particles
        sel = sel[(sel["method"] == method) & sel["matched"] & (sel["quantity"] == quantity)]
        if exclude_border:
            sel = sel[~sel["touches_border"]]
        sel = sel[np.isfinite(sel["measured"]) & np.isfinite(sel["reference"])]
        unit = "nm" if quantity.endswith("_nm") else ""
        if len(sel) < 3:
            continue
        err = (sel["measured"] - sel["reference"]).rename("error").to_frame()
        err["image"] = sel["image"].to_numpy()
        per_image = err.assign(abs=err["error"].abs(), sq=err["error"] ** 2,
                               count=1.0).groupby("image")[["error", "abs", "sq", "count"]].sum()
        count = per_image["count"].to_numpy()
        for metric, stat, column, transform in (
            ("bias", lambda t: float(t["error"].mean()), "error", None),
            ("mae", lambda t: float(t["error"].abs().mean()), "abs", None),
            ("rmse", lambda t: float(np.sqrt((t["error"] ** 2).mean())), "sq",
             lambda v: float(np.sqrt(max(v, 0.0)))),
        ):
            iv = cluster_bootstrap(err, stat, n_resamples=n_resamples, confidence=confidence,
                                   seed=seed)
            rows.append(_row(method, metric, unit, iv,
                             _replication(per_image[column].to_numpy(), count, transform,
                                          **bootstrap)))
        ba = bland_altman(sel["measured"], sel["reference"], confidence=confidence)
        n_img = int(sel["image"].nunique())
        for metric, est, ci in (("loa_low", ba.loa_low, ba.loa_low_ci),
                                ("loa_high", ba.loa_high, ba.loa_high_ci)):
            rows.append({"method": method, "metric": metric, "unit": unit, "estimate": est,
                         "ci_low": ci[0], "ci_high": ci[1], "n": ba.n, "n_images": n_img,
                         "interval": "exact normal (particles independent)"})
    return pd.DataFrame(rows)


def equivalence_table(
    tables: ComparisonTables,
    margin: float | tuple[float, float],
    *,
    quantity: str = "diameter_nm",
    alpha: float = 0.05,
    exclude_border: bool = True,
) -> pd.DataFrame:
    """TOST equivalence of each method's mean difference to the reference, image by image.

    Runs :func:`etem_helpers.stats.tost` with ``groups=image`` on the matched pairs, so the
    test uses one mean difference per image (particles of one image are not independent).

    Parameters
    ----------
    tables : ComparisonTables
        From :func:`compare_methods`.
    margin : float or (float, float)
        Equivalence margin in the unit of ``quantity`` (nm for ``diameter_nm``), stated
        before looking at the data: ``m`` means ``(-m, m)``.
    quantity : str, optional
        Compared quantity. Default ``"diameter_nm"``.
    alpha : float, optional
        Level of each one-sided test (the interval shown is ``1 - 2 alpha``).
    exclude_border : bool, optional
        Leave out pairs cut by the image edge.

    Returns
    -------
    pandas.DataFrame
        One row per method: ``method``, ``margin_low``, ``margin_high``, ``estimate`` (mean
        of the per-image mean differences), ``ci_low``, ``ci_high``, ``pvalue``,
        ``equivalent``, ``n_images``, ``n_pairs``. Methods with fewer than 2 images of
        matched pairs get NaN and ``equivalent=False``.
    """
    q = tables.particles
    q = q[(q["quantity"] == quantity) & q["matched"]]
    if exclude_border:
        q = q[~q["touches_border"]]
    q = q[np.isfinite(q["measured"]) & np.isfinite(q["reference"])]
    rows = []
    for method in tables.methods:
        sub = q[q["method"] == method]
        row = {"method": method, "n_images": int(sub["image"].nunique()), "n_pairs": len(sub)}
        if row["n_images"] >= 2:
            res = tost(sub["measured"], sub["reference"], margin=margin, alpha=alpha,
                       groups=sub["image"].to_numpy())
            row.update(margin_low=res.margin_low, margin_high=res.margin_high,
                       estimate=res.estimate, ci_low=res.ci_low, ci_high=res.ci_high,
                       pvalue=res.pvalue, equivalent=res.equivalent)
        else:
            low, high = (-abs(margin), abs(margin)) if np.ndim(margin) == 0 else margin
            row.update(margin_low=float(low), margin_high=float(high), estimate=np.nan,
                       ci_low=np.nan, ci_high=np.nan, pvalue=np.nan, equivalent=False)
        rows.append(row)
    columns = ["method", "margin_low", "margin_high", "estimate", "ci_low", "ci_high",
               "pvalue", "equivalent", "n_images", "n_pairs"]
    return pd.DataFrame(rows)[columns]


# ---------------------------------------------------------------------------------------
# Report


def _safe_name(method: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", method).strip("_") or "method"


def _claim_folder(out: Path, names: list[str]) -> dict:
    """Check that ``out`` is fresh or ours and that we may write ``names`` there."""
    marker = out / REPORT_MARKER
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"out_dir {out} is a file; pass a folder path.")
    if out.is_dir() and any(out.iterdir()) and not marker.exists():
        raise FileExistsError(
            f"out_dir {out} is not empty and was not written by write_report (no "
            f"{REPORT_MARKER}); pass a new folder so no file of yours is overwritten."
        )
    owned = json.loads(marker.read_text())["files"] if marker.exists() else []
    clash = [n for n in names if (out / n).exists() and n not in owned]
    if clash:
        raise FileExistsError(
            f"out_dir {out} holds {clash} that write_report did not write; remove them "
            "or pass a new folder."
        )
    out.mkdir(parents=True, exist_ok=True)
    return {"files": sorted(set(owned) | set(names))}


def _plot_bland_altman(ba, method, quantity, path):
    from matplotlib.figure import Figure  # no pyplot: leaves the user's backend alone

    fig = Figure(figsize=(5.5, 4.0))
    ax = fig.subplots()
    ax.scatter(ba.means, ba.differences, s=8, alpha=0.5, color="tab:blue")
    for value, ci, style in ((ba.bias, ba.bias_ci, "-"), (ba.loa_low, ba.loa_low_ci, "--"),
                             (ba.loa_high, ba.loa_high_ci, "--")):
        ax.axhline(value, color="k", ls=style, lw=1)
        ax.axhspan(ci[0], ci[1], color="0.6", alpha=0.3, lw=0)
    ax.axhline(0, color="tab:red", lw=0.8, alpha=0.6)
    ax.set_xlabel(f"mean of method and reference ({quantity})")
    ax.set_ylabel(f"method - reference ({quantity})")
    ax.set_title(f"{method}: bias {ba.bias:.3g}, 95 % LoA [{ba.loa_low:.3g}, {ba.loa_high:.3g}]",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _plot_forest(summary, path):
    from matplotlib.figure import Figure  # no pyplot: leaves the user's backend alone

    panels = [("detection", summary[summary["unit"] == ""]),
              ("size error", summary[(summary["unit"] != "")
                                     & summary["metric"].isin(["bias", "mae", "rmse"])])]
    fig = Figure(figsize=(10, 0.35 * max(len(p) for _, p in panels) + 1.5))
    axes = fig.subplots(1, 2)
    for ax, (title, part) in zip(axes, panels, strict=True):
        labels = [f"{m} · {k}" for m, k in zip(part["method"], part["metric"], strict=True)]
        y = np.arange(len(part))[::-1]
        ax.errorbar(part["estimate"], y, xerr=[part["estimate"] - part["ci_low"],
                                                part["ci_high"] - part["estimate"]],
                    fmt="o", color="k", ms=4, capsize=3)
        ax.set_yticks(y, labels, fontsize=8)
        unit = part["unit"].iloc[0] if len(part) else ""
        ax.set_title(f"{title}" + (f" ({unit})" if unit else ""), fontsize=10)
        if title == "size error":
            ax.axvline(0, color="tab:red", lw=0.8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _plot_distributions(particles, methods, quantity, path):
    from matplotlib.figure import Figure  # no pyplot: leaves the user's backend alone

    q = particles[particles["quantity"] == quantity]
    ref = q[(q["method"] == methods[0]) & q["status"].isin(["tp", "fn"])]["reference"]
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    values = [ref.dropna().to_numpy()] + [
        q[(q["method"] == m) & q["status"].isin(["tp", "fp"])]["measured"].dropna().to_numpy()
        for m in methods]
    pooled = np.concatenate([v for v in values if v.size]) if any(v.size for v in values) else None
    bins = np.histogram_bin_edges(pooled, bins=30) if pooled is not None else 10
    ax.hist(values[0], bins=bins, color="0.7", label="reference")
    for m, v in zip(methods, values[1:], strict=True):
        ax.hist(v, bins=bins, histtype="step", lw=1.5, label=m)
    ax.set_xlabel(quantity)
    ax.set_ylabel("particles")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _markdown(summary, dist_rows, tables, quantity, confidence) -> str:
    lines = ["# Method comparison", "",
             f"Images: {tables.detections['image'].nunique()}; methods: "
             f"{', '.join(tables.methods)}; matching IoU >= {tables.iou_threshold:g}; "
             f"quantity: `{quantity}`. Intervals: {100 * confidence:g} % "
             "(image-level bootstrap unless stated).", "",
             "| method | metric | estimate | interval |", "| --- | --- | --- | --- |"]
    for r in summary.itertuples():
        unit = f" {r.unit}" if r.unit else ""
        lines.append(f"| {r.method} | {r.metric} | {r.estimate:.4g}{unit} | "
                     f"[{r.ci_low:.4g}, {r.ci_high:.4g}] ({r.interval}) |")
    lines += ["", "## Size distribution against the reference", "",
              "| method | KS D | KS p | Wasserstein |", "| --- | --- | --- | --- |"]
    for r in dist_rows:
        lines.append(f"| {r['method']} | {r['ks_d']:.3g} | {r['ks_p']:.3g} | "
                     f"{r['wasserstein']:.3g} |")
    lines += ["", "A p-value says whether a difference is exactly zero, not whether it "
              "matters; read the estimates, their intervals and the limits of agreement "
              "against the tolerance you need.", ""]
    return "\n".join(lines)


def _equivalence_markdown(equivalence: pd.DataFrame, quantity: str, note: str) -> str:
    lines = ["", "## Equivalence to the reference (TOST on per-image mean differences)", ""]
    if note:
        lines += [f"Margin: {note}", ""]
    lines += ["| method | margin | mean difference | 90 % interval | p (TOST) | equivalent |",
              "| --- | --- | --- | --- | --- | --- |"]
    for r in equivalence.itertuples():
        lines.append(f"| {r.method} | [{r.margin_low:.4g}, {r.margin_high:.4g}] | "
                     f"{r.estimate:.4g} | [{r.ci_low:.4g}, {r.ci_high:.4g}] | {r.pvalue:.3g} | "
                     f"{'yes' if r.equivalent else 'no'} |")
    lines += ["", f"Equivalent means: the 90 % interval of the mean `{quantity}` difference "
              "lies inside the margin (two one-sided tests at 5 %), with one mean difference "
              "per image.", ""]
    return "\n".join(lines)


def write_report(
    tables: ComparisonTables,
    out_dir,
    *,
    quantity: str = "diameter_nm",
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed=0,
    margin: float | tuple[float, float] | None = None,
    margin_note: str = "",
) -> dict[str, Path]:
    """Write CSV tables, PNG figures and a Markdown summary of a comparison.

    Parameters
    ----------
    tables : ComparisonTables
        From :func:`compare_methods`.
    out_dir : str or Path
        A new folder, or one written before by this function (it holds
        :data:`REPORT_MARKER`). Files it did not write are never overwritten.
    quantity, n_resamples, confidence, seed
        As in :func:`summarize_comparison`.
    margin : float or (float, float), optional
        Equivalence margin in the unit of ``quantity``; if given, also writes
        ``equivalence.csv`` (:func:`equivalence_table` at alpha 0.05, a 90 % interval)
        and a section of the Markdown summary.
    margin_note : str, optional
        Why this margin (written into the summary).

    Returns
    -------
    dict of str to Path
        What was written: ``particles``, ``detections``, ``summary``,
        ``distributions`` (CSV), ``forest``, ``size_distributions`` and
        ``bland_altman:<method>`` (PNG), ``markdown``, and ``equivalence`` (CSV) with
        a margin.
    """
    out = Path(out_dir)
    names = {"particles": "particles.csv", "detections": "detections.csv",
             "summary": "summary.csv", "distributions": "distributions.csv",
             "forest": "forest.png", "size_distributions": "size_distributions.png",
             "markdown": "summary.md"}
    if margin is not None:
        names["equivalence"] = "equivalence.csv"
    for m in tables.methods:
        names[f"bland_altman:{m}"] = f"bland_altman_{_safe_name(m)}.png"
    marker = _claim_folder(out, list(names.values()))
    summary = summarize_comparison(tables, quantity=quantity, n_resamples=n_resamples,
                                   confidence=confidence, seed=seed)
    q = tables.particles[tables.particles["quantity"] == quantity]
    ref = q[(q["method"] == tables.methods[0]) & q["status"].isin(["tp", "fn"])]["reference"]
    dist_rows = []
    for m in tables.methods:
        sub = q[q["method"] == m]
        meas = sub[sub["status"].isin(["tp", "fp"])]["measured"].dropna()
        ks = ks_two_sample(meas, ref) if len(meas) >= 2 and ref.notna().sum() >= 2 else None
        dist_rows.append({"method": m, "ks_d": ks.statistic if ks else np.nan,
                          "ks_p": ks.pvalue if ks else np.nan,
                          "wasserstein": wasserstein_nm(meas, ref) if ks else np.nan})
        pairs = sub[sub["matched"] & ~sub["touches_border"]].dropna(subset=["measured",
                                                                             "reference"])
        if len(pairs) >= 3:
            ba = bland_altman(pairs["measured"], pairs["reference"], confidence=confidence)
            _plot_bland_altman(ba, m, quantity, out / names[f"bland_altman:{m}"])
    tables.particles.to_csv(out / names["particles"], index=False)
    tables.detections.to_csv(out / names["detections"], index=False)
    summary.to_csv(out / names["summary"], index=False)
    pd.DataFrame(dist_rows).to_csv(out / names["distributions"], index=False)
    _plot_forest(summary, out / names["forest"])
    _plot_distributions(tables.particles, tables.methods, quantity,
                        out / names["size_distributions"])
    text = _markdown(summary, dist_rows, tables, quantity, confidence)
    if margin is not None:
        equivalence = equivalence_table(tables, margin, quantity=quantity)
        equivalence.to_csv(out / names["equivalence"], index=False)
        text += _equivalence_markdown(equivalence, quantity, margin_note)
    (out / names["markdown"]).write_text(text)
    (out / REPORT_MARKER).write_text(json.dumps(marker, indent=1))
    return {k: out / v for k, v in names.items() if (out / v).exists()}
