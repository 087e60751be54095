"""Accuracy, calibration and speed of the particle size estimators (issue 14).

Usage::

    python benchmarks/eval_sizing.py [--seed 14003] [--n-images 60] [--featurenet PATH]
        [--real-source ../shared/real/msa-em-sintering] [--real-pixel-size-nm 0.5]
        [--json outputs/eval_sizing.json] [--markdown outputs/eval_sizing.md] [--skip-speed]

1. Simulated test split: ``--n-images`` micrographs drawn with
   :func:`etem_helpers.simulate.dataset.image_params` (seed 14003, "mixed" regime: HRTEM and
   low magnification; FeatureNet was trained on seed 14001 and validated on 14002), the
   shipped U-Net run on each (:func:`etem_helpers.analyze`), its particles matched to the
   true ones at IoU >= 0.5 (:func:`etem_helpers.metrics.match_instances`). For each estimator
   of :func:`etem_helpers.sizing.estimate_sizes` (mask, contour, FeatureNet) and for the Otsu
   + watershed baseline (its own particles, pixel-mask measurement): diameter mean relative
   error and bias, aspect-ratio RMSE, roundness RMSE, overall, by true size in pixels, by
   regime and by kind, and the coverage of the nominal 95 % intervals (+-1.96 sigma).
   Truth: the simulator's ground-truth table (the contract's measurement of the true masks).
2. Real sample (images 5-19 of the sintering set, never used for training or calibration;
   pixel size 0.5 nm as in ``eval_segmentation.py``): U-Net particles matched to the hand
   outlines (8-connected components of the hand mask); per estimator the diameter agreement
   (Bland-Altman: bias and 95 % limits of agreement, in nm and relative).
3. Speed: ``analyze()`` alone and ``analyze()`` + ``estimate_sizes`` per estimator on a
   1024 x 1024 simulated low-mag micrograph (as ``bench_analyze.py``), median of 5.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

QUANTITIES = ("diameter_nm", "aspect_ratio", "roundness")
ESTIMATORS = ("mask", "contour", "featurenet")
SIZE_BINS_PX = (0, 15, 30, 60, np.inf)


def _matched_rows(sample, labels, table, match, name):
    truth = sample.true_table.set_index("particle_id").loc[match.true_ids]
    est = table.set_index("particle_id").loc[match.pred_ids]
    out = pd.DataFrame({"estimator": name, "regime": sample.regime,
                        "kind": truth["kind"].to_numpy(),
                        "pixel_size_nm": sample.pixel_size_nm,
                        "border": truth["touches_border"].to_numpy(dtype=bool)})
    for q in QUANTITIES:
        out[f"true_{q}"] = truth[q].to_numpy()
        out[q] = est[q].to_numpy()
        out[f"{q}_std"] = est[f"{q}_std"].to_numpy() if f"{q}_std" in est else np.nan
    return out


def simulated_records(seed: int, n_images: int, featurenet) -> pd.DataFrame:
    """Matched (estimate, truth) rows of every estimator on the simulated test split."""
    from etem_helpers.measure import measure_particles
    from etem_helpers.metrics import match_instances
    from etem_helpers.pipeline import otsu_watershed
    from etem_helpers.sizing import estimate_sizes
    from etem_helpers.sizing.data import simulate_sizing_image

    parts = []
    for index in range(n_images):
        s = simulate_sizing_image(index, seed=seed)
        match = match_instances(s.pred_labels, s.true_labels)
        for name in ESTIMATORS:
            table = estimate_sizes(s.image, s.pred_labels, s.probability, s.pixel_size_nm,
                                   estimator=name, model=featurenet, threshold=s.threshold)
            if match.n_matched:
                parts.append(_matched_rows(s, s.pred_labels, table, match, name))
        otsu = otsu_watershed(s.image, s.pixel_size_nm).labels
        m_otsu = match_instances(otsu, s.true_labels)
        if m_otsu.n_matched:
            parts.append(_matched_rows(s, otsu, measure_particles(otsu, s.pixel_size_nm),
                                       m_otsu, "otsu"))
        print(f"  test image {index + 1}/{n_images}", file=sys.stderr, flush=True)
    return pd.concat(parts, ignore_index=True)


def summarise(rows: pd.DataFrame) -> dict:
    """Error and coverage figures of one group of matched rows."""
    rel = rows["diameter_nm"] / rows["true_diameter_nm"] - 1.0
    out = {"n": int(len(rows)),
           "diameter_mre": float(rel.abs().mean()),
           "diameter_bias": float(rel.mean()),
           "aspect_ratio_rmse": float(np.sqrt(((rows["aspect_ratio"]
                                                - rows["true_aspect_ratio"]) ** 2).mean())),
           "roundness_rmse": float(np.sqrt(((rows["roundness"]
                                             - rows["true_roundness"]) ** 2).mean()))}
    for q in QUANTITIES:
        std = rows[f"{q}_std"].to_numpy(dtype=np.float64)
        err = (rows[q] - rows[f"true_{q}"]).to_numpy(dtype=np.float64)
        out[f"{q}_coverage95"] = (float(np.mean(np.abs(err) <= 1.959964 * std))
                                  if np.isfinite(std).all() and len(std) else None)
    return out


def summarise_all(records: pd.DataFrame) -> dict:
    """Overall, by size bin (true diameter in px), by regime and by kind, per estimator."""
    size_px = records["true_diameter_nm"] / records["pixel_size_nm"]
    bins = pd.cut(size_px, SIZE_BINS_PX, right=False,
                  labels=[f"{a:g}-{b:g} px" for a, b in zip(SIZE_BINS_PX[:-1], SIZE_BINS_PX[1:],
                                                            strict=True)])
    out = {}
    for name, group in records.groupby("estimator", sort=False):
        out[name] = {"all": summarise(group)}
        for label, key in (("size", bins), ("regime", records["regime"]),
                           ("kind", records["kind"])):
            out[name][label] = {str(k): summarise(g) for k, g in
                                group.groupby(key.loc[group.index], observed=True)}
    return out


def real_agreement(source: Path, pixel_size_nm: float, featurenet, cache_dir: Path) -> dict:
    """Diameter agreement with the hand outlines on the real evaluation images."""
    from scipy import ndimage as ndi

    from etem_helpers import analyze
    from etem_helpers.datasets import real as real_data
    from etem_helpers.measure import measure_particles
    from etem_helpers.metrics import match_instances
    from etem_helpers.sizing import estimate_sizes

    real_data.populate_cache_from(source, cache_dir)
    pairs = real_data.load_sintering(cache_dir=cache_dir)
    diffs = {name: [] for name in ESTIMATORS}
    for image, mask, name in pairs:
        if name not in real_data.SINTERING_EVALUATION_IDS:
            continue
        hand, _ = ndi.label(mask, structure=np.ones((3, 3), dtype=bool))
        hand = hand.astype(np.int32)
        result = analyze(image, pixel_size_nm, device="cpu", size_estimator="mask")
        match = match_instances(result.labels, hand)
        if match.n_matched == 0:
            continue
        truth = measure_particles(hand, pixel_size_nm).set_index("particle_id")
        d_true = truth.loc[match.true_ids, "diameter_nm"].to_numpy()
        for est in ESTIMATORS:
            table = estimate_sizes(image, result.labels, result.probability, pixel_size_nm,
                                   estimator=est, model=featurenet,
                                   threshold=float(result.info["threshold"]))
            d = table.set_index("particle_id").loc[match.pred_ids, "diameter_nm"].to_numpy()
            diffs[est].append(np.column_stack([d, d_true]))
    out = {}
    for est, parts in diffs.items():
        pair = np.concatenate(parts)
        diff, rel = pair[:, 0] - pair[:, 1], pair[:, 0] / pair[:, 1] - 1.0
        out[est] = {"n": int(len(pair)), "bias_nm": float(diff.mean()),
                    "loa_nm": [float(diff.mean() - 1.96 * diff.std(ddof=1)),
                               float(diff.mean() + 1.96 * diff.std(ddof=1))],
                    "bias_rel": float(rel.mean()),
                    "loa_rel": [float(rel.mean() - 1.96 * rel.std(ddof=1)),
                                float(rel.mean() + 1.96 * rel.std(ddof=1))],
                    "mre": float(np.abs(rel).mean())}
    return out


def speed(featurenet, repeats: int = 5) -> dict:
    """Median seconds of analyze() on a 1024^2 micrograph with each size estimator."""
    from etem_helpers.pipeline import Analyzer
    from etem_helpers.simulate import sample_params, simulate_micrograph

    params = sample_params(np.random.default_rng(3), "lowmag", image_size_px=1024)
    sim = simulate_micrograph(params, seed=0)
    image, px = sim.image, float(params.pixel_size_nm)
    analyzers = {est: Analyzer(device="cpu", size_estimator=est) for est in ESTIMATORS}
    result = analyzers["mask"](image, px)  # warm-up
    out = {"n_true": int(sim.labels.max()), "n_found": int(result.labels.max()),
           "pixel_size_nm": px}
    times: dict[str, list[float]] = {est: [] for est in ESTIMATORS}
    for _ in range(repeats):  # interleaved, so that load changes affect all alike
        for est, analyzer in analyzers.items():
            t0 = time.perf_counter()
            analyzer(image, px)
            times[est].append(time.perf_counter() - t0)
    for est in ESTIMATORS:
        out[f"analyze_{est}_s"] = statistics.median(times[est])
        out[f"sizing_{est}_s"] = statistics.median(times[est]) - statistics.median(times["mask"])
    return out


def markdown(results: dict) -> str:
    """Result tables as Markdown."""
    lines = ["| estimator | n | diameter MRE | diameter bias | AR RMSE | roundness RMSE | "
             "coverage d / AR / R |", "|---|---|---|---|---|---|---|"]
    for name, res in results["simulated"].items():
        a = res["all"]
        cov = " / ".join("-" if a[f"{q}_coverage95"] is None else f"{a[f'{q}_coverage95']:.3f}"
                         for q in QUANTITIES)
        lines.append(f"| {name} | {a['n']} | {a['diameter_mre']:.4f} | "
                     f"{a['diameter_bias']:+.4f} | {a['aspect_ratio_rmse']:.4f} | "
                     f"{a['roundness_rmse']:.4f} | {cov} |")
    lines += ["", "By true size (px): diameter MRE / AR RMSE / roundness RMSE", "",
              "| estimator | " + " | ".join(results["size_bins"]) + " |",
              "|---|" + "---|" * len(results["size_bins"])]
    for name, res in results["simulated"].items():
        cells = []
        for b in results["size_bins"]:
            s = res["size"].get(b)
            cells.append("-" if s is None else f"{s['diameter_mre']:.3f} / "
                         f"{s['aspect_ratio_rmse']:.3f} / {s['roundness_rmse']:.3f} (n={s['n']})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if results.get("real"):
        lines += ["", "Real sample (images 5-19, 0.5 nm/px), diameter vs hand outlines:", "",
                  "| estimator | n | bias (nm) | 95 % LoA (nm) | bias (rel) | 95 % LoA (rel) |",
                  "|---|---|---|---|---|---|"]
        for name, r in results["real"].items():
            lines.append(f"| {name} | {r['n']} | {r['bias_nm']:+.2f} | "
                         f"[{r['loa_nm'][0]:+.2f}, {r['loa_nm'][1]:+.2f}] | "
                         f"{r['bias_rel']:+.3f} | [{r['loa_rel'][0]:+.3f}, "
                         f"{r['loa_rel'][1]:+.3f}] |")
    if results.get("speed"):
        lines += ["", "Speed (1024 x 1024, median s): " + ", ".join(
            f"{k} {v:.3f}" for k, v in results["speed"].items() if k.endswith("_s"))]
    return "\n".join(lines)


def main(argv=None) -> int:
    """Command line; see the module docstring."""
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=14003)
    parser.add_argument("--n-images", type=int, default=60)
    parser.add_argument("--featurenet", type=Path, default=None)
    parser.add_argument("--real-source", type=Path, default=None)
    parser.add_argument("--real-pixel-size-nm", type=float, default=0.5)
    parser.add_argument("--real-cache", type=Path, default=Path("outputs/real_cache"))
    parser.add_argument("--json", type=Path, default=Path("outputs/eval_sizing.json"))
    parser.add_argument("--markdown", type=Path, default=None)
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    from etem_helpers.sizing.featurenet import load_featurenet

    featurenet = load_featurenet(args.featurenet)
    records = simulated_records(args.seed, args.n_images, featurenet)
    bins = [f"{a:g}-{b:g} px" for a, b in zip(SIZE_BINS_PX[:-1], SIZE_BINS_PX[1:], strict=True)]
    results = {"seed": args.seed, "n_images": args.n_images, "size_bins": bins,
               "simulated": summarise_all(records)}
    if args.real_source is not None:
        results["real"] = real_agreement(args.real_source, args.real_pixel_size_nm, featurenet,
                                         args.real_cache)
    if not args.skip_speed:
        results["speed"] = speed(featurenet)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1))
    text = markdown(results)
    print(text)
    if args.markdown is not None:
        args.markdown.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
