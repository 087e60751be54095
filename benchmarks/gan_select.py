"""Select among generators on the calibration images only: FD of their renderings of image_0..4's masks.

Usage::

    python benchmarks/gan_select.py --real-dir ../shared/real/msa-em-sintering \\
        --encoder outputs/gan_realism/encoder_seed0.pt etem_helpers/models/gan_light.pt OTHER.pt

For each generator: render the hand-drawn masks of the five calibration images (noise seed = image
index), cut 64 px crops (200 per image, seed 2) and compute the Frechet distance to crops of the real
calibration images (seed 1) in the saved encoder's feature space. The evaluation images are never
touched, so the figure may choose a model (BENCHMARKS.md gives the rule used).
"""

from __future__ import annotations

import argparse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("generators", nargs="+", help="generator files")
    parser.add_argument("--encoder", required=True, help="feature encoder (gan_realism.py --save-encoder)")
    parser.add_argument("--real-dir", default=None, help="local copy of the real sample")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    from etem_helpers.datasets import real
    from etem_helpers.gan import load_generator, render
    from etem_helpers.gan.feature_space import (
        encode,
        frechet_distance,
        load_feature_encoder,
        random_crops,
    )

    torch.set_num_threads(args.threads)
    samples = real.sintering_samples(0.5, ids=real.SINTERING_CALIBRATION_IDS,
                                     source_dir=args.real_dir)
    encoder = load_feature_encoder(args.encoder)
    encoder = encoder[0] if isinstance(encoder, tuple) else encoder
    reference = encode(encoder, random_crops([s[1] for s in samples], crop_px=64,
                                             n_per_image=200, seed=1))
    for path in args.generators:
        generator, card = load_generator(path)
        images = [render(generator, labels, card.pixel_size_nm, seed=i)
                  for i, (_, _, labels, _) in enumerate(samples)]
        features = encode(encoder, random_crops(images, crop_px=64, n_per_image=200, seed=2))
        print(f"{path}: calibration FD {frechet_distance(features, reference):.2f}", flush=True)


if __name__ == "__main__":
    main()
