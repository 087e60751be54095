"""Throughput of the micrograph simulator (images per second).

Usage::

    python benchmarks/bench_simulate.py [--n-images 12] [--size 512] [--profile]

Prints, for the HRTEM and the low-magnification regime, images/s of
``simulate_micrograph`` in this process (parameters drawn with ``sample_params``) and of
``generate_dataset`` (simulation + writing MRC / TIFF / CSV) with ``n_jobs=1`` and ``2``.
Target (physics.md): >= 2 images/s for 512 x 512 HRTEM on a 2-core machine.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time
from pathlib import Path

import numpy as np

from etem_helpers.simulate import generate_dataset, sample_params, simulate_micrograph


def bench_in_process(regime: str, n_images: int, size: int) -> float:
    """Images per second of simulate_micrograph with drawn parameters (after one warm-up)."""
    rng = np.random.default_rng(0)
    params = [sample_params(rng, regime, image_size_px=size) for _ in range(n_images)]
    simulate_micrograph(params[0], seed=0)  # warm-up (imports, FFT plans)
    start = time.perf_counter()
    for i, p in enumerate(params):
        simulate_micrograph(p, seed=i)
    return n_images / (time.perf_counter() - start)


def bench_dataset(regime: str, n_images: int, size: int, n_jobs: int) -> float:
    """Images per second of generate_dataset (including file writing and process start-up)."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        generate_dataset(n_images, Path(tmp) / "ds", regime=regime, image_size_px=size,
                         seed=1, n_jobs=n_jobs, progress=False)
        return n_images / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=12)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--profile", action="store_true",
                        help="print the top cProfile entries of the in-process HRTEM run")
    args = parser.parse_args()
    print(f"{args.n_images} images of {args.size}x{args.size} px per measurement")
    for regime in ("hrtem", "lowmag"):
        rate = bench_in_process(regime, args.n_images, args.size)
        print(f"{regime:7s} simulate_micrograph, 1 process : {rate:6.2f} images/s")
        for n_jobs in (1, 2):
            rate = bench_dataset(regime, args.n_images, args.size, n_jobs)
            print(f"{regime:7s} generate_dataset, n_jobs={n_jobs}   : {rate:6.2f} images/s")
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        bench_in_process("hrtem", args.n_images, args.size)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
