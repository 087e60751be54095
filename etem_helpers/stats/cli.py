"""``etem compare``: compare segmentation methods with a reference and write a report.

Two data sources: a simulated dataset folder (one split of it) or the real sample with its
hand outlines (:mod:`etem_helpers.datasets.real`). The report folder gets CSV tables, PNG
figures and ``summary.md`` (:func:`etem_helpers.stats.write_report`).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from .compare import write_report
from .runner import METHOD_BUILDERS, compare_on_dataset, default_methods

__all__ = ["compare_command", "compare_parser", "dataset_split_ids"]

SPLITS = ("test", "val", "train", "all")


def compare_parser() -> argparse.ArgumentParser:
    """The argument parser of ``etem compare``."""
    parser = argparse.ArgumentParser(
        prog="etem compare",
        description="compare segmentation methods with the true or hand-drawn particles of a "
        "dataset; write tables (CSV), figures (PNG) and summary.md into --out",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", type=Path, help="simulated dataset folder (etem simulate)")
    source.add_argument("--real", action="store_true",
                        help="the real sintering sample against its hand outlines")
    parser.add_argument("--split", choices=SPLITS, default="test",
                        help="split of --dataset (70/15/15 by micrograph; default: test)")
    parser.add_argument("--split-seed", type=int, default=None,
                        help="seed of the split (default: the dataset's generator seed, as "
                        "in training)")
    parser.add_argument("--max-images", type=int, default=None, help="use the first N only")
    parser.add_argument("--real-pixel-size-nm", type=float, default=0.5,
                        help="nominal pixel size of the real sample, which states none "
                        "(default 0.5 nm/px)")
    parser.add_argument("--real-source", type=Path, default=None,
                        help="local copy of the real sample (images/, labels/) to fill the "
                        "cache from, hash-checked, instead of downloading")
    parser.add_argument("--real-ids", choices=("evaluation", "all"), default="evaluation",
                        help="evaluation ids (image_5..19, never tuned on) or all 20")
    parser.add_argument("--out", type=Path, required=True,
                        help="report folder (new, or one written before by etem compare)")
    parser.add_argument("--methods", nargs="+", default=list(METHOD_BUILDERS),
                        choices=sorted(METHOD_BUILDERS), help="methods to compare")
    parser.add_argument("--model", default="default", help="U-Net checkpoint (default: shipped)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto")
    margin = parser.add_mutually_exclusive_group()
    margin.add_argument("--margin-nm", type=float, default=None,
                        help="equivalence margin (+-) of the mean diameter difference, in nm")
    margin.add_argument("--margin-px", type=float, default=None,
                        help="equivalence margin in pixels (needs one pixel size for all "
                        "images); default 1 px when all images share a pixel size")
    parser.add_argument("--n-resamples", type=int, default=2000,
                        help="bootstrap replicates (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    return parser


def dataset_split_ids(dataset_dir: Path, split: str, *, seed: int | None = None) -> list[str]:
    """Micrograph ids of one split of a dataset folder.

    The split column of the manifest if it has one, else
    :func:`etem_helpers.datasets.split_by_micrograph` 70/15/15 with ``seed`` (default: the
    dataset's generator seed from ``dataset.json``, which is what training uses).
    """
    from etem_helpers.datasets import read_manifest, split_by_micrograph

    manifest = read_manifest(dataset_dir)
    ids = manifest["micrograph_id"].astype(str).tolist()
    if split == "all":
        return ids
    if "split" in manifest.columns:
        return manifest.loc[manifest["split"] == split, "micrograph_id"].astype(str).tolist()
    if seed is None:
        info = dataset_dir / "dataset.json"
        if not info.is_file():
            raise FileNotFoundError(f"{info} is missing; pass --split-seed to split {dataset_dir}.")
        seed = int(json.loads(info.read_text())["arguments"]["seed"])
    return list(split_by_micrograph(ids, fractions=(0.70, 0.15, 0.15), seed=seed)[split])


def _samples(args):
    """The samples and a one-line description of them."""
    if args.dataset is not None:
        from etem_helpers.datasets import iter_samples

        if not args.dataset.is_dir():
            raise FileNotFoundError(f"--dataset {args.dataset} is not a folder.")
        ids = dataset_split_ids(args.dataset, args.split, seed=args.split_seed)[:args.max_images]
        if not ids:
            raise ValueError(f"the {args.split} split of {args.dataset} is empty.")
        return list(iter_samples(args.dataset, ids)), f"{args.split} split of {args.dataset}"
    from etem_helpers.datasets import real

    if args.real_source is not None:
        real.populate_cache_from(args.real_source)
    ids = real.SINTERING_EVALUATION_IDS if args.real_ids == "evaluation" else None
    samples = real.sintering_samples(args.real_pixel_size_nm, ids=ids)[:args.max_images]
    return samples, (f"real sintering sample ({args.real_ids} ids), nominal "
                     f"{args.real_pixel_size_nm:g} nm/px; {real.ATTRIBUTION}")


def _margin(args, pixel_sizes_nm) -> tuple[float | None, str]:
    if args.margin_nm is not None:
        return args.margin_nm, f"+-{args.margin_nm:g} nm (given with --margin-nm)"
    distinct = sorted(set(pixel_sizes_nm))
    if len(distinct) != 1:
        if args.margin_px is not None:
            raise ValueError("--margin-px needs one pixel size for all images; these have "
                             f"{len(distinct)}. Give --margin-nm instead.")
        return None, ""
    px = args.margin_px if args.margin_px is not None else 1.0
    return px * distinct[0], (f"+-{px:g} px = +-{px * distinct[0]:.4g} nm at "
                              f"{distinct[0]:.4g} nm/px (the resolution of an outline)")


def compare_command(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``etem compare`` (see ``etem compare --help``); returns the exit status."""
    args = compare_parser().parse_args(argv)
    if args.n_resamples < 100:
        raise ValueError(f"--n-resamples {args.n_resamples} is too few; use at least 100.")
    samples, described = _samples(args)
    if not samples:
        raise ValueError("no images to compare (check --max-images and the ids).")
    methods = default_methods(args.device, names=args.methods, model=args.model)
    print(f"Comparing {', '.join(methods)} on {len(samples)} images: {described}", flush=True)
    tables = compare_on_dataset(samples, methods)
    margin, note = _margin(args, [s[3] for s in samples])
    written = write_report(tables, args.out, n_resamples=args.n_resamples, seed=args.seed,
                           margin=margin, margin_note=note)
    print(f"Report written to {args.out}: {', '.join(sorted(p.name for p in written.values()))}")
    return 0
