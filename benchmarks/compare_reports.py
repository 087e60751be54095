"""Compare two reports of ``benchmarks/eval_segmentation.py`` number by number (behaviour checks).

Usage::

    python benchmarks/compare_reports.py before.json after.json [--tolerance 1e-6]

Prints every score that differs by more than the tolerance (simulated split: all and per regime;
real sample: evaluation ids and all), then how many values were compared and the largest absolute
difference; exits 1 if any differs. Used to show that a refactoring changed no figure.
"""

from __future__ import annotations

import argparse
import json
import sys

KEYS = ("pixel_dice", "pixel_iou", "precision", "recall", "f1", "visible_f1", "diameter_mae_nm",
        "aspect_ratio_rmse", "roundness_rmse", "tp", "fp", "fn", "mean_image_dice",
        "mean_image_f1")
PARTS = {"simulated_test": ("all", "regime_hrtem", "regime_lowmag"), "real": ("evaluation", "all")}


def differences(before: dict, after: dict, tolerance: float):
    """(number compared, largest difference, [(where, before, after) beyond the tolerance])."""
    n, worst, beyond = 0, 0.0, []
    for part, subsets in PARTS.items():
        for subset in subsets:
            old, new = before.get(part, {}).get(subset, {}), after.get(part, {}).get(subset, {})
            for method in sorted(set(old) | set(new)):
                for key in KEYS:
                    x, y = old.get(method, {}).get(key), new.get(method, {}).get(key)
                    if x is None and y is None:
                        continue
                    where = f"{part}/{subset}/{method}/{key}"
                    if x is None or y is None:
                        beyond.append((where, x, y))
                        continue
                    n, worst = n + 1, max(worst, abs(x - y))
                    if abs(x - y) > tolerance:
                        beyond.append((where, x, y))
    return n, worst, beyond


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--tolerance", type=float, default=1e-6)
    args = parser.parse_args(argv)
    with open(args.before) as a, open(args.after) as b:
        n, worst, beyond = differences(json.load(a), json.load(b), args.tolerance)
    for where, x, y in beyond:
        print(f"DIFFERS {where}: {x} -> {y}")
    print(f"compared {n} values; largest absolute difference {worst:g}")
    return 1 if beyond else 0


if __name__ == "__main__":
    sys.exit(main())
