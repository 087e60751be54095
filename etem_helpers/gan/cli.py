"""``etem gan train | generate``: the command-line face of :mod:`etem_helpers.gan`.

Examples::

    etem gan train --real-dir ../shared/real/msa-em-sintering \\
        --config etem_helpers/models/gan_light_config.json --out my_gan.pt
    etem gan generate --out gan_data --n-images 20 --diameter-range-nm 5 15 --kinds round rod
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

__all__ = ["gan_command"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="etem gan", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True)
    train = sub.add_parser("train", help="train a generator on the real sample's calibration "
                                         "images (image_0..4)")
    train.add_argument("--out", required=True, help="generator file to write (.pt)")
    train.add_argument("--config", default=None, help="JSON of DEFAULT_GAN_CONFIG overrides")
    train.add_argument("--real-dir", default=None,
                       help="local copy of the real sample (default: the download cache)")
    train.add_argument("--overwrite", action="store_true")
    gen = sub.add_parser("generate", help="draw masks of chosen sizes/shapes and render them "
                                          "into a dataset folder")
    gen.add_argument("--out", required=True, help="dataset folder to write")
    gen.add_argument("--n-images", type=int, required=True)
    gen.add_argument("--generator", default="default",
                     help="generator file, or 'default' for the shipped light generator")
    gen.add_argument("--diameter-range-nm", type=float, nargs=2, default=(15.0, 45.0))
    gen.add_argument("--kinds", nargs="+", default=["round"],
                     help="round faceted decahedral rod nanotube aggregate")
    gen.add_argument("--n-particles", type=int, default=15, help="objects placed per image")
    gen.add_argument("--touching-fraction", type=float, default=0.3)
    gen.add_argument("--image-size-px", type=int, default=512)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--device", default="cpu")
    gen.add_argument("--overwrite", action="store_true")
    return parser


def gan_command(argv: Sequence[str] | None = None) -> int:
    """Run ``etem gan train`` or ``etem gan generate`` (see the module docstring)."""
    args = _parser().parse_args(argv)
    if args.action == "train":
        from etem_helpers.gan.train import load_gan_config, real_training_images, run_gan_training

        config = load_gan_config(args.config)
        images = real_training_images(args.real_dir, float(config["pixel_size_nm"]))
        _, card, _ = run_gan_training(images, config, args.out, overwrite=args.overwrite)
        print(json.dumps(card.metrics, indent=2))
        return 0
    from etem_helpers.gan.synthesis import MaskRequest, generate

    request = MaskRequest(diameter_range_nm=tuple(args.diameter_range_nm),
                          kinds=tuple(args.kinds), n_particles=args.n_particles,
                          touching_fraction=args.touching_fraction)
    out = generate(args.generator, args.out, args.n_images, request=request,
                   image_size_px=args.image_size_px, seed=args.seed, overwrite=args.overwrite,
                   device=args.device)
    print(f"wrote {args.n_images} images to {out}")
    return 0
