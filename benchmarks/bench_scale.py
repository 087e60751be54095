"""Coarse micrographs: resample by the particles' size in pixels, not by a fixed nm/px range.

Usage (from the repository root; a few minutes on one CPU core)::

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_scale.py [--n-images 3] [--size-px 1024]
        [--coarse-pixel-size-nm 7.3] [--json outputs/bench_scale.json]

Issue 13, item 5. The shipped model's pixel-size range ends at 1 nm/px, so a transmission-SEM
micrograph at 7.3 nm/px used to be blown up 7.3x before the network saw it (slow, and a
1024² image becomes 7475²). What the network needs is particles of the sizes *in pixels* it
was trained on (``ModelCard.diameter_range_px``, 18-115 px for the shipped model).

The test: simulated low-magnification micrographs (``sample_params(rng, "lowmag", size_px)``,
seeds ``--seed-base`` + k, default 400; seeds 100-105 and 200-203 were used to set the
model-free small-particle check of :func:`etem_helpers.preprocess.plan_by_particle_size`)
analysed

* **fine**: at their own pixel size (inside the model's range, nothing resampled);
* **coarse, particles** (the new default, ``scale="particles"``): the *same pixels* declared
  at ``coarse_pixel_size_nm`` (7.3 nm/px), i.e. a coarse micrograph of particles that many
  times larger in nm, as a TSEM image of 100-nm particles looks;
* **coarse, pixel size** (``scale="pixel_size"``, the behaviour before): the same, resampled
  into the range first.

The true labels are the same in all three (same pixels), so the instance F1 (IoU >= 0.5,
``etem_helpers.metrics``) is comparable; the seconds are the median of ``--repeats`` calls
(after a warm-up call of each analyzer) in this process with one torch thread. A second table uses images whose
particles are small in pixels (the fine image downsampled 4x, its labels too): there the
first pass finds particles below the trained range, and both modes resample.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np


def _scores(pred, truth) -> dict:
    from etem_helpers.metrics.scoring import score_image

    scores = score_image(pred, truth)
    return {key: scores[key] for key in ("tp", "fp", "fn", "f1")}


def _timed(analyzer, image, pixel_size_nm, repeats):
    seconds, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = analyzer(image, pixel_size_nm)
        seconds.append(time.perf_counter() - started)
    return result, statistics.median(seconds)


def _case(analyzers, image, truth, pixel_nm, coarse_nm, repeats) -> dict:
    out = {}
    for name, (analyzer, px) in {"fine": (analyzers["particles"], pixel_nm),
                                 "coarse_particles": (analyzers["particles"], coarse_nm),
                                 "coarse_pixel_size": (analyzers["pixel_size"], coarse_nm)}.items():
        result, seconds = _timed(analyzer, image, px, repeats)
        plan = result.info["resampling"]
        out[name] = {"seconds": seconds, "resampled": bool(plan["resample"]),
                     "factor": float(plan.get("factor", 1.0)),
                     "particle_scale": result.info.get("particle_scale"),
                     **_scores(result.labels, truth)}
    return out


def run(args) -> dict:
    import torch

    from etem_helpers.gan.judge import SEGMENTATION_ONLY
    from etem_helpers.pipeline import Analyzer
    from etem_helpers.preprocess import resample_to_pixel_size
    from etem_helpers.simulate import sample_params, simulate_micrograph

    torch.set_num_threads(1)
    analyzers = {mode: Analyzer(device="cpu", scale=mode, **SEGMENTATION_ONLY)
                 for mode in ("particles", "pixel_size")}
    warm = np.random.default_rng(0).normal(size=(256, 256)).astype(np.float32)
    for analyzer in analyzers.values():  # warm-up (first call loads kernels)
        analyzer(warm, 0.5)
    print(f"model diameter range: {analyzers['particles'].card.diameter_range_px} px; "
          f"pixel-size range {analyzers['particles'].card.pixel_size_range_nm} nm/px", flush=True)
    rows = []
    for k in range(args.n_images):
        seed = args.seed_base + k
        params = sample_params(np.random.default_rng(seed), "lowmag", image_size_px=args.size_px)
        sim = simulate_micrograph(params, seed=seed)
        image, truth, pixel_nm = sim.image.astype(np.float32), sim.labels, params.pixel_size_nm
        row = {"image": k, "seed": seed, "pixel_size_nm": pixel_nm, "n_true": int(truth.max()),
               "ordinary": _case(analyzers, image, truth, pixel_nm, args.coarse_pixel_size_nm,
                                 args.repeats)}
        small, small_nm = resample_to_pixel_size(image, pixel_nm, pixel_nm * 4)
        small_truth, _ = resample_to_pixel_size(truth, pixel_nm, pixel_nm * 4, is_label=True)
        row["small"] = _case(analyzers, small, small_truth, small_nm, args.coarse_pixel_size_nm,
                             args.repeats)
        rows.append(row)
        for case in ("ordinary", "small"):
            print(f"image {k} ({pixel_nm:.3f} nm/px, {row['n_true']} particles), {case}: " + "; ".join(
                f"{name} {v['seconds']:.2f} s F1 {v['f1']:.3f} resampled x{v['factor']:.2f}"
                if v["resampled"] else f"{name} {v['seconds']:.2f} s F1 {v['f1']:.3f} native"
                for name, v in row[case].items()), flush=True)
    summary = {}
    for case in ("ordinary", "small"):
        for name in ("fine", "coarse_particles", "coarse_pixel_size"):
            values = [r[case][name] for r in rows]
            tp, fp, fn = (sum(v[key] for v in values) for key in ("tp", "fp", "fn"))
            summary[f"{case}/{name}"] = {
                "median_seconds": statistics.median(v["seconds"] for v in values),
                "pooled_f1": 2 * tp / max(2 * tp + fp + fn, 1),
                "resampled": sum(v["resampled"] for v in values)}
    print("\ncase / mode: median seconds, pooled F1, images resampled")
    for key, v in summary.items():
        print(f"  {key:32s} {v['median_seconds']:7.2f} s  F1 {v['pooled_f1']:.3f}  "
              f"{v['resampled']}/{len(rows)}")
    return {"settings": vars(args), "rows": rows, "summary": summary}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=3)
    parser.add_argument("--size-px", type=int, default=1024)
    parser.add_argument("--coarse-pixel-size-nm", type=float, default=7.3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed-base", type=int, default=400)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    result = run(args)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1, default=float) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
