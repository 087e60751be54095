"""Command line: write a simulated dataset.

Example (the committed sample in ``data/sample``)::

    etem simulate --n-images 8 --image-size-px 256 --seed 2026 --out data/sample
"""

from __future__ import annotations

import argparse
import sys

from .dataset import generate_dataset


def main(argv: list[str] | None = None) -> int:
    """``etem simulate ...``: user errors end with one line on stderr and exit status 2."""
    from etem_helpers.cli import run_guarded

    return run_guarded(_simulate, argv, "etem simulate")


def _simulate(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(
        prog="etem simulate",
        description="Simulate (E-)TEM/HRTEM micrographs with exact ground truth and write them "
        "as a dataset.",
    )
    parser.add_argument("--n-images", type=int, required=True, help="number of micrographs")
    parser.add_argument("--out", required=True, help="output folder (empty, or a dataset this "
                        "command wrote, with --overwrite)")
    parser.add_argument("--regime", default="mixed", choices=("mixed", "hrtem", "lowmag"))
    parser.add_argument("--image-size-px", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--dense-fraction", type=float, default=0.0,
                        help="fraction of images that are dense assemblies of faceted "
                        "particles (low magnification; default 0)")
    parser.add_argument("--overwrite", action="store_true", help="replace a dataset this "
                        "command wrote in --out (only its own files)")
    args = parser.parse_args(argv)
    path = generate_dataset(
        args.n_images, args.out, regime=args.regime, image_size_px=args.image_size_px,
        seed=args.seed, n_jobs=args.n_jobs, overwrite=args.overwrite, progress=True,
        dense_fraction=args.dense_fraction,
    )
    print(f"wrote {args.n_images} micrographs to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
