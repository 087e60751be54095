"""Conditioning fidelity: does the generator draw the particles its mask asks for?

Usage::

    OMP_WAIT_POLICY=PASSIVE python benchmarks/gan_fidelity.py --n-images 24 --seed 0 \\
        [--generator etem_helpers/models/gan_light.pt] [--json outputs/gan_fidelity.json]

Masks are drawn with the simulator's sampler (``etem_helpers.gan.draw_masks``, 256 px, at the
generator's pixel size) for several requests (round particles of three size ranges, rods,
aggregates, a dense touching assembly), rendered by the generator, segmented by the shipped
U-Net (``Analyzer("default")``, segmentation stages only) and compared with the masks: pixel
Dice, instance F1, mean relative diameter error and bias over matched particles, median area
ratio. Targets (issue #11): Dice >= 0.90, diameter error <= 5 %.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_GENERATOR = REPOSITORY_ROOT / "etem_helpers" / "models" / "gan_light.pt"

REQUESTS = {
    "round 10-20 nm": {"diameter_range_nm": (10.0, 20.0), "kinds": ("round",), "n_particles": 20},
    "round 20-40 nm": {"diameter_range_nm": (20.0, 40.0), "kinds": ("round",), "n_particles": 10},
    "round 40-80 nm": {"diameter_range_nm": (40.0, 80.0), "kinds": ("round",), "n_particles": 4},
    "rods 10-20 nm wide": {"diameter_range_nm": (10.0, 20.0), "kinds": ("rod",), "n_particles": 6},
    "aggregates 20-60 nm": {"diameter_range_nm": (20.0, 60.0), "kinds": ("aggregate",),
                            "n_particles": 6},
    "dense, touching": {"diameter_range_nm": (15.0, 35.0), "kinds": ("round", "faceted"),
                        "n_particles": 30, "touching_fraction": 0.8},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", type=Path, default=DEFAULT_GENERATOR)
    parser.add_argument("--n-images", type=int, default=24, help="images per request")
    parser.add_argument("--image-size-px", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--segmenter", default="default",
                        help="U-Net checkpoint that segments the generated images: 'default' "
                             "(the shipped model, as issue #11 asks) or a path, e.g. the model "
                             "fine-tuned on the real calibration images (benchmarks/eval_finetune.py)")
    parser.add_argument("--outline", choices=("physical", "half_contrast"), default="physical",
                        help="the segmenter's outline convention (Analyzer setting `outline`): "
                             "'physical' (the default) or 'half_contrast' (outlines on the "
                             "local half-contrast line, as people draw them; issue #13 item 6)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from etem_helpers.gan import MaskRequest, load_generator
    from etem_helpers.gan.judge import SEGMENTATION_ONLY, conditioning_fidelity
    from etem_helpers.pipeline import Analyzer

    generator, card = load_generator(args.generator)
    analyzer = Analyzer(args.segmenter, device="cpu", outline=args.outline, **SEGMENTATION_ONLY)

    def segment(image, pixel_size_nm):
        return analyzer(image, pixel_size_nm).labels

    rows = {}
    print(f"segmenter {args.segmenter} (outline {args.outline}); generator {args.generator.name} ({card.preset}, "
          f"{card.pixel_size_nm} nm/px); "
          f"{args.n_images} images of {args.image_size_px} px per request, seed {args.seed}")
    print("| request | particles | pixel Dice | F1 | diameter error | diameter bias | "
          "median area ratio |")
    print("|---|---|---|---|---|---|---|")
    started = time.perf_counter()
    for k, (name, request) in enumerate(REQUESTS.items()):
        result = conditioning_fidelity(generator, segment, pixel_size_nm=card.pixel_size_nm,
                                       n_images=args.n_images, request=MaskRequest(**request),
                                       image_size_px=args.image_size_px,
                                       seed=args.seed * 100 + k)
        n_true = int(sum(int(m.max()) for m in result.pop("masks")))
        result.pop("images")
        rows[name] = {**result, "n_true_particles": n_true}
        print(f"| {name} | {n_true} | {result['pixel_dice']:.3f} | {result['f1']:.3f} | "
              f"{100 * result['diameter_error']:.1f} % | {100 * result['diameter_bias']:+.1f} % | "
              f"{result['median_area_ratio']:.2f} |", flush=True)
    print(f"total {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"arguments": {k: str(v) for k, v in vars(args).items()},
                                         "results": rows}, indent=2))


if __name__ == "__main__":
    main()
