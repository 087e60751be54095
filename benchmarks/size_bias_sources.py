"""Where does the real size bias come from? Light U-Nets trained two ways, scored on real images.

Usage (issue #13, "true edges"; exploratory)::

    OMP_WAIT_POLICY=PASSIVE python benchmarks/size_bias_sources.py lowmag_native 0
    OMP_WAIT_POLICY=PASSIVE python benchmarks/size_bias_sources.py mixed_05 0

Both use the GAN downstream test's U-Net configuration
(:func:`etem_helpers.gan.judge.downstream_config`: light preset, 128 px tiles, 12 epochs) and seed
``SEED``; they differ in one choice each from that test's condition (a) (40 low-magnification
micrographs resampled to 0.5 nm/px, ``outputs/gan_downstream/sim``):

* ``lowmag_native``: the same 40 micrographs at their own pixel sizes (0.1-0.6 nm/px), as the
  shipped model is trained (``target_pixel_size_nm`` None);
* ``mixed_05``: 40 micrographs of the shipped model's mixed regime (half HRTEM, seed 100),
  resampled to 0.5 nm/px.

Each U-Net is scored on the real evaluation images image_5..19 at their nominal 0.5 nm/px
(``gan.judge.score_on_real``): one JSON line with Dice, F1 and the size ratios.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(variant: str, seed: int) -> None:
    import torch

    from etem_helpers.datasets import real
    from etem_helpers.datasets.ensure import ensure_dataset
    from etem_helpers.gan.judge import downstream_config, score_on_real
    from etem_helpers.segmentation.train import run_training

    torch.set_num_threads(1)
    work = Path("outputs/size_bias")
    samples = real.sintering_samples(0.5, ids=real.SINTERING_EVALUATION_IDS,
                                     source_dir="../shared/real/msa-em-sintering")
    if variant == "lowmag_native":
        data = ensure_dataset(Path("outputs/gan_downstream/sim"), 40, seed=100, regime="lowmag",
                              image_size_px=512, progress=False).path
        config = downstream_config(data, seed=seed, epochs=12, tile_px=128, tiles_per_image=8,
                                   pixel_size_nm=0.5)
        config["target_pixel_size_nm"] = None
    elif variant == "mixed_05":
        data = ensure_dataset(work / "sim_mixed", 40, seed=100, regime="mixed", image_size_px=512,
                              progress=False).path
        config = downstream_config(data, seed=seed, epochs=12, tile_px=128, tiles_per_image=8,
                                   pixel_size_nm=0.5)
    else:
        raise SystemExit(f"variant must be lowmag_native or mixed_05, got {variant!r}")
    _, checkpoint = run_training(config, work / f"unet_{variant}_seed{seed}.pt", overwrite=True,
                                 progress=False)
    scores = score_on_real(checkpoint, samples, evaluation_ids=real.SINTERING_EVALUATION_IDS)
    print(json.dumps({"variant": variant, "seed": seed, **scores}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
