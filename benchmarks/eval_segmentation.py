"""Evaluate a segmentation checkpoint and the classical baselines on held-out images.

Usage (from the repository root)::

    python benchmarks/eval_segmentation.py \
        [--checkpoint etem_helpers/models/default.pt] \
        [--real-source ../shared/real/msa-em-sintering] [--real-pixel-size-nm 0.5] \
        [--json etem_helpers/models/default_report.json]

What it does:

1. **Simulated test split.** Reads the training configuration stored in the checkpoint,
   re-creates (or reuses) the simulated dataset it names (deterministic from the config's
   seed) and the held-out *test* split (``split_by_micrograph`` of the dataset with the
   config's fractions and seed, checked against the split stored in the checkpoint). The
   test split was never used for model selection (the training loop selects on *val*).
2. **Real sample.** The 20 bright-field micrographs with hand-drawn masks of
   :mod:`etem_helpers.real_data` (never used in training), reported on
   ``SINTERING_EVALUATION_IDS`` (held out from all tuning) and on all 20. Their pixel size is
   unknown: an explicit nominal pixel size (default 0.5 nm/px, inside the model's range) is
   passed. No resampling happens inside the range, so the segmentation does not depend on
   this choice; only the nm-valued columns (diameter error) and the baselines' nm-valued
   settings (smoothing 0.5 nm, minimum diameter 1 nm) do.
3. For each method (the U-Net via :func:`etem_helpers.analyze`,
   :func:`etem_helpers.baselines.otsu_watershed`,
   :func:`etem_helpers.baselines.adaptive_threshold_watershed`, all with default settings;
   the U-Net's defaults are the post-processing settings stored in its checkpoint, chosen on
   the validation split when it was trained)
   it prints a table of pixel Dice and IoU (pooled over all pixels of the set), instance
   precision, recall and F1 (Hungarian matching at IoU >= 0.5, counts pooled over the set),
   diameter MAE (nm), aspect-ratio and roundness RMSE (over all matched pairs) and seconds per
   image, and writes everything to a JSON report. On the simulated split it also reports
   **F1 vis.**: instance F1 against the true particles that are *visible* by Rose's
   criterion (:func:`etem_helpers.metrics.particle_visibility`: contrast >= 5 times the noise
   of a particle-sized patch of empty support, measured on the image itself); matches to
   invisible particles are ignored, unmatched predictions still count as false positives.

Real-sample instances are the connected components of the hand-drawn binary masks (the source
has no instance labels), so two touching particles drawn as one blob count as one true
particle.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CHECKPOINT = REPOSITORY_ROOT / "etem_helpers" / "models" / "default.pt"
DEFAULT_JSON = REPOSITORY_ROOT / "etem_helpers" / "models" / "default_report.json"
METHODS = ("unet", "otsu_watershed", "adaptive_threshold_watershed")
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


# --------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------
def score_image(
    pred_labels: np.ndarray,
    true_labels: np.ndarray,
    *,
    pixel_size_nm: float,
    iou_threshold: float = 0.5,
    visible_ids: Sequence[int] | None = None,
    true_snr: Mapping[int, float] | None = None,
) -> dict[str, Any]:
    """Pixel counts, instance counts and matched size/shape errors of one image.

    Parameters
    ----------
    pred_labels, true_labels : ndarray of int, shape (H, W)
        Predicted and true instance label maps (0 background).
    pixel_size_nm : float
        Pixel size in nm/px (for the diameters).
    iou_threshold : float
        IoU (0–1] a predicted and a true particle must reach to match.
    visible_ids : sequence of int, optional
        True particles that are visible (Rose criterion); if given, the counts of
        :func:`etem_helpers.metrics.visible_instance_scores` are added (``vis_tp``,
        ``vis_fp``, ``vis_fn``, ``n_invisible``).
    true_snr : mapping of int to float, optional
        Visibility (Rose SNR) of each true particle id; if given, ``snr_found`` lists
        ``(snr, matched)`` for every true particle.

    Returns
    -------
    dict
        ``pixel_tp``, ``pixel_fp``, ``pixel_fn`` (foreground pixel counts), ``tp``, ``fp``,
        ``fn`` (particle counts), ``dice`` and ``f1`` of this image, and ``errors`` (the
        :func:`etem_helpers.metrics.matched_errors` table of the matched pairs).
    """
    from etem_helpers.measure import measure_particles
    from etem_helpers.metrics import dice_coefficient, match_instances, matched_errors

    pred_labels = np.asarray(pred_labels)
    true_labels = np.asarray(true_labels)
    if pred_labels.shape != true_labels.shape:
        raise ValueError(
            f"pred_labels {pred_labels.shape} and true_labels {true_labels.shape} differ in "
            "shape; score label maps of the same image."
        )
    pred_fg, true_fg = pred_labels > 0, true_labels > 0
    match = match_instances(pred_labels, true_labels, iou_threshold=iou_threshold)
    errors = matched_errors(
        measure_particles(pred_labels, pixel_size_nm),
        measure_particles(true_labels, pixel_size_nm),
        match,
    )
    tp, fp, fn = match.n_matched, match.unmatched_pred_ids.size, match.unmatched_true_ids.size
    visible = {}
    if visible_ids is not None:
        from etem_helpers.metrics import visible_instance_scores

        scores = visible_instance_scores(pred_labels, true_labels, visible_ids, match=match)
        visible = {"vis_tp": scores["tp"], "vis_fp": scores["fp"], "vis_fn": scores["fn"],
                   "n_invisible": scores["n_invisible"]}
    if true_snr is not None:
        found = set(int(i) for i in match.true_ids)
        visible["snr_found"] = [(float(true_snr.get(int(i), np.nan)), int(i) in found)
                                for i in np.unique(true_labels[true_fg])]
    return {
        **visible,
        "pixel_tp": int(np.count_nonzero(pred_fg & true_fg)),
        "pixel_fp": int(np.count_nonzero(pred_fg & ~true_fg)),
        "pixel_fn": int(np.count_nonzero(~pred_fg & true_fg)),
        "tp": int(tp),
        "fp": int(fp),
        "fn": int(fn),
        "dice": float(dice_coefficient(pred_fg, true_fg)),
        "f1": 1.0 if tp + fp + fn == 0 else 2.0 * tp / (2.0 * tp + fp + fn),
        "errors": errors,
    }


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator > 0 else float("nan")


def aggregate_scores(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Pool per-image scores of :func:`score_image` over a set of images.

    Parameters
    ----------
    records : sequence of dict
        Outputs of :func:`score_image`, optionally with ``seconds`` (run time of the method
        on that image, s).

    Returns
    -------
    dict
        ``n_images``; ``pixel_dice`` and ``pixel_iou`` from the pixel counts summed over the
        images; ``mean_image_dice``; ``tp``, ``fp``, ``fn`` summed and ``precision``,
        ``recall``, ``f1`` from them; ``mean_image_f1``; the
        :func:`etem_helpers.metrics.summarize_errors` of all matched pairs
        (``diameter_mae_nm``, ``aspect_ratio_rmse``, ``roundness_rmse``, ...); and
        ``seconds_per_image`` (mean, NaN without timings). With no foreground at all in
        prediction and truth, Dice and IoU are 1.0.
    """
    from etem_helpers.metrics import summarize_errors

    if not records:
        raise ValueError("records is empty: score at least one image.")
    sums = {k: sum(int(r[k]) for r in records) for k in
            ("pixel_tp", "pixel_fp", "pixel_fn", "tp", "fp", "fn")}
    ptp, pfp, pfn = sums["pixel_tp"], sums["pixel_fp"], sums["pixel_fn"]
    tp, fp, fn = sums["tp"], sums["fp"], sums["fn"]
    no_pixels = ptp + pfp + pfn == 0
    errors = [r["errors"] for r in records if len(r["errors"])]
    summary = summarize_errors(pd.concat(errors, ignore_index=True) if errors else
                               records[0]["errors"].iloc[0:0])
    seconds = [float(r["seconds"]) for r in records if "seconds" in r]
    visible = {}
    if all("vis_tp" in r for r in records):
        vtp, vfp, vfn = (sum(int(r[k]) for r in records) for k in ("vis_tp", "vis_fp", "vis_fn"))
        visible = {
            "n_invisible": sum(int(r["n_invisible"]) for r in records),
            "visible_precision": _ratio(vtp, vtp + vfp),
            "visible_recall": _ratio(vtp, vtp + vfn),
            "visible_f1": _ratio(2 * vtp, 2 * vtp + vfp + vfn),
        }
    if all("snr_found" in r for r in records):
        visible["recall_by_snr"] = recall_by_snr(
            [pair for r in records for pair in r["snr_found"]])
    return {
        **visible,
        "n_images": len(records),
        "pixel_dice": 1.0 if no_pixels else _ratio(2 * ptp, 2 * ptp + pfp + pfn),
        "pixel_iou": 1.0 if no_pixels else _ratio(ptp, ptp + pfp + pfn),
        "mean_image_dice": float(np.mean([r["dice"] for r in records])),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "mean_image_f1": float(np.mean([r["f1"] for r in records])),
        **summary,
        "seconds_per_image": float(np.mean(seconds)) if seconds else float("nan"),
    }


