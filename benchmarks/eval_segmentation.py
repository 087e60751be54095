"""Evaluate a segmentation checkpoint and the classical baselines on held-out images.

Usage (from the repository root)::

    python benchmarks/eval_segmentation.py \
        [--checkpoint etem_helpers/models/default.pt] \
        [--real-source ../shared/real/msa-em-sintering] [--real-pixel-size-nm 0.5] \
        [--json etem_helpers/models/default_report.json]

What it does (all scoring is :func:`etem_helpers.metrics.evaluate`; this script only chooses the
data and prints):

1. **Simulated test split.** The dataset and held-out *test* split the checkpoint was trained
   with (:func:`etem_helpers.segmentation.train.checkpoint_dataset_split`: re-simulated if gone,
   deterministic from the config's seed, checked against the split stored in the checkpoint).
   The test split was never used for model selection.
2. **Real sample.** The 20 bright-field micrographs with hand-drawn masks of
   :mod:`etem_helpers.datasets.real` (never used in training), reported on
   ``SINTERING_EVALUATION_IDS`` (held out from all tuning) and on all 20, at an explicit nominal
   pixel size (default 0.5 nm/px, inside the model's range, so the segmentation does not depend
   on it; only nm-valued columns and the baselines' nm settings do).
3. Methods: the U-Net through an :class:`etem_helpers.Analyzer` (the checkpoint's stored
   post-processing), :func:`~etem_helpers.pipeline.otsu_watershed` and
   :func:`~etem_helpers.pipeline.adaptive_threshold_watershed` with default settings. Printed:
   pixel Dice/IoU (pooled over the set), instance precision/recall/F1 (Hungarian matching at
   IoU >= 0.5, counts pooled), F1 on particles visible by Rose's criterion (simulated split),
   diameter MAE, aspect-ratio and roundness RMSE of matched pairs, seconds per image, and the
   recall by visibility.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from etem_helpers.metrics.tables import format_recall_by_snr, format_table, jsonable

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CHECKPOINT = REPOSITORY_ROOT / "etem_helpers" / "models" / "default.pt"
DEFAULT_JSON = REPOSITORY_ROOT / "etem_helpers" / "models" / "default_report.json"
METHODS = ("unet", "otsu_watershed", "adaptive_threshold_watershed")
def make_methods(checkpoint: Path, *, device: str, names: Sequence[str]):
    """``{name: f(image, pixel_size_nm) -> labels}`` and the U-Net's Analyzer."""
    from etem_helpers.pipeline import Analyzer, adaptive_threshold_watershed, otsu_watershed

    analyzer = Analyzer(checkpoint, device=device)
    available = {
        "unet": lambda image, px: analyzer(image, px).labels,
        "otsu_watershed": lambda image, px: otsu_watershed(image, px).labels,
        "adaptive_threshold_watershed":
            lambda image, px: adaptive_threshold_watershed(image, px).labels,
    }
    return {name: available[name] for name in names}, analyzer


def _per_image(evaluation) -> dict[str, list[dict]]:
    table = evaluation.per_image()
    return {method: rows.drop(columns="method").to_dict("records")
            for method, rows in table.groupby("method", sort=False)}


