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
