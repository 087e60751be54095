"""Time, memory and F1 of enlarging a 1024² micrograph of very small particles (issue #13).

Usage::

    python benchmarks/bench_enlarge.py [--scale particles] [--json outputs/bench_enlarge.json]

A simulated low-magnification micrograph, 1024 x 1024 at 0.6 nm/px, 500 round particles of
4-7 nm (7-12 px across: smaller than any the shipped model was trained on), analysed once with
every default stage by ``Analyzer(scale=...)``: ``"particles"`` (the default: enlarged by the
particles' estimated size, within ``preprocess.resample.MAX_ENLARGED_PIXELS``) or
``"pixel_size"`` (not resampled, the behaviour before). Run each mode in its own process: the
peak resident memory (``VmHWM``) is the process's, simulation included.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=("particles", "pixel_size"), default="particles")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    from bench_analyze import peak_rss_mb

    from etem_helpers.metrics.scoring import score_image
    from etem_helpers.pipeline import Analyzer
    from etem_helpers.simulate import SimulationParams, simulate_micrograph

    params = SimulationParams(regime="lowmag", image_size_px=1024, pixel_size_nm=0.6,
                              n_particles=500, kinds=("round",), diameter_range_nm=(4.0, 7.0))
    sim = simulate_micrograph(params, seed=1)
    analyzer = Analyzer(device="cpu", scale=args.scale)
    started = time.perf_counter()
    result = analyzer(sim.image, params.pixel_size_nm)
    seconds = time.perf_counter() - started
    scores = score_image(result.labels, sim.labels)
    figures = {"scale": args.scale, "seconds": seconds, "peak_rss_mb": peak_rss_mb(),
               "factor": float(result.info["resampling"].get("factor", 1.0)),
               "n_true": int(sim.labels.max()), "n_found": int(result.labels.max()),
               "f1": float(scores["f1"])}
    print(json.dumps(figures))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
