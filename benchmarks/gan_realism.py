"""Realism of simulated (and, later, GAN-generated) micrographs in a self-trained feature space.

Usage::

    python benchmarks/gan_realism.py [--real-dir DIR] [--seed 0] [--epochs 20]
        [--encoder PATH | --save-encoder PATH] [--n-sim 12]
        [--candidate NAME=DATASET_DIR ...] [--controls] [--bootstrap-unit image|crop]
        [--json PATH]

1. Loads the real sintering sample (download cache, or ``--real-dir``: a local copy laid out as
   ``images/image_N.png`` + ``labels/label_N.png``, hashes checked).
2. Trains the feature encoder of :mod:`etem_helpers.gan.feature_space` on random crops of the
   *calibration* images only (``SINTERING_CALIBRATION_IDS``), or loads one with ``--encoder``.
3. Builds crop sets and compares each with crops of the real *evaluation* images
   (``SINTERING_EVALUATION_IDS``, the reference):

   * ``real floor``: crops of the calibration images (other real images: the best a generator
     could reach),
   * ``sim lowmag``: ``--n-sim`` simulated 512 x 512 low-magnification micrographs
     (``sample_params(rng, "lowmag")`` + ``simulate_micrograph``, as in
     ``benchmarks/realism_sim_vs_real.py``),
   * one set per ``--candidate NAME=DATASET_DIR``: a dataset folder (``generate_dataset`` format,
     e.g. what the GAN's ``generate`` writes), read with ``iter_samples``.

4. Prints the Frechet distance (FD), kernel distance (KID) and the real-vs-set classifier AUC
   with bootstrap intervals, then the handcrafted :func:`etem_helpers.realism.compare_image_sets`
   measures of each set against the evaluation images; ``--json`` writes all of it.

Lower FD / KID and an AUC nearer 0.5 mean closer to the real evaluation images; read each against
the ``real floor`` row.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from realism_sim_vs_real import load_real, simulate_set
from scipy import ndimage

from etem_helpers.datasets.folders import iter_samples
from etem_helpers.datasets.real import SINTERING_CALIBRATION_IDS, SINTERING_EVALUATION_IDS
from etem_helpers.gan.feature_space import (
    compare_in_feature_space,
    load_feature_encoder,
    random_crops,
    save_feature_encoder,
    train_feature_encoder,
)
from etem_helpers.realism import compare_image_sets

HANDCRAFTED_KEYS = (
    "intensity_histogram_distance",
    "radial_spectrum_distance",
    "edge_width_px_real",
    "edge_width_px_sim",
    "background_std_real",
    "background_std_sim",
    "particle_contrast_real",
    "particle_contrast_sim",
)


def parse_candidate(text: str) -> tuple[str, Path]:
    """``NAME=DATASET_DIR`` -> (name, path), checked."""
    name, sep, folder = text.partition("=")
    if not sep or not name or not folder:
        raise argparse.ArgumentTypeError(f"--candidate must be NAME=DATASET_DIR, got {text!r}.")
    path = Path(folder)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"--candidate {name}: {path} is not a dataset folder.")
    return name, path


def read_dataset(path: Path, max_images: int | None) -> tuple[list, list]:
    """(images, label maps) of a dataset folder, at most max_images of them."""
    images, masks = [], []
    for _, image, labels, _ in iter_samples(path):
        images.append(image)
        masks.append(labels)
        if max_images and len(images) >= max_images:
            break
    if not images:
        raise SystemExit(f"dataset {path} holds no micrographs.")
    return images, masks


def _interval(value: float, low: float, high: float) -> str:
    if math.isnan(low):
        return f"{value:.4g}"
    return f"{value:.4g} [{low:.4g}, {high:.4g}]"


def degraded_controls(images: list, masks: list, seed: int) -> dict:
    """Calibration images blurred (sigma 1.5 px), and with added Gaussian noise (standard
    deviation 5 % of each image's 0.5-99.5 percentile range): known-unrealistic sets that the
    measures must rank above the real floor."""
    rng = np.random.default_rng(seed)
    blurred = [ndimage.gaussian_filter(np.asarray(im, float), 1.5) for im in images]
    noisy = []
    for im in images:
        im = np.asarray(im, float)
        lo, hi = np.percentile(im, [0.5, 99.5])
        noisy.append(im + rng.normal(0.0, 0.05 * (hi - lo), im.shape))
    return {"control blur 1.5px": (blurred, masks), "control noise": (noisy, masks)}


def format_table(frame) -> str:
    """FD, KID and AUC with their intervals, one line per set."""
    lines = [f"{'set':22s}{'crops':>6s}  {'FD [95% CI]':28s}{'KID [95% CI]':34s}AUC [95% CI]"]
    for row in frame.itertuples():
        lines.append(f"{row.set:22s}{row.n_crops:6d}  "
                     f"{_interval(row.fd, row.fd_low, row.fd_high):28s}"
                     f"{_interval(row.kid, row.kid_low, row.kid_high):34s}"
                     f"{row.auc:.3f} [{row.auc_low:.3f}, {row.auc_high:.3f}]")
    return "\n".join(lines)


def format_handcrafted(rows: dict[str, dict]) -> str:
    names = list(rows)
    lines = [f"{'measure (vs real evaluation)':34s}" + "".join(f"{n:>22s}" for n in names)]
    for key in HANDCRAFTED_KEYS:
        label = key.replace("_real", "_evaluation").replace("_sim", "_set")
        lines.append(f"{label:34s}" + "".join(f"{rows[n][key]:>22.4f}" for n in names))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real-dir", default=None,
                        help="local copy of the real images (images/, labels/); default: cache")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=20, help="encoder training epochs")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--crop-px", type=int, default=64)
    parser.add_argument("--train-crops-per-image", type=int, default=200,
                        help="crops of each calibration image the encoder trains on")
    parser.add_argument("--crops-per-image", type=int, default=100,
                        help="crops of each image in the compared sets")
    parser.add_argument("--encoder", default=None, help="load this encoder instead of training")
    parser.add_argument("--save-encoder", default=None, help="save the trained encoder here")
    parser.add_argument("--n-sim", type=int, default=12, help="simulated low-mag images")
    parser.add_argument("--candidate", action="append", type=parse_candidate, default=[],
                        metavar="NAME=DATASET_DIR", help="a dataset folder to judge (repeatable)")
    parser.add_argument("--max-candidate-images", type=int, default=None)
    parser.add_argument("--n-boot", type=int, default=200)
    parser.add_argument("--kid-boot", type=int, default=50)
    parser.add_argument("--bootstrap-unit", choices=("crop", "image"), default="image",
                        help="image (default): resample whole images and keep an image's crops "
                             "in one classifier fold; crop: resample crops (narrower intervals "
                             "that ignore how alike crops of one image are)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--controls", action="store_true",
                        help="also judge degraded copies of the calibration images (Gaussian "
                             "blur 1.5 px; added Gaussian noise): the measures should flag them")
    parser.add_argument("--json", default=None, help="write all results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    timings = {}

    start = time.perf_counter()
    real = load_real(args.real_dir)
    cal_images = [real[n][0] for n in SINTERING_CALIBRATION_IDS]
    cal_masks = [real[n][1] for n in SINTERING_CALIBRATION_IDS]
    ev_images = [real[n][0] for n in SINTERING_EVALUATION_IDS]
    ev_masks = [real[n][1] for n in SINTERING_EVALUATION_IDS]
    timings["load_real_s"] = time.perf_counter() - start

    start = time.perf_counter()
    if args.encoder:
        encoder = load_feature_encoder(args.encoder)
        shown = {k: v for k, v in encoder.info.items() if k != "loss_per_epoch"}
        print(f"loaded encoder {args.encoder}: {shown}")
    else:
        train_crops = random_crops(cal_images, crop_px=args.crop_px,
                                   n_per_image=args.train_crops_per_image, seed=args.seed)
        encoder = train_feature_encoder(train_crops, epochs=args.epochs, seed=args.seed,
                                        batch_size=args.batch_size, progress=True)
        if args.save_encoder:
            save_feature_encoder(args.save_encoder, encoder)
            print(f"encoder saved to {args.save_encoder}")
    timings["encoder_s"] = time.perf_counter() - start
    print(f"encoder ready in {timings['encoder_s']:.1f} s "
          f"({len(SINTERING_CALIBRATION_IDS)} calibration images)")

    start = time.perf_counter()
    sim_images, sim_masks, _ = simulate_set(args.n_sim, args.seed)
    timings["simulate_s"] = time.perf_counter() - start
    print(f"simulated {args.n_sim} low-mag images in {timings['simulate_s']:.1f} s")

    image_sets = {"real floor": (cal_images, cal_masks), "sim lowmag": (sim_images, sim_masks)}
    if args.controls:
        image_sets.update(degraded_controls(cal_images, cal_masks, args.seed))
    for name, path in args.candidate:
        image_sets[name] = read_dataset(path, args.max_candidate_images)

    start = time.perf_counter()
    crop_seed = args.seed + 1  # not the training crops' positions
    reference, ref_index = random_crops(ev_images, crop_px=args.crop_px,
                                        n_per_image=args.crops_per_image, seed=crop_seed,
                                        return_image_index=True)
    crops, groups = {}, {"reference": ref_index}
    for k, (name, (images, _)) in enumerate(image_sets.items()):
        crops[name], groups[name] = random_crops(images, crop_px=args.crop_px,
                                                 n_per_image=args.crops_per_image,
                                                 seed=crop_seed + 1 + k, return_image_index=True)
    floor = crops.pop("real floor")
    frame = compare_in_feature_space(
        encoder, reference, crops, floor_crops=floor, seed=args.seed, n_boot=args.n_boot,
        kid_boot=args.kid_boot, groups=groups if args.bootstrap_unit == "image" else None)
    timings["feature_space_s"] = time.perf_counter() - start

    start = time.perf_counter()
    handcrafted = {name: compare_image_sets(ev_images, images, ev_masks, masks)
                   for name, (images, masks) in image_sets.items()}
    timings["handcrafted_s"] = time.perf_counter() - start

    print(f"\nreference: {len(ev_images)} real evaluation images, {reference.shape[0]} crops of "
          f"{args.crop_px} px; bootstrap unit: {args.bootstrap_unit}, {args.n_boot} replicates "
          f"(KID {args.kid_boot})")
    print(format_table(frame))
    print()
    print(format_handcrafted(handcrafted))
    print("\ntimings: " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))

    if args.json:
        payload = {
            "args": {k: (v if k != "candidate" else [[n, str(p)] for n, p in v])
                     for k, v in vars(args).items()},
            "encoder_info": encoder.info,
            "feature_space": frame.to_dict(orient="records"),
            "handcrafted": handcrafted,
            "timings_s": timings,
        }
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(payload, indent=2, default=float))
        print(f"results written to {args.json}")


if __name__ == "__main__":
    main()
