"""Fine-tune the shipped model on the real sample's calibration images; score on its evaluation images.

Usage (from the repository root)::

    python benchmarks/eval_finetune.py --real-source ../shared/real/msa-em-sintering \
        [--pixel-size-nm 0.5] [--epochs 12] [--out outputs/finetune]

1. ``etem finetune`` (:func:`etem_helpers.segmentation.finetune.finetune`) on image_0..image_4
   (``SINTERING_CALIBRATION_IDS``; one of them is held out for validation), starting from
   ``etem_helpers/models/default.pt``; its wall-clock time is printed.
2. The shipped model, the fine-tuned model, Otsu and adaptive threshold on image_5..image_19
   (``SINTERING_EVALUATION_IDS``, never used for training or tuning), scored by
   :func:`etem_helpers.metrics.evaluate`: pixel Dice, instance P/R/F1 (IoU >= 0.5), and the size
   bias of matched particles: median predicted/true area ratio and mean relative diameter error.
Targets (issue "Real micrographs as users bring them"): fine-tuned F1 >= 0.92, Dice >= 0.95,
size error <= 5 %; fine-tuning on five 512 x 512 images under 5 minutes on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path


def size_bias(pooled_errors) -> dict[str, float]:
    """Median area ratio and mean relative diameter error of matched pairs."""
    from etem_helpers.metrics import relative_size_errors

    errors = relative_size_errors(pooled_errors)
    return {"median_area_ratio": errors["median_area_ratio"],
            "mean_rel_diameter_error": errors["diameter_error"]}


def calibration_folders(cache: Path | None, out: Path) -> tuple[Path, Path]:
    """Copies of the calibration images and their masks, named alike (image_N.png)."""
    from etem_helpers.datasets import real

    images, masks = out / "calibration_images", out / "calibration_masks"
    for folder in (images, masks):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    for image_path, mask_path in real.fetch_sintering(cache_dir=cache):
        if image_path.stem in real.SINTERING_CALIBRATION_IDS:
            shutil.copy(image_path, images / image_path.name)
            shutil.copy(mask_path, masks / image_path.name)
    return images, masks


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real-source", type=Path, default=None)
    parser.add_argument("--real-cache", type=Path, default=None)
    parser.add_argument("--pixel-size-nm", type=float, default=0.5)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--out", type=Path, default=Path("outputs/finetune"))
    args = parser.parse_args(argv)

    import pandas as pd

    from etem_helpers.datasets import real
    from etem_helpers.metrics import evaluate
    from etem_helpers.metrics.tables import format_table
    from etem_helpers.pipeline import Analyzer, adaptive_threshold_watershed, otsu_watershed
    from etem_helpers.segmentation.finetune import FinetuneSettings, finetune

    if args.real_source is not None:
        real.populate_cache_from(args.real_source, args.real_cache)
    images, masks = calibration_folders(args.real_cache, args.out)
    model_path = args.out / "finetuned.pt"
    report = finetune(images, masks, model_path, pixel_size_nm=args.pixel_size_nm,
                      settings=FinetuneSettings(epochs=args.epochs), device="cpu",
                      overwrite=True)
    print(f"fine-tuning: {report['seconds']:.0f} s; validation F1 {report['val_f1_before']:.3f}"
          f" -> {report['val_f1_after']:.3f} on {report['split']['val']}")
    shipped, tuned = Analyzer(device="cpu"), Analyzer(model_path, device="cpu")
    methods = {
        "shipped U-Net": lambda im, px: shipped(im, px).labels,
        "fine-tuned U-Net": lambda im, px: tuned(im, px).labels,
        "otsu_watershed": lambda im, px: otsu_watershed(im, px).labels,
        "adaptive_threshold_watershed": lambda im, px: adaptive_threshold_watershed(im, px).labels,
    }
    samples = real.sintering_samples(args.pixel_size_nm, ids=real.SINTERING_EVALUATION_IDS,
                                     cache_dir=args.real_cache)
    evaluation = evaluate(samples, methods)
    pooled = evaluation.pooled()
    for method, rows in evaluation.records.items():
        errors = [r["errors"] for r in rows if len(r["errors"])]
        pooled[method].update(size_bias(pd.concat(errors, ignore_index=True)))
    print(format_table(pooled, title="\n**Real sample, image_5..image_19**\n"))
    print("\n| method | median area ratio | mean rel. diameter error |\n| --- | ---: | ---: |")
    for method, scores in pooled.items():
        print(f"| {method} | {scores['median_area_ratio']:.3f} | "
              f"{scores['mean_rel_diameter_error']:.3f} |")
    out = {"finetune": report, "evaluation": pooled,
           "per_image": evaluation.per_image().to_dict("records")}
    (args.out / "eval_finetune.json").write_text(json.dumps(out, indent=1, default=float) + "\n")
    print(f"\nWrote {args.out / 'eval_finetune.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
