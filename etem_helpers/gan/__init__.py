"""Conditional GAN that draws micrographs from particle masks, and how to judge it (notebook 02).

Modules:

* :mod:`~etem_helpers.gan.conditioning`: the input the generator sees (mask, contact boundaries,
  pixel size, optional simulated image).
* :mod:`~etem_helpers.gan.model`: pix2pix-style U-Net generator and PatchGAN discriminator
  (``light`` and ``paper`` presets).
* :mod:`~etem_helpers.gan.data`: paired training crops (annotated real micrographs).
* :mod:`~etem_helpers.gan.train`: losses, training loop, checkpoints.
* :mod:`~etem_helpers.gan.synthesis`: masks of chosen size and shape, and :func:`generate`.
* :mod:`~etem_helpers.gan.feature_space`: realism in a feature space the project trains itself
  (Frechet and kernel distances, real-vs-synthetic classifier AUC, bootstrap intervals).

Nothing runs at import.
"""

from etem_helpers.gan.conditioning import BASE_CHANNELS, condition_planes, contact_boundaries
from etem_helpers.gan.data import PairedCrops, TrainingImage, training_images
from etem_helpers.gan.model import build_discriminator, build_generator
from etem_helpers.gan.synthesis import MaskRequest, draw_masks, generate, render
from etem_helpers.gan.train import (
    DEFAULT_GENERATOR_PATH,
    GanCard,
    load_generator,
    run_gan_training,
    save_generator,
    train_gan,
)

__all__ = [
    "BASE_CHANNELS",
    "DEFAULT_GENERATOR_PATH",
    "GanCard",
    "MaskRequest",
    "PairedCrops",
    "TrainingImage",
    "build_discriminator",
    "build_generator",
    "condition_planes",
    "contact_boundaries",
    "draw_masks",
    "generate",
    "load_generator",
    "render",
    "run_gan_training",
    "save_generator",
    "train_gan",
    "training_images",
]
