"""Time added by the fault stage to ``etem_helpers.analyze`` on a 1024 x 1024 HRTEM micrograph.

Usage::

    python benchmarks/bench_faults.py [--repeats 3] [--threads N] [--json PATH]

For each of the micrographs ``sample_params(default_rng(s), "hrtem", 1024)``, s in
``PARAMS_SEEDS`` (simulation seed 0; the script prints pixel size and particle counts), in ONE
process and on the CPU: one warm-up call of each, ``--repeats`` timed calls of
``analyze(image, pixel_size_nm)`` and of ``analyze_faults(image, result.labels, pixel_size_nm)``
(shipped classifier, loaded once as the Analyzer would; default threads), and prints the median
seconds of each, the ratio ``(analyze + analyze_faults) / analyze`` per micrograph and the ratio
of the summed medians over all of them. Target (issue #10): at most about 1.20.
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

    import etem_helpers
    from etem_helpers import faults
    from etem_helpers.simulate import sample_params, simulate_micrograph

    if args.threads:
        torch.set_num_threads(args.threads)
    classifier = faults.load_classifier("default")
    per_image = []
    for seed in PARAMS_SEEDS:
        params = sample_params(np.random.default_rng(seed), "hrtem", image_size_px=1024)
        sim = simulate_micrograph(params, seed=0)
        image, px = sim.image.astype(np.float32), float(params.pixel_size_nm)
        result = etem_helpers.analyze(image, px, device="cpu")  # warm-up
        faults.analyze_faults(image, result.labels, px, classifier=classifier)
        t_analyze, t_faults = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            result = etem_helpers.analyze(image, px, device="cpu")
            t_analyze.append(time.perf_counter() - start)
            start = time.perf_counter()
            table = faults.analyze_faults(image, result.labels, px, classifier=classifier)
            t_faults.append(time.perf_counter() - start)
        a, f = statistics.median(t_analyze), statistics.median(t_faults)
        row = {"params_seed": seed, "pixel_size_nm": px, "material": params.material,
               "n_true_particles": int(sim.labels.max()), "n_detected_particles": len(table),
               "n_lattice_resolved": int(table["lattice_resolved"].sum()),
               "analyze_s_median": a, "analyze_faults_s_median": f, "ratio": (a + f) / a}
        per_image.append(row)
        print(f"seed {seed}: {px:.4f} nm/px {params.material}, {row['n_true_particles']} true / "
              f"{len(table)} detected particles, {row['n_lattice_resolved']} lattice-resolved; "
              f"analyze {a:.2f} s, analyze_faults {f:.2f} s, ratio {row['ratio']:.3f}", flush=True)
    total_a = sum(r["analyze_s_median"] for r in per_image)
    total_f = sum(r["analyze_faults_s_median"] for r in per_image)
    figures = {"per_image": per_image, "ratio_of_sums": (total_a + total_f) / total_a,
               "repeats": args.repeats, "torch_threads": torch.get_num_threads()}
    print(f"all {len(per_image)} micrographs: analyze {total_a:.2f} s, analyze_faults "
          f"{total_f:.2f} s, ratio (analyze + faults) / analyze = {figures['ratio_of_sums']:.3f} "
          f"(target <= 1.20)")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(figures, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
