"""Time added by the fault stage to ``etem_helpers.analyze`` on a 1024 x 1024 HRTEM micrograph.

Usage::

    python benchmarks/bench_faults.py [--repeats 3] [--threads N] [--json PATH]

For each of the micrographs ``sample_params(default_rng(s), "hrtem", 1024)``, s in
``PARAMS_SEEDS`` (simulation seed 0; the script prints pixel size and particle counts), in ONE
process and on the CPU, two Analyzers built once (the shipped models loaded once, default
threads): ``Analyzer(faults=False)`` and ``Analyzer()`` (the defaults, whose fault stage runs
:func:`etem_helpers.faults.analyze_faults` with the shipped classifier). One warm-up call of
each, then ``--repeats`` rounds of one call of each, interleaved (so that a change in machine
load hits both), and prints the median seconds of each, the ratio ``with / without`` per
micrograph, the ratio of the summed medians over all of them, and the fault stage's own
seconds from ``result.info["timing_s"]``. Target (issue #10): at most about 1.20.

(Until 2026-11-30 this script timed ``analyze()`` with its defaults, which already include the
fault stage, against ``analyze_faults`` called once more, so its ratio counted the stage twice.)
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

PARAMS_SEEDS = (0, 1, 2, 3, 4)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", default=None, help="write the figures to this JSON file")
    args = parser.parse_args(argv)

    import torch

    from etem_helpers.simulate import sample_params, simulate_micrograph

    if args.threads:
        torch.set_num_threads(args.threads)
    from etem_helpers.pipeline import Analyzer

    without = Analyzer(device="cpu", faults=False)
    with_faults = Analyzer(device="cpu")
    per_image = []
    for seed in PARAMS_SEEDS:
        params = sample_params(np.random.default_rng(seed), "hrtem", image_size_px=1024)
        sim = simulate_micrograph(params, seed=0)
        image, px = sim.image.astype(np.float32), float(params.pixel_size_nm)
        without(image, px)  # warm-up
        with_faults(image, px)
        t_analyze, t_faults, t_stage = [], [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            without(image, px)
            t_analyze.append(time.perf_counter() - start)
            start = time.perf_counter()
            result = with_faults(image, px)
            t_faults.append(time.perf_counter() - start)
            t_stage.append(float(result.info["timing_s"].get("faults", float("nan"))))
        a, w = statistics.median(t_analyze), statistics.median(t_faults)
        table = result.particles
        resolved = table["lattice_resolved"].fillna(False).astype(bool)
        row = {"params_seed": seed, "pixel_size_nm": px, "material": params.material,
               "n_true_particles": int(sim.labels.max()), "n_detected_particles": len(table),
               "n_lattice_resolved": int(resolved.sum()),
               "analyze_s_median": a, "analyze_with_faults_s_median": w,
               "fault_stage_s_median": statistics.median(t_stage), "ratio": w / a}
        per_image.append(row)
        print(f"seed {seed}: {px:.4f} nm/px {params.material}, {row['n_true_particles']} true / "
              f"{len(table)} detected particles, {row['n_lattice_resolved']} lattice-resolved; "
              f"analyze without faults {a:.2f} s, with {w:.2f} s (fault stage "
              f"{row['fault_stage_s_median']:.2f} s), ratio {row['ratio']:.3f}", flush=True)
    total_a = sum(r["analyze_s_median"] for r in per_image)
    total_w = sum(r["analyze_with_faults_s_median"] for r in per_image)
    figures = {"per_image": per_image, "ratio_of_sums": total_w / total_a,
               "repeats": args.repeats, "torch_threads": torch.get_num_threads()}
    print(f"all {len(per_image)} micrographs: analyze without faults {total_a:.2f} s, with "
          f"{total_w:.2f} s, ratio {figures['ratio_of_sums']:.3f} (target <= 1.20)")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(figures, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
