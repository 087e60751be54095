"""Image degradations after the objective lens: motion, gas scattering, shot noise, detector MTF.

Order used by the simulator (physics.md sections 7-8): motion blur -> gas scattering ->
shot noise -> detector MTF. Intensities are normalised so that vacuum is 1; after
:func:`shot_noise` the image is in electron counts per pixel.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft

from .optics import _check_positive, _check_shape, fourier_grid

__all__ = [
    "apply_motion_blur",
    "apply_gas_scattering",
    "shot_noise",
    "detector_mtf",
    "apply_detector_mtf",
]


def _as_real_image(image, name: str) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim != 2 or np.iscomplexobj(arr):
        raise ValueError(f"{name} must be a real 2-D array, got shape {arr.shape}, "
                         f"dtype {arr.dtype}.")
    return arr.astype(np.float32, copy=False)


def apply_motion_blur(
    intensity,
    pixel_size_nm: float,
    *,
    drift_nm: float = 0.0,
    drift_angle_deg: float = 0.0,
    jitter_nm: float = 0.0,
) -> np.ndarray:
    """Blur by specimen drift during the exposure and by random jitter (Fourier space).

    Uniform drift over a length L multiplies the spectrum by ``sinc(L k_parallel)`` (a box of
    length L along the drift direction, centred so the image does not shift); jitter multiplies
    it by the Gaussian ``exp(-2 pi^2 s^2 k^2)``. The image is treated as periodic.

    Parameters
    ----------
    intensity : array_like
        Real 2-D image.
    pixel_size_nm : float
        Pixel size in nm.
    drift_nm : float, optional
        Drift length during the exposure in nm (0-0.3 nm per frame in physics.md).
    drift_angle_deg : float, optional
        Drift direction in degrees, measured from +x (columns) towards +y (increasing row).
    jitter_nm : float, optional
        Standard deviation of an isotropic Gaussian jitter along each axis in nm (0-0.05).

    Returns
    -------
    numpy.ndarray
        Blurred image, float32, same shape (mean preserved).
    """
    img = _as_real_image(intensity, "intensity")
    if drift_nm < 0 or jitter_nm < 0:
        raise ValueError(
            f"drift_nm and jitter_nm must be >= 0, got drift_nm={drift_nm!r}, "
            f"jitter_nm={jitter_nm!r} (give the direction with drift_angle_deg)."
        )
    if drift_nm == 0 and jitter_nm == 0:
        return img.copy()
    ky, kx = fourier_grid(img.shape, pixel_size_nm, rfft=True)
    transfer = np.ones((ky.shape[0], kx.shape[1]))
    if drift_nm:
        theta = math.radians(drift_angle_deg)
        k_par = kx * math.cos(theta) + ky * math.sin(theta)
        transfer = transfer * np.sinc(float(drift_nm) * k_par)
    if jitter_nm:
        transfer = transfer * np.exp(-2.0 * np.pi**2 * float(jitter_nm) ** 2 * (kx**2 + ky**2))
    spectrum = scipy.fft.rfft2(img, workers=-1)
    spectrum *= transfer.astype(np.float32)
    return scipy.fft.irfft2(spectrum, s=img.shape, workers=-1).astype(np.float32, copy=False)


def apply_gas_scattering(intensity, *, gas_fraction: float) -> np.ndarray:
    """Loss of contrast by gas scattering: ``I' = (1 - f) I + f <I>``.

    A fraction f of the electrons is scattered by the gas into a uniform background (ETEM,
    physics.md section 8), so the mean is kept and the contrast (std / mean) falls by (1 - f).

    Parameters
    ----------
    intensity : array_like
        Real 2-D image.
    gas_fraction : float
        Fraction f of gas-scattered electrons, 0-1 (typically 0-0.3).

    Returns
    -------
    numpy.ndarray
        float32 image, same shape.
    """
    img = _as_real_image(intensity, "intensity")
    f = float(gas_fraction)
    if not 0.0 <= f <= 1.0:
        raise ValueError(f"gas_fraction must be in [0, 1] (typically 0-0.3), got {gas_fraction!r}.")
    mean = float(img.mean(dtype=np.float64))
    return ((1.0 - f) * img + f * mean).astype(np.float32, copy=False)


def shot_noise(
    intensity, *, dose_e_per_a2: float, pixel_size_nm: float, rng: np.random.Generator
) -> np.ndarray:
    """Poisson electron counts ``Poisson(I * D * p^2)`` with p in Å.

    Parameters
    ----------
    intensity : array_like
        Real 2-D intensity normalised so that vacuum is 1 (negative values from Fourier
        filtering are clipped to 0).
    dose_e_per_a2 : float
        Electron dose D in electrons per Å^2 (10-5000 in physics.md).
    pixel_size_nm : float
        Pixel size in nm (converted to Å for the pixel area).
    rng : numpy.random.Generator
        Random generator (``numpy.random.default_rng(seed)``).

    Returns
    -------
    numpy.ndarray
        Counts per pixel, float32 (vacuum mean = ``D * p^2``).
    """
    img = _as_real_image(intensity, "intensity")
    dose = _check_positive(dose_e_per_a2, "dose_e_per_a2")
    p_a = _check_positive(pixel_size_nm, "pixel_size_nm") * 10.0
    if not isinstance(rng, np.random.Generator):
        raise TypeError("rng must be a numpy.random.Generator, e.g. numpy.random.default_rng(0).")
    expected = np.clip(img.astype(np.float64), 0.0, None) * (dose * p_a * p_a)
    return rng.poisson(expected).astype(np.float32)


def detector_mtf(
    shape,
    *,
    c1: float = 0.95,
    c2: float = 0.005,
    c3: float = 0.35,
    c4: float = 2.5,
) -> np.ndarray:
    """Parametrised detector transfer ``MTF(q) = (c1 - c2) / (1 + (q / (2 c3))^c4) + c2``.

    q is the spatial frequency in units of the Nyquist frequency of this grid (1 at the edge
    along an axis, sqrt(2) in the corners). The curve is the detector's *power* transfer: it is
    the shape an experimental noise-power spectrum takes (NPS ~ |amplitude MTF|^2), which is why
    :func:`apply_detector_mtf` filters with its square root.

    Parameters
    ----------
    shape : tuple of int
        Image shape ``(ny, nx)`` in pixels.
    c1 : float, optional
        Value at q = 0 (0.9-1).
    c2 : float, optional
        Floor at high q (0-0.01).
    c3 : float, optional
        Half-width parameter: the curve is halfway between c1 and c2 at q = 2 c3 (0.3-0.4).
    c4 : float, optional
        Steepness exponent (2.4-2.6).

    Returns
    -------
    numpy.ndarray
        float32 array of ``shape`` in FFT order (``numpy.fft.fftshift`` to display).
    """
    ny, nx = _check_shape(shape)
    _check_positive(c3, "c3")
    if not (0 <= c2 <= c1):
        raise ValueError(f"need 0 <= c2 <= c1, got c1={c1!r}, c2={c2!r}.")
    fy = np.fft.fftfreq(ny)[:, None]
    fx = np.fft.fftfreq(nx)[None, :]
    q = 2.0 * np.sqrt(fy * fy + fx * fx)
    mtf = (c1 - c2) / (1.0 + (q / (2.0 * c3)) ** c4) + c2
    return mtf.astype(np.float32)


def apply_detector_mtf(counts, mtf, *, preserve_mean: bool = True) -> np.ndarray:
    """Filter a (noisy) image with the detector transfer: spectrum times ``sqrt(MTF)``.

    Applied after :func:`shot_noise` (physics.md section 7): the detector spreads each recorded
    electron, so the noise is filtered too. Because :func:`detector_mtf` describes the power
    transfer, the amplitude filter is its square root and a flat (white) Poisson noise power
    spectrum becomes exactly MTF-shaped.

    Parameters
    ----------
    counts : array_like
        Real 2-D image (electron counts).
    mtf : array_like
        Output of :func:`detector_mtf` for this shape (FFT order), either full ``(ny, nx)`` or
        the rfft half ``(ny, nx // 2 + 1)``.
    preserve_mean : bool, optional
        Keep the zero-frequency term, so the mean count stays ``D * p^2`` (gain-calibrated
        detector). If False, the mean is scaled by ``sqrt(MTF(0)) = sqrt(c1)``.

    Returns
    -------
    numpy.ndarray
        Filtered image, float32, same shape.
    """
    img = _as_real_image(counts, "counts")
    mtf = np.asarray(mtf, dtype=np.float32)
    ny, nx = img.shape
    half = nx // 2 + 1
    if mtf.shape == (ny, nx):
        mtf = mtf[:, :half]
    elif mtf.shape != (ny, half):
        raise ValueError(
            f"mtf has shape {mtf.shape} but counts has shape {img.shape}; compute it with "
            "detector_mtf(counts.shape, ...)."
        )
    if np.any(mtf < 0):
        raise ValueError("mtf must be >= 0 everywhere.")
    gain = np.sqrt(mtf)
    if preserve_mean:
        gain = gain.copy()
        gain[0, 0] = 1.0
    spectrum = scipy.fft.rfft2(img, workers=-1)
    spectrum *= gain
    return scipy.fft.irfft2(spectrum, s=img.shape, workers=-1).astype(np.float32, copy=False)