#: Edges of the visibility bins of :func:`recall_by_snr` (Rose SNR; 5 = Rose's criterion).
SNR_BIN_EDGES = (3.0, 5.0, 7.0, 10.0)


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
    labels = [f"< {edges[1]:g}"] + [f"{a:g}-{b:g}" for a, b in zip(edges[1:-2], edges[2:-1],
                                                                     strict=True)]
    labels.append(f">= {edges[-2]:g}")
    out = {}
    snr = np.array([p[0] for p in snr_found], dtype=float)
    hit = np.array([p[1] for p in snr_found], dtype=bool)
    for label, low, high in zip(labels, edges[:-1], edges[1:], strict=True):
        inside = (snr >= low) & (snr < high)
        out[label] = {"n": int(inside.sum()),
                      "recall": float(hit[inside].mean()) if inside.any() else float("nan")}
    unknown = ~np.isfinite(snr)
    out["n/a"] = {"n": int(unknown.sum()),
                  "recall": float(hit[unknown].mean()) if unknown.any() else float("nan")}
    return out


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


def format_table(results: Mapping[str, Mapping[str, Any]], *, title: str = "") -> str:
    """A Markdown table with one row per method and the columns of :data:`TABLE_COLUMNS`.

    Parameters
    ----------
    results : dict
        ``{method name: aggregate_scores(...)}``.
    title : str
        Optional heading line printed above the table.
    """
    header = "| method | n | " + " | ".join(label for _, label, _ in TABLE_COLUMNS) + " |"
    rule = "| --- | ---: | " + " | ".join("---:" for _ in TABLE_COLUMNS) + " |"
    lines = [title] if title else []
    lines += [header, rule]
    for method, scores in results.items():
        cells = []
        for key, _, fmt in TABLE_COLUMNS:
            value = scores.get(key, float("nan"))
            cells.append("n/a" if value is None or not np.isfinite(value) else fmt.format(value))
        lines.append(f"| {method} | {scores.get('n_images', 0)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def mask_to_instances(mask: np.ndarray) -> np.ndarray:
    """Instance labels (int32) of a binary mask: its 8-connected components, 1..N."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}.")
    labels, _ = ndi.label(mask != 0, structure=np.ones((3, 3), dtype=bool))
    return labels.astype(np.int32)


# --------------------------------------------------------------------------------------
# Methods
# --------------------------------------------------------------------------------------
def make_methods(
    model: tuple[Any, Mapping[str, Any]] | None, *, device: str = "cpu", names: Iterable[str]
) -> dict[str, Callable[[np.ndarray, float], np.ndarray]]:
    """Label-map functions ``f(image, pixel_size_nm) -> labels`` by method name.

    Parameters
    ----------
    model : (torch.nn.Module, dict) or None
        ``load_checkpoint`` output, needed for ``"unet"``.
    device : str
        Device of the U-Net.
    names : iterable of str
        Among :data:`METHODS`.
    """
    from etem_helpers import baselines

    def unet(image, pixel_size_nm):
        from etem_helpers.analysis import analyze

        return analyze(image, pixel_size_nm, model=model, device=device).labels

    def otsu(image, pixel_size_nm):
        return baselines.otsu_watershed(image, pixel_size_nm).labels

    def adaptive(image, pixel_size_nm):
        return baselines.adaptive_threshold_watershed(image, pixel_size_nm).labels

    available = {"unet": unet, "otsu_watershed": otsu, "adaptive_threshold_watershed": adaptive}
    methods = {}
    for name in names:
        if name not in available:
            raise ValueError(f"Unknown method {name!r}; choose from {METHODS}.")
        if name == "unet" and model is None:
            raise ValueError("The 'unet' method needs a model (checkpoint).")
        methods[name] = available[name]
    return methods


def evaluate_images(
    samples: Iterable[tuple[str, np.ndarray, np.ndarray, float]],
    methods: Mapping[str, Callable[[np.ndarray, float], np.ndarray]],
    *,
    iou_threshold: float = 0.5,
    visibility: bool = False,
) -> dict[str, list[dict[str, Any]]]:
    """Run every method on every sample and score it.

    Parameters
    ----------
    samples : iterable of (name, image, true_labels, pixel_size_nm)
        Images with their true instance labels and pixel size (nm/px).
    methods : dict
        From :func:`make_methods`.
    iou_threshold : float
        Matching threshold of :func:`score_image`.
    visibility : bool
        Also score against the visible true particles only (Rose criterion:
        :func:`etem_helpers.metrics.particle_visibility` SNR >= 5 on the image itself;
        particles whose SNR cannot be measured count as visible).

    Returns
    -------
    dict
        ``{method: [score_image(...) + {"name", "seconds"} per sample]}``.
    """
    from etem_helpers.metrics import ROSE_THRESHOLD, particle_visibility

    records: dict[str, list[dict[str, Any]]] = {name: [] for name in methods}
    for name, image, true_labels, pixel_size_nm in samples:
        visible_ids = true_snr = None
        if visibility:
            table = particle_visibility(image, true_labels)
            invisible = table["snr"] < ROSE_THRESHOLD  # NaN compares False: visible
            visible_ids = table.loc[~invisible, "particle_id"].astype(int).tolist()
            true_snr = dict(zip(table["particle_id"].astype(int), table["snr"], strict=True))
        for method, function in methods.items():
            started = time.perf_counter()
            labels = function(image, pixel_size_nm)
            seconds = time.perf_counter() - started
            record = score_image(
                labels, true_labels, pixel_size_nm=pixel_size_nm, iou_threshold=iou_threshold,
                visible_ids=visible_ids, true_snr=true_snr,
            )
            record.update(name=name, seconds=seconds)
            records[method].append(record)
    return records


def _aggregate_all(records, select=None):
    out = {}
    for method, rows in records.items():
        chosen = [r for r in rows if select is None or r["name"] in select]
        if chosen:
            out[method] = aggregate_scores(chosen)
    return out


# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------
def simulated_test_split(config: Mapping[str, Any]) -> tuple[Path, list[str]]:
    """Dataset directory and test-split ids of a training configuration.

    Re-simulates the dataset (deterministic from the config's seed) if its directory is gone,
    and recomputes the split with :func:`etem_helpers.data.split_by_micrograph`; if the
    configuration stores the split it was trained with, the two must agree.

    Parameters
    ----------
    config : dict
        ``meta["config"]`` of a checkpoint written by ``python -m etem_helpers.train``.

    Returns
    -------
    dataset_dir : pathlib.Path
    test_ids : list of str
    """
    from etem_helpers.train import checkpoint_dataset_split

    dataset_dir, split = checkpoint_dataset_split(config)
    return Path(dataset_dir), list(split["test"])


def iter_simulated(dataset_dir: Path, ids: Sequence[str]):
    """Yield (id, image, true labels, pixel_size_nm) of simulated micrographs."""
    import tifffile

    from etem_helpers.data import read_manifest
    from etem_helpers.io import read_micrograph

    manifest = read_manifest(dataset_dir).set_index("micrograph_id")
    for mid in ids:
        row = manifest.loc[mid]
        image, _, _ = read_micrograph(dataset_dir / row["image_path"], require_calibration=False)
        labels = tifffile.imread(dataset_dir / row["labels_path"]).astype(np.int32)
        yield mid, np.asarray(image, dtype=np.float32), labels, float(row["pixel_size_nm"])


def load_real(source: Path | None, cache_dir: Path | None):
    """The real sample as [(name, image, instance labels)], or None if unavailable."""
    from etem_helpers import real_data

    if source is not None:
        real_data.populate_cache_from(source, cache_dir)
    try:
        pairs = real_data.load_sintering(cache_dir=cache_dir)
    except real_data.RealDataUnavailableError as error:
        print(f"Real sample unavailable, skipped: {error}", file=sys.stderr)
        return None
    return [(name, image, mask_to_instances(mask)) for image, mask, name in pairs]


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------
def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return None if not np.isfinite(value) else float(value)
    return value


def _per_image(records):
    return {
        method: [
            {k: r[k] for k in ("name", "dice", "f1", "tp", "fp", "fn", "seconds")}
            for r in rows
        ]
        for method, rows in records.items()
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="report to write")
    parser.add_argument("--markdown", type=Path, default=None,
                        help="also write the printed tables to this Markdown file")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--max-test-images", type=int, default=None,
                        help="evaluate only the first N test images (quick checks)")
    parser.add_argument("--real-source", type=Path, default=None,
                        help="local copy of the real sample to fill the cache from (no network)")
    parser.add_argument("--real-cache", type=Path, default=None,
                        help="cache root of the real sample (default: ETEM_DATA_DIR / OS cache)")
    parser.add_argument("--real-pixel-size-nm", type=float, default=0.5,
                        help="nominal pixel size of the real sample (unknown; nm/px)")
    parser.add_argument("--no-real", action="store_true", help="skip the real sample")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    import torch

    from etem_helpers import real_data
    from etem_helpers.analysis import load_model

    # load_model is what analyze(model=<path>) uses (batch norms folded in for inference)
    model = load_model(args.checkpoint, device=args.device)
    meta = model[1]
    methods = make_methods(model, device=args.device, names=args.methods)
    if model is not None:  # warm-up so that the first timed image does not pay for it
        make_methods(model, device=args.device, names=["unet"])["unet"](
            np.random.default_rng(0).random((256, 256)).astype(np.float32), 0.5
        )

    report: dict[str, Any] = {
        "command": "python benchmarks/eval_segmentation.py " + " ".join(sys.argv[1:] if argv
                                                                        is None else argv),
        "checkpoint": str(args.checkpoint),
        "checkpoint_bytes": args.checkpoint.stat().st_size,
        "checkpoint_metrics": meta.get("metrics"),
        "checkpoint_postprocess": meta.get("postprocess"),
        "iou_threshold": 0.5,
        "machine": {"platform": platform.platform(), "processor": platform.machine(),
                    "torch_threads": torch.get_num_threads(), "device": args.device},
        "definitions": (
            "pixel Dice/IoU pooled over all pixels of the set; instance P/R/F1 from TP/FP/FN "
            "summed over the set (Hungarian matching, IoU >= 0.5); diameter MAE (nm), "
            "aspect-ratio and roundness RMSE over all matched pairs; seconds per image "
            "wall-clock of the method call (U-Net: etem_helpers.analyze, CPU)."
        ),
    }

    dataset_dir, test_ids = simulated_test_split(meta["config"])
    if args.max_test_images is not None:
        test_ids = test_ids[: args.max_test_images]
    print(f"Simulated test split: {len(test_ids)} micrographs of {dataset_dir}", flush=True)
    records = evaluate_images(iter_simulated(dataset_dir, test_ids), methods, visibility=True)
    from etem_helpers.data import read_manifest

    manifest = read_manifest(dataset_dir).set_index("micrograph_id")
    sim = {"dataset_dir": str(dataset_dir), "test_ids": test_ids,
           "all": _aggregate_all(records)}
    for regime in sorted(set(manifest.loc[test_ids, "regime"])):
        ids = set(manifest.index[manifest["regime"] == regime]) & set(test_ids)
        sim[f"regime_{regime}"] = _aggregate_all(records, ids)
    sim["per_image"] = _per_image(records)
    report["simulated_test"] = sim
    tables: list[str] = []

    def emit(table: str) -> None:
        print(table)
        tables.append(table)

    emit(format_table(sim["all"], title="\n**Simulated test split, all**\n"))
    for key in sim:
        if key.startswith("regime_"):
            emit(format_table(sim[key], title=f"\n**Simulated test split, {key[7:]} only**\n"))
    emit(format_recall_by_snr(sim["all"], title="\n**Simulated test split: recall by visibility "
                              "(Rose SNR of each true particle on the image; count in brackets)**\n"))

    if not args.no_real:
        real = load_real(args.real_source, args.real_cache)
        if real is not None:
            evaluation_ids = set(real_data.SINTERING_EVALUATION_IDS)
            samples = [(n, im, lab, args.real_pixel_size_nm) for n, im, lab in real]
            real_records = evaluate_images(samples, methods)
            report["real"] = {
                "pixel_size_nm_assumed": args.real_pixel_size_nm,
                "evaluation_ids": sorted(evaluation_ids, key=lambda s: int(s.split("_")[-1])),
                "evaluation": _aggregate_all(real_records, evaluation_ids),
                "all": _aggregate_all(real_records),
                "per_image": _per_image(real_records),
            }
            emit(format_table(report["real"]["evaluation"],
                              title="\n**Real sample, SINTERING_EVALUATION_IDS (image_5..image_19),"
                              " held out from all tuning**\n"))
            emit(format_table(report["real"]["all"], title="\n**Real sample, all 20 images**\n"))
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text("\n".join(tables).strip() + "\n")

    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(_jsonable(report), indent=1) + "\n")
    print(f"\nWrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
