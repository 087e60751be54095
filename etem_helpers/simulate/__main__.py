"""Command line: write a simulated dataset.

Example (the committed sample in ``data/sample``)::

    etem simulate --n-images 8 --image-size-px 256 --seed 2026 --out data/sample
"""

from __future__ import annotations

import argparse
import sys

from .dataset import generate_dataset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="etem simulate",
        description="Simulate (E-)TEM/HRTEM micrographs with exact ground truth and write them as a dataset.",
    )
    parser.add_argument("--n-images", type=int, required=True, help="number of micrographs")
    parser.add_argument("--out", required=True, help="output folder (empty, or a dataset this command wrote, with --overwrite)")
    parser.add_argument("--regime", default="mixed", choices=("mixed", "hrtem", "lowmag"))
    parser.add_argument("--image-size-px", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--overwrite", action="store_true", help="replace a dataset this command wrote in --out (only its own files)")
    args = parser.parse_args(argv)
    try:
        path = generate_dataset(
            args.n_images, args.out, regime=args.regime, image_size_px=args.image_size_px,
            seed=args.seed, n_jobs=args.n_jobs, overwrite=args.overwrite, progress=True,
        )
    except (ValueError, TypeError, OSError) as error:  # user errors: one line, exit status 2
        print(f"{parser.prog}: error: {cli_message(error)}", file=sys.stderr)
        return 2
    print(f"wrote {args.n_images} micrographs to {path}")
    return 0


def cli_message(error: BaseException) -> str:
    """An error message in command-line terms: ``--option`` instead of ``option=True``, one line."""
    text = " ".join(str(error).split())
    for argument in ("overwrite", "n_images", "image_size_px", "n_jobs", "seed", "regime"):
        option = "--" + argument.replace("_", "-")
        text = text.replace(f"{argument}=True", option).replace(f"{argument} must", f"{option} must")
        text = text.replace(f"{argument}=", f"{option} ")
    return text


if __name__ == "__main__":
    sys.exit(main())
