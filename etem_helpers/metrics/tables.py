"""Markdown tables of pooled scores (:func:`etem_helpers.metrics.evaluate`), as the benchmarks print."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["TABLE_COLUMNS", "format_recall_by_snr", "format_table", "jsonable"]

#: (key of the pooled scores, column label, number format) of :func:`format_table`.
TABLE_COLUMNS = (
    ("pixel_dice", "Dice", "{:.3f}"),
    ("pixel_iou", "IoU", "{:.3f}"),
    ("precision", "P", "{:.3f}"),
    ("recall", "R", "{:.3f}"),
    ("f1", "F1", "{:.3f}"),
    ("visible_f1", "F1 vis.", "{:.3f}"),
    ("diameter_mae_nm", "diam. MAE nm", "{:.2f}"),
    ("aspect_ratio_rmse", "AR RMSE", "{:.3f}"),
    ("roundness_rmse", "round. RMSE", "{:.3f}"),
    ("seconds_per_image", "s/img", "{:.3f}"),
)


def format_table(results: Mapping[str, Mapping[str, Any]], *, title: str = "") -> str:
    """A Markdown table, one row per method, the columns of :data:`TABLE_COLUMNS`.

    Parameters
    ----------
    results : dict
        ``{method: pooled scores}`` (:meth:`Evaluation.pooled`); missing or NaN values print
        as ``n/a``.
    title : str
        A line printed above the table.
    """
    lines = [title] if title else []
    lines += ["| method | n | " + " | ".join(label for _, label, _ in TABLE_COLUMNS) + " |",
              "| --- | ---: | " + " | ".join("---:" for _ in TABLE_COLUMNS) + " |"]
    for method, scores in results.items():
        cells = []
        for key, _, fmt in TABLE_COLUMNS:
            value = scores.get(key, float("nan"))
            cells.append("n/a" if value is None or not np.isfinite(value) else fmt.format(value))
        lines.append(f"| {method} | {scores.get('n_images', 0)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_recall_by_snr(results: Mapping[str, Mapping[str, Any]], *, title: str = "") -> str:
    """A Markdown table: recall (and count) per visibility bin, one row per method."""
    rows = {m: s["recall_by_snr"] for m, s in results.items() if "recall_by_snr" in s}
    if not rows:
        return ""
    bins = list(next(iter(rows.values())))
    lines = [title] if title else []
    lines += ["| method | " + " | ".join(f"SNR {b}" for b in bins) + " |",
              "| --- | " + " | ".join("---:" for _ in bins) + " |"]
    for method, table in rows.items():
        cells = ["n/a" if not np.isfinite(table[b]["recall"]) else
                 f"{table[b]['recall']:.2f} ({table[b]['n']})" for b in bins]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def jsonable(value: Any) -> Any:
    """Results as plain JSON data: NumPy scalars to Python numbers, NaN/inf to None, keys to str.

    Parameters
    ----------
    value : any
        Nested dicts, lists and tuples of numbers, strings and NumPy scalars.

    Returns
    -------
    The same structure, serialisable by :func:`json.dumps` (non-finite floats become None).
    """
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return None if not np.isfinite(value) else float(value)
    return value
