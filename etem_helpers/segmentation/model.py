"""U-Net architectures (presets) and the Dice + BCE loss."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

#: Architectures by name: keyword arguments of ``segmentation_models_pytorch.Unet`` (read-only).
PRESETS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        "paper": MappingProxyType(
            {
                "encoder_name": "resnet34",
                "encoder_depth": 5,
                "decoder_channels": (256, 128, 64, 32, 16),
            }
        ),
        "light": MappingProxyType(
            {
                "encoder_name": "mobilenet_v2",
                "encoder_depth": 5,
                "decoder_channels": (128, 64, 32, 16, 8),
            }
        ),
        "tiny": MappingProxyType(
            {
                "encoder_name": "tu-resnet18",
                "encoder_depth": 3,
                "decoder_channels": (32, 16, 8),
            }
        ),
    }
)


_IN_CHANNELS = 1


_CLASSES = 2


def _preset_kwargs(preset: str) -> dict[str, Any]:
    if preset not in PRESETS:
        raise ValueError(f"preset={preset!r} is not known; choose one of {sorted(PRESETS)}.")
    kwargs = dict(PRESETS[preset])
    kwargs["decoder_channels"] = tuple(kwargs["decoder_channels"])
    return kwargs


def build_unet(preset: str = "light", *, encoder_weights: str | None = None, seed: int | None = None):
    """Build a U-Net with 1 input channel and 2 output logits (foreground, boundary).

    Parameters
    ----------
    preset : {"light", "paper", "tiny"}
        Architecture, see :data:`PRESETS` and the module docstring. ``"tiny"`` is for tests only.
    encoder_weights : {None, "imagenet"}
        None (default) starts from random weights. ``"imagenet"`` downloads pretrained encoder
        weights from the internet on first use (cached by PyTorch / Hugging Face); the RGB first
        convolution is folded to one channel by segmentation-models-pytorch.
    seed : int or None
        If given, the random initialisation uses this seed without touching the global torch
        random state (reproducible weights). None uses the global torch generator.

    Returns
    -------
    torch.nn.Module
        A ``segmentation_models_pytorch.Unet``; input (B, 1, H, W) with H, W multiples of
        ``2**encoder_depth``, output logits (B, 2, H, W).
    """
    import segmentation_models_pytorch as smp
    import torch

    kwargs = _preset_kwargs(preset)
    if encoder_weights not in (None, "imagenet"):
        raise ValueError(
            f"encoder_weights={encoder_weights!r} is not supported; use None (random) or 'imagenet'."
        )

    def make():
        return smp.Unet(
            **kwargs, encoder_weights=encoder_weights, in_channels=_IN_CHANNELS, classes=_CLASSES
        )

    if seed is None:
        return make()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return make()


def _size_multiple(model) -> int:
    """Side multiple (pixels) the model needs: 2**encoder_depth for smp models, else 32."""
    encoder = getattr(model, "encoder", None)
    stride = getattr(encoder, "output_stride", None)
    if isinstance(stride, int) and stride > 0:
        return stride
    return 32


def dice_bce_loss(
    logits,
    targets,
    *,
    alpha: float = 0.5,
    boundary_weight: float = 1.0,
    boundary_pos_weight: float = 5.0,
    smooth: float = 1.0,
):
    r"""Segmentation loss: Dice + BCE on the foreground, weighted BCE on the boundary.

    .. math::

        L = \alpha\,\mathrm{Dice}(p_0, y_0) + (1 - \alpha)\,\mathrm{BCE}(z_0, y_0)
            + w_b\,\mathrm{BCE}_{w_+}(z_1, y_1)

    with :math:`z` the logits, :math:`p = \sigma(z)`, and the soft Dice loss
    :math:`1 - (2\sum p y + s) / (\sum p + \sum y + s)` summed over the whole batch (stable on
    tiles without particles). Contact-boundary pixels are rare (a few % of the foreground), so
    their positive class is up-weighted by :math:`w_+` (``boundary_pos_weight``).

    Parameters
    ----------
    logits : torch.Tensor, shape (B, 2, H, W)
        Raw network outputs (foreground, boundary).
    targets : torch.Tensor, shape (B, 2, H, W) or (B, 1, H, W)
        0/1 targets from :func:`etem_helpers.segmentation.labels_to_targets`. With one channel
        (foreground only) the boundary term is skipped.
    alpha : float
        Weight of the Dice term on the foreground, in [0, 1]; ``1 - alpha`` weighs the BCE.
    boundary_weight : float
        Weight :math:`w_b` of the boundary BCE term (0 disables it).
    boundary_pos_weight : float
        Weight :math:`w_+` of positive (boundary) pixels inside the boundary BCE.
    smooth : float
        Additive smoothing :math:`s` of the Dice ratio, in pixels.

    Returns
    -------
    torch.Tensor
        Scalar loss (differentiable).
    """
    import torch
    import torch.nn.functional as F

    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha={alpha} must be in [0, 1].")
    if logits.ndim != 4 or targets.ndim != 4:
        raise ValueError(
            f"logits and targets must be (B, C, H, W); got {tuple(logits.shape)} and "
            f"{tuple(targets.shape)}."
        )
    if logits.shape[0] != targets.shape[0] or logits.shape[2:] != targets.shape[2:]:
        raise ValueError(
            f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} differ in batch or "
            "spatial size."
        )
    targets = targets.to(dtype=logits.dtype)
    z_fg, y_fg = logits[:, 0], targets[:, 0]
    p_fg = torch.sigmoid(z_fg)
    intersection = (p_fg * y_fg).sum()
    dice = 1.0 - (2.0 * intersection + smooth) / (p_fg.sum() + y_fg.sum() + smooth)
    bce = F.binary_cross_entropy_with_logits(z_fg, y_fg)
    loss = alpha * dice + (1.0 - alpha) * bce
    if boundary_weight and targets.shape[1] > 1 and logits.shape[1] > 1:
        pos_weight = torch.tensor(boundary_pos_weight, dtype=logits.dtype, device=logits.device)
        boundary_bce = F.binary_cross_entropy_with_logits(
            logits[:, 1], targets[:, 1], pos_weight=pos_weight
        )
        loss = loss + boundary_weight * boundary_bce
    return loss

