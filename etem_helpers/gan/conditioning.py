"""What the generator is told: the particle mask and the imaging scale, as image channels.

A conditional GAN draws an image *given* something. Here that something is a stack of
planes of the same size as the image (channels first):

=============  ==================================================================
``foreground`` 1 inside a particle, 0 on the support
``contact``    1 on particle pixels that touch a different particle (where two
               particles meet, the image shows a neck or a thin gap: the
               generator must know they are two)
``scale``      constant plane, ``log2(pixel_size_nm / REFERENCE_PIXEL_SIZE_NM) / 4``:
               the same mask means a different particle at another magnification
``noise``      white Gaussian noise, a fresh draw for every image: the source of
               texture that the mask does not fix (support grain, shot noise)
``simulated``  optional: the simulator's image of the same mask (robust-normalised
               to [-1, 1]), when the model was trained with it
=============  ==================================================================

Nothing runs at import.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "BASE_CHANNELS",
    "REFERENCE_PIXEL_SIZE_NM",
    "condition_planes",
    "contact_boundaries",
    "n_condition_channels",
    "scale_value",
    "to_signed_unit",
]

#: Names of the channels every model receives, in order (``simulated`` may follow).
BASE_CHANNELS: tuple[str, ...] = ("foreground", "contact", "scale", "noise")
#: The scale plane is 0 at this pixel size (nm/px).
REFERENCE_PIXEL_SIZE_NM = 0.5


def n_condition_channels(with_simulation: bool) -> int:
    """Number of conditioning channels: 4, or 5 with the simulated image."""
    return len(BASE_CHANNELS) + int(bool(with_simulation))


def scale_value(pixel_size_nm: float) -> float:
    """Value of the constant ``scale`` plane for a pixel size (nm/px).

    Raises
    ------
    ValueError
        If ``pixel_size_nm`` is not a positive finite number.
    """
    if isinstance(pixel_size_nm, bool) or not isinstance(pixel_size_nm, int | float | np.number) \
            or not math.isfinite(pixel_size_nm) or pixel_size_nm <= 0:
        raise ValueError(
            f"pixel_size_nm must be a positive number (nm per pixel), got {pixel_size_nm!r}."
        )
    return math.log2(float(pixel_size_nm) / REFERENCE_PIXEL_SIZE_NM) / 4.0


def contact_boundaries(labels: np.ndarray) -> np.ndarray:
    """Particle pixels with a 4-neighbour that belongs to a different particle.

    Parameters
    ----------
    labels : numpy.ndarray
        2-D integer instance labels (0 = background).

    Returns
    -------
    numpy.ndarray
        bool map, True on both sides of every particle-particle contact.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be a 2-D label map, got shape {labels.shape}.")
    out = np.zeros(labels.shape, dtype=bool)
    for axis in (0, 1):
        a = labels.take(range(0, labels.shape[axis] - 1), axis=axis)
        b = labels.take(range(1, labels.shape[axis]), axis=axis)
        touch = (a > 0) & (b > 0) & (a != b)
        if axis == 0:
            out[:-1, :] |= touch
            out[1:, :] |= touch
        else:
            out[:, :-1] |= touch
            out[:, 1:] |= touch
    return out


def to_signed_unit(image: np.ndarray) -> np.ndarray:
    """Robust-normalise an image (0.5 / 99.5 percentiles to -1 / 1, clipped): GAN units."""
    from etem_helpers.realism import robust_normalise

    return (2.0 * robust_normalise(image) - 1.0).astype(np.float32)


def condition_planes(
    labels: np.ndarray,
    pixel_size_nm: float,
    *,
    rng: np.random.Generator,
    simulated: np.ndarray | None = None,
) -> np.ndarray:
    """The conditioning stack of one mask: ``(C, H, W)`` float32.

    Parameters
    ----------
    labels : numpy.ndarray
        2-D instance labels (0 = background); a binary mask is one particle per blob.
    pixel_size_nm : float
        Pixel size of the image to draw (nm/px).
    rng : numpy.random.Generator
        Source of the ``noise`` plane.
    simulated : numpy.ndarray, optional
        The simulator's image of the same mask (any grey scale); adds the ``simulated`` plane.

    Returns
    -------
    numpy.ndarray
        Channels :data:`BASE_CHANNELS` (+ ``simulated``).
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be a 2-D label map, got shape {labels.shape}.")
    planes = [
        (labels > 0).astype(np.float32),
        contact_boundaries(labels).astype(np.float32),
        np.full(labels.shape, scale_value(pixel_size_nm), dtype=np.float32),
        rng.standard_normal(labels.shape).astype(np.float32),
    ]
    if simulated is not None:
        simulated = np.asarray(simulated)
        if simulated.shape != labels.shape:
            raise ValueError(
                f"simulated has shape {simulated.shape} but labels have {labels.shape}; pass the "
                "simulator's image of this very mask."
            )
        planes.append(to_signed_unit(simulated))
    return np.stack(planes)
