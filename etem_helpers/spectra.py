"""Power spectra and radial profiles of micrographs (Thon rings, lattice peaks, noise floors).

Used by the simulator tests and by the notebooks (01: looking at micrographs, 05: checking the
realism of simulated images).
"""

from __future__ import annotations

import numpy as np
import scipy.fft
from scipy.ndimage import gaussian_filter1d
from scipy.signal import find_peaks

from etem_helpers.io import check_image, validate_pixel_size

__all__ = ["power_spectrum", "radial_profile", "ring_means", "find_minima"]


def _window_1d(n: int, window: str | None) -> np.ndarray:
    if window is None or window == "none":
        return np.ones(n)
    if window == "hann":
        return np.hanning(n) if n > 1 else np.ones(n)
    raise ValueError(f"window must be 'hann' or None, got {window!r}.")


def power_spectrum(image, *, window: str | None = "hann") -> np.ndarray:
    """Centred power spectrum ``|FFT(w * (image - mean))|^2 / sum(w^2)``.

    The normalisation by the window energy makes the level of white noise equal to its
    variance per pixel, whatever the image size or window.

    Parameters
    ----------
    image : array_like
        Real 2-D image.
    window : {"hann", None}, optional
        Separable window applied after subtracting the mean, against the edge cross.

    Returns
    -------
    numpy.ndarray
        float64 power, same shape, zero frequency at ``(ny // 2, nx // 2)`` (fftshift order).
    """
    img = check_image(image, dtype=np.float64)
    ny, nx = img.shape
    w = _window_1d(ny, window)[:, None] * _window_1d(nx, window)[None, :]
    data = (img - img.mean()) * w
    spectrum = scipy.fft.fft2(data, workers=-1)
    power = (spectrum.real**2 + spectrum.imag**2) / np.sum(w * w)
    return np.fft.fftshift(power)


def radial_profile(power, pixel_size_nm: float, *, n_bins: int | None = None):
    """Azimuthal average of a centred power spectrum.

    Parameters
    ----------
    power : array_like
        Centred 2-D spectrum (as from :func:`power_spectrum`).
    pixel_size_nm : float
        Pixel size of the image in nm.
    n_bins : int, optional
        Number of rings between k = 0 and the Nyquist frequency of the shorter axis,
        ``1 / (2 p)``; default ``min(ny, nx) // 2`` (one Fourier pixel per ring). The corners
        beyond Nyquist are ignored.

    Returns
    -------
    k_per_nm : numpy.ndarray
        Mean spatial frequency of the pixels in each ring, 1/nm (NaN for empty rings).
    mean_power : numpy.ndarray
        Mean power in each ring (NaN for empty rings).
    """
    power = np.asarray(power, dtype=np.float64)
    if power.ndim != 2:
        raise ValueError(f"power must be a 2-D array, got shape {power.shape}.")
    p = validate_pixel_size(pixel_size_nm, argument="pixel_size_nm")
    ny, nx = power.shape
    if n_bins is None:
        n_bins = min(ny, nx) // 2
    n_bins = int(n_bins)
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}.")
    ky = np.fft.fftshift(np.fft.fftfreq(ny, d=p))[:, None]
    kx = np.fft.fftshift(np.fft.fftfreq(nx, d=p))[None, :]
    k = np.sqrt(ky * ky + kx * kx)
    return ring_means(power, k, k_max=0.5 / p, n_bins=n_bins)


def ring_means(values, k, *, k_max: float, n_bins: int, skip_zero: bool = False):
    """Means of ``values`` and of ``k`` in ``n_bins`` equal rings of ``k`` from 0 to ``k_max``.

    The one radial binning of the package (:func:`radial_profile`,
    :func:`etem_helpers.realism.radial_power_spectrum`).

    Parameters
    ----------
    values, k : numpy.ndarray
        Same shape: e.g. a power spectrum and the spatial frequency of each of its pixels.
    k_max : float
        Outer edge of the last ring (same units as ``k``); larger ``k`` are ignored.
    n_bins : int
        Number of rings; ring ``i`` holds ``i <= k / k_max * n_bins < i + 1``.
    skip_zero : bool
        Leave out ``k == 0`` (the mean of the image).

    Returns
    -------
    k_mean, mean : numpy.ndarray
        Mean ``k`` and mean value in each ring (NaN for empty rings).
    """
    k = np.asarray(k, dtype=np.float64).ravel()
    index = np.floor(k / k_max * n_bins).astype(np.int64)
    inside = index < n_bins
    if skip_zero:
        inside &= k > 0
    index = index[inside]
    count = np.bincount(index, minlength=n_bins).astype(np.float64)
    k_sum = np.bincount(index, weights=k[inside], minlength=n_bins)
    value_sum = np.bincount(index, weights=np.asarray(values).ravel()[inside], minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return k_sum / count, value_sum / count


def find_minima(
    k,
    profile,
    *,
    k_min: float | None = None,
    k_max: float | None = None,
    smooth_bins: float = 2.0,
    min_prominence: float = 0.0,
) -> np.ndarray:
    """Local minima of a radial power profile (e.g. Thon-ring zeros).

    The profile is smoothed in log space with a Gaussian of ``smooth_bins`` bins, minima are
    located with :func:`scipy.signal.find_peaks` and refined to sub-bin precision with a
    parabola through the three neighbouring points.

    Parameters
    ----------
    k : array_like
        Spatial frequencies in 1/nm (increasing), e.g. from :func:`radial_profile`.
    profile : array_like
        Positive profile values (NaN and non-positive entries are dropped).
    k_min, k_max : float, optional
        Only report minima in this range (1/nm).
    smooth_bins : float, optional
        Gaussian smoothing width in bins (0 disables it).
    min_prominence : float, optional
        Minimum depth of a minimum in natural-log units (0 keeps all).

    Returns
    -------
    numpy.ndarray
        Positions of the minima in 1/nm, sorted.
    """
    k = np.asarray(k, dtype=np.float64)
    y = np.asarray(profile, dtype=np.float64)
    if k.shape != y.shape or k.ndim != 1:
        raise ValueError(f"k and profile must be 1-D arrays of the same length, got "
                         f"{k.shape} and {y.shape}.")
    good = np.isfinite(k) & np.isfinite(y) & (y > 0)
    k, y = k[good], np.log(y[good])
    if k.size < 3:
        return np.zeros(0)
    if smooth_bins > 0:
        y = gaussian_filter1d(y, float(smooth_bins), mode="nearest")
    idx, _ = find_peaks(-y, prominence=min_prominence if min_prominence > 0 else None)
    out = []
    for i in idx:
        x0, x1, x2 = k[i - 1], k[i], k[i + 1]
        y0, y1, y2 = y[i - 1], y[i], y[i + 1]
        denom = (x0 - x1) * (x0 - x2) * (x1 - x2)
        a = (x2 * (y1 - y0) + x1 * (y0 - y2) + x0 * (y2 - y1)) / denom
        b = (x2 * x2 * (y0 - y1) + x1 * x1 * (y2 - y0) + x0 * x0 * (y1 - y2)) / denom
        xm = -b / (2 * a) if a > 0 else x1
        out.append(float(np.clip(xm, x0, x2)))
    out = np.asarray(out)
    if k_min is not None:
        out = out[out >= k_min]
    if k_max is not None:
        out = out[out <= k_max]
    return np.sort(out)
