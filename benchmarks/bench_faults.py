"""Time added by the fault stage to ``etem_helpers.analyze`` on a 1024 x 1024 HRTEM micrograph.

Usage::

    python benchmarks/bench_faults.py [--repeats 3] [--threads N] [--json PATH]

Simulates ``sample_params(default_rng(PARAMS_SEED), "hrtem", 1024)`` (seed 0; the script prints
the pixel size and particle count), then in ONE process and on the CPU: one warm-up call of each,
``--repeats`` timed calls of ``analyze(image, pixel_size_nm)`` and of
``analyze_faults(image, result.labels, pixel_size_nm)`` (shipped classifier, loaded once as the
Analyzer would), and prints the median seconds of each and the ratio
``(analyze + analyze_faults) / analyze``. Target (issue #10): at most about 1.20.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

PARAMS_SEED = 4


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
    params = sample_params(np.random.default_rng(PARAMS_SEED), "hrtem", image_size_px=1024)
    sim = simulate_micrograph(params, seed=0)
    image, px = sim.image.astype(np.float32), float(params.pixel_size_nm)
    print(f"1024 x 1024 HRTEM: {px:.4f} nm/px, {params.material}, {int(sim.labels.max())} true "
          f"particles, dose {params.dose_e_per_a2:.0f} e/A^2")
    classifier = faults.load_classifier("default")
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
    figures = {
        "pixel_size_nm": px, "n_true_particles": int(sim.labels.max()),
        "n_detected_particles": len(table),
        "n_lattice_resolved": int(table["lattice_resolved"].sum()),
        "analyze_s_median": a, "analyze_faults_s_median": f, "ratio": (a + f) / a,
        "analyze_s": t_analyze, "analyze_faults_s": t_faults, "repeats": args.repeats,
        "torch_threads": torch.get_num_threads(),
    }
    print(f"analyze: {a:.2f} s   analyze_faults: {f:.2f} s ({len(table)} particles, "
          f"{figures['n_lattice_resolved']} lattice-resolved)   ratio (analyze + faults) / "
          f"analyze = {figures['ratio']:.3f}  (target <= 1.20)")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(figures, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
