"""Generator and discriminator of the mask-conditioned GAN (pix2pix, Isola et al. 2017).

* **Generator**: a U-Net from the conditioning planes to one image channel in [-1, 1]
  (``tanh``). The ``light`` one adds a *texture branch*: the ``noise`` plane, filtered by two
  learned 5 x 5 convolutions and scaled pixel by pixel by the decoder, joins the last layer, so
  the grain of the support and the particles is drawn from fresh noise every time (a plain
  U-Net painted worm-like patterns instead in a 60-epoch run without it, see the model report).
* **Discriminator**: a PatchGAN. It sees the conditioning planes *and* an image and scores
  every overlapping patch (about 30-70 px) as real or generated: it judges texture and edges
  locally, while the L1 term of the loss keeps the image as a whole faithful to the mask.

Presets:

=========  ==================================================================================
``light``  a small U-Net (16-128 channels, 4 levels, ~1.2 M parameters) and a 3-layer
           PatchGAN (receptive field 34 px): trains on a CPU in minutes.
``paper``  the reference paper's scale: a U-Net with a ResNet-50 encoder
           (``segmentation_models_pytorch``, no downloaded weights) and a 4-layer PatchGAN
           (70 px), for a GPU.
=========  ==================================================================================

Nothing runs at import (torch is imported inside the functions).
"""

from __future__ import annotations

from typing import Any

from etem_helpers.gan.conditioning import BASE_CHANNELS

__all__ = ["GAN_PRESETS", "build_discriminator", "build_generator", "count_parameters"]

GAN_PRESETS: dict[str, dict[str, Any]] = {
    "light": {"generator": "unet", "widths": (16, 32, 64, 128), "disc_width": 32,
              "disc_layers": 2},
    "paper": {"generator": "resnet50", "disc_width": 64, "disc_layers": 3},
}


def _preset(preset: str) -> dict[str, Any]:
    if preset not in GAN_PRESETS:
        raise ValueError(f"preset={preset!r} is not known; use one of {sorted(GAN_PRESETS)}.")
    return GAN_PRESETS[preset]


def _check_channels(in_channels) -> int:
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"in_channels must be a positive integer, got {in_channels!r}.")
    return in_channels


def _light_unet(in_channels: int, widths: tuple[int, ...], noise_channel: int):
    import torch
    from torch import nn

    def block(c_in: int, c_out: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
            nn.LeakyReLU(0.2, inplace=True),
        )

    class LightUNet(nn.Module):
        """Encoder (conv blocks + 2x2 max pooling), decoder (upsampling + skip connections)."""

        def __init__(self):
            super().__init__()
            self.down = nn.ModuleList()
            c = in_channels
            for w in widths:
                self.down.append(block(c, w))
                c = w
            self.bottom = block(widths[-1], widths[-1])
            self.up = nn.ModuleList()
            self.drop = nn.ModuleList()
            c = widths[-1]
            for i, w in enumerate(reversed(widths)):
                self.up.append(block(c + w, w))
                self.drop.append(nn.Dropout2d(0.5 if i < 2 else 0.0))
                c = w
            # texture branch: the noise plane, shaped by two 5x5 convolutions (a learned noise
            # spectrum, correlation lengths up to ~9 px) and scaled per pixel by the decoder (so
            # grain can differ between support and particles)
            self.texture = nn.Sequential(nn.Conv2d(1, 8, 5, padding=2),
                                         nn.LeakyReLU(0.2, inplace=True),
                                         nn.Conv2d(8, 8, 5, padding=2))
            self.amplitude = nn.Conv2d(c, 8, 1)
            self.head = nn.Conv2d(c + 8, 1, 1)

        def forward(self, x):
            noise = x[:, noise_channel:noise_channel + 1]
            skips = []
            for layer in self.down:
                x = layer(x)
                skips.append(x)
                x = nn.functional.max_pool2d(x, 2)
            x = self.bottom(x)
            for layer, drop, skip in zip(self.up, self.drop, reversed(skips), strict=True):
                x = nn.functional.interpolate(x, size=skip.shape[-2:], mode="bilinear",
                                              align_corners=False)
                x = drop(layer(torch.cat([x, skip], dim=1)))
            grain = self.texture(noise) * nn.functional.softplus(self.amplitude(x))
            return torch.tanh(self.head(torch.cat([x, grain], dim=1)))

    return LightUNet()


def build_generator(preset: str = "light", *, in_channels: int, seed: int | None = None):
    """The generator: conditioning planes ``(N, C, H, W)`` to an image ``(N, 1, H, W)``.

    Parameters
    ----------
    preset : {"light", "paper"}
        See the module docstring.
    in_channels : int
        Number of conditioning planes
        (:func:`etem_helpers.gan.conditioning.n_condition_channels`).
    seed : int, optional
        Seed of the weight initialisation.

    Returns
    -------
    torch.nn.Module
        Output in [-1, 1]; H and W must be multiples of 16 (``light``) or 32 (``paper``).
    """
    import torch
    from torch import nn

    spec = _preset(preset)
    in_channels = _check_channels(in_channels)
    if seed is not None:
        torch.manual_seed(int(seed))
    if spec["generator"] == "unet":
        noise_channel = BASE_CHANNELS.index("noise")
        if in_channels <= noise_channel:
            raise ValueError(
                f"in_channels={in_channels}: the light generator needs the conditioning planes "
                f"{list(BASE_CHANNELS)} (its texture branch reads the 'noise' plane)."
            )
        return _light_unet(in_channels, spec["widths"], noise_channel)
    import segmentation_models_pytorch as smp

    unet = smp.Unet(encoder_name="resnet50", encoder_weights=None, in_channels=in_channels,
                    classes=1, activation=None)
    return nn.Sequential(unet, nn.Tanh())


def build_discriminator(preset: str = "light", *, in_channels: int, seed: int | None = None,
                        n_layers: int | None = None):
    """PatchGAN discriminator on ``cat(conditioning planes, image)``: one logit per patch.

    Parameters
    ----------
    preset : {"light", "paper"}
        See the module docstring.
    in_channels : int
        Number of conditioning planes (the image channel is added here).
    seed : int, optional
        Seed of the weight initialisation.
    n_layers : int, optional
        Strided layers after the first (the preset's by default: 2 for ``light``, receptive
        field 34 px; 3 gives 70 px).
    """
    import torch
    from torch import nn

    spec = _preset(preset)
    in_channels = _check_channels(in_channels)
    n_layers = spec["disc_layers"] if n_layers is None else n_layers
    if isinstance(n_layers, bool) or not isinstance(n_layers, int) or not 1 <= n_layers <= 5:
        raise ValueError(f"n_layers must be an integer from 1 to 5, got {n_layers!r}.")
    if seed is not None:
        torch.manual_seed(int(seed))
    width = spec["disc_width"]
    layers: list[nn.Module] = [nn.Conv2d(in_channels + 1, width, 4, stride=2, padding=1),
                               nn.LeakyReLU(0.2, inplace=True)]
    c = width
    for i in range(n_layers):
        stride = 2 if i < n_layers - 1 else 1
        out = min(c * 2, 8 * width)
        layers += [nn.Conv2d(c, out, 4, stride=stride, padding=1, bias=False),
                   nn.InstanceNorm2d(out, affine=True), nn.LeakyReLU(0.2, inplace=True)]
        c = out
    layers.append(nn.Conv2d(c, 1, 4, stride=1, padding=1))
    return nn.Sequential(*layers)


def count_parameters(model) -> int:
    """Number of trainable parameters of a torch module."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))