def evaluate_simulated(analyzer, methods, *, max_images: int | None, emit) -> dict[str, Any]:
    """Scores on the checkpoint's simulated test split, all and per regime."""
    from etem_helpers.datasets import iter_samples, read_manifest
    from etem_helpers.metrics import evaluate
    from etem_helpers.segmentation.train import checkpoint_dataset_split

    dataset_dir, split = checkpoint_dataset_split(analyzer.card.config)
    test_ids = list(split["test"])[:max_images]
    print(f"Simulated test split: {len(test_ids)} micrographs of {dataset_dir}", flush=True)
    evaluation = evaluate(iter_samples(dataset_dir, test_ids), methods, visibility=True)
    manifest = read_manifest(dataset_dir).set_index("micrograph_id")
    sim = {"dataset_dir": str(dataset_dir), "test_ids": test_ids, "all": evaluation.pooled()}
    emit(format_table(sim["all"], title="\n**Simulated test split, all**\n"))
    for regime in sorted(set(manifest.loc[test_ids, "regime"])):
        ids = set(manifest.index[manifest["regime"] == regime]) & set(test_ids)
        sim[f"regime_{regime}"] = evaluation.pooled(ids)
        emit(format_table(sim[f"regime_{regime}"],
                          title=f"\n**Simulated test split, {regime} only**\n"))
    emit(format_recall_by_snr(sim["all"], title="\n**Simulated test split: recall by visibility "
                              "(Rose SNR of each true particle on the image; count in brackets)**\n"))
    sim["per_image"] = _per_image(evaluation)
    return sim


def evaluate_real(methods, *, source, cache, pixel_size_nm, emit) -> dict[str, Any] | None:
    """Scores on the real sample (evaluation ids and all 20), or None when it is unavailable."""
    from etem_helpers.datasets import real
    from etem_helpers.metrics import evaluate

    if source is not None:
        real.populate_cache_from(source, cache)
    try:
        samples = real.sintering_samples(pixel_size_nm, cache_dir=cache)
    except real.RealDataUnavailableError as error:
        print(f"Real sample unavailable, skipped: {error}", file=sys.stderr)
        return None
    evaluation = evaluate(samples, methods)
    ids = real.SINTERING_EVALUATION_IDS
    report = {"pixel_size_nm_assumed": pixel_size_nm, "evaluation_ids": list(ids),
              "evaluation": evaluation.pooled(ids), "all": evaluation.pooled(),
              "per_image": _per_image(evaluation)}
    emit(format_table(report["evaluation"], title="\n**Real sample, SINTERING_EVALUATION_IDS "
                      "(image_5..image_19), held out from all tuning**\n"))
    emit(format_table(report["all"], title="\n**Real sample, all 20 images**\n"))
    return report


def _parser() -> argparse.ArgumentParser:
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; see the module docstring."""
    args = _parser().parse_args(argv)
    import torch

    methods, analyzer = make_methods(args.checkpoint, device=args.device, names=args.methods)
    # warm-up so that the first timed image does not pay for it
    analyzer(np.random.default_rng(0).random((256, 256)).astype(np.float32), 0.5)
    tables: list[str] = []

    def emit(table: str) -> None:
        print(table)
        tables.append(table)

    report: dict[str, Any] = {
        "command": "python benchmarks/eval_segmentation.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "checkpoint": str(args.checkpoint),
        "checkpoint_bytes": args.checkpoint.stat().st_size,
        "checkpoint_metrics": analyzer.card.metrics,
        "checkpoint_postprocess": analyzer.card.postprocess,
        "iou_threshold": 0.5,
        "machine": {"platform": platform.platform(), "processor": platform.machine(),
                    "torch_threads": torch.get_num_threads(), "device": args.device},
        "definitions": (
            "pixel Dice/IoU pooled over all pixels of the set; instance P/R/F1 from TP/FP/FN "
            "summed over the set (Hungarian matching, IoU >= 0.5); diameter MAE (nm), "
            "aspect-ratio and roundness RMSE over all matched pairs; seconds per image "
            "wall-clock of the method call (U-Net: etem_helpers.Analyzer, CPU)."
        ),
        "simulated_test": evaluate_simulated(analyzer, methods, max_images=args.max_test_images,
                                             emit=emit),
    }
    if not args.no_real:
        real = evaluate_real(methods, source=args.real_source, cache=args.real_cache,
                             pixel_size_nm=args.real_pixel_size_nm, emit=emit)
        if real is not None:
            report["real"] = real
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text("\n".join(tables).strip() + "\n")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(jsonable(report), indent=1) + "\n")
    print(f"\nWrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
