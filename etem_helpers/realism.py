"""How alike are two sets of micrographs? Small measures for sim-to-real comparisons.

Every measure is invariant to an affine change of the grey levels (gain and offset), because
real micrographs come as 8-bit images with an unknown scaling while simulated ones are in
detector counts. Lengths are in pixels (``_px``): real images often have no calibration.

* :func:`intensity_histogram_distance`: 1-D Wasserstein distance between the pooled
  robust-normalised intensities (0.5 / 99.5 percentiles mapped to 0 / 1).
* :func:`radial_spectrum_distance`: mean absolute difference of the log radially averaged
  power spectra (images normalised to zero mean, unit variance) over spatial frequencies in
  units of Nyquist.
* :func:`background_texture`: the support film between particles: fine and large-scale
  standard deviation and correlation length.
* :func:`edge_width_px`: 10-90 % rise distance of the mean intensity profile across the
  particle boundaries.
* :func:`edge_midpoint_offset_px`: where the mask outline sits on that profile (distance of
  its 50 % level from the outline).
* :func:`particle_contrast`: (support mean - particle mean) / support standard deviation.
* :func:`particle_interior_texture`: standard deviation inside the particles / contrast.
* :func:`compare_image_sets`: all of the above for two sets, as one flat dict.

Nothing runs at import.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from etem_helpers.preprocess.normalize import normalize_image
from etem_helpers.preprocess.validate import check_image
from etem_helpers.spectra import ring_means

__all__ = [
    "robust_normalise",
    "intensity_histogram_distance",
    "radial_power_spectrum",
    "radial_spectrum_distance",
    "background_texture",
    "edge_width_px",
    "edge_midpoint_offset_px",
    "particle_contrast",
    "particle_interior_texture",
    "compare_image_sets",
]

_N_QUANTILES = 512


def _as_image(image, name: str = "image") -> np.ndarray:
    """float64 copy of a checked image (:func:`etem_helpers.preprocess.check_image`)."""
    return check_image(image, name=name, min_side_px=8, dtype=np.float64)


def _as_mask(mask, shape, name: str = "mask") -> np.ndarray:
    array = np.asarray(mask)
    if array.shape != tuple(shape):
        raise ValueError(
            f"{name} has shape {array.shape} but the image has shape {tuple(shape)}; pass the "
            "particle mask (bool, or a label map with 0 = background) of that image."
        )
    return array > 0


def _as_list(images, name: str) -> list[np.ndarray]:
    if isinstance(images, np.ndarray) and images.ndim == 2:
        images = [images]
    out = [_as_image(im, f"{name}[{i}]") for i, im in enumerate(images)]
    if not out:
        raise ValueError(f"{name} is empty; pass at least one image.")
    return out


def robust_normalise(image, *, low_percentile: float = 0.5,
                     high_percentile: float = 99.5) -> np.ndarray:
    """Map the low / high percentiles of an image to 0 / 1 and clip to [0, 1].

    Parameters
    ----------
    image : array_like
        2-D grey-level image (any units).
    low_percentile, high_percentile : float
        Percentiles (0-100) mapped to 0 and 1.

    Returns
    -------
    numpy.ndarray
        float64 image in [0, 1] (all zeros for a constant image).
    """
    return normalize_image(_as_image(image), low_percentile=low_percentile,
                           high_percentile=high_percentile, dtype=np.float64)


def intensity_histogram_distance(images_a, images_b) -> float:
    """1-D Wasserstein (earth mover's) distance between the robust-normalised intensities.

    Each image is normalised with :func:`robust_normalise`, the pixels of each set are pooled
    and the distance is the mean absolute difference of the two quantile functions (which is
    the 1-D Wasserstein-1 distance), evaluated at 512 quantiles.

    Parameters
    ----------
    images_a, images_b : sequence of array_like, or one 2-D array
        The two sets of grey-level images (sizes may differ).

    Returns
    -------
    float
        Distance in normalised intensity units (0 for identical sets, at most 1).
    """
    a = np.concatenate([robust_normalise(im).ravel() for im in _as_list(images_a, "images_a")])
    b = np.concatenate([robust_normalise(im).ravel() for im in _as_list(images_b, "images_b")])
    q = (np.arange(_N_QUANTILES) + 0.5) / _N_QUANTILES
    return float(np.mean(np.abs(np.quantile(a, q) - np.quantile(b, q))))


def radial_power_spectrum(image, *, n_bins: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectrum of an image normalised to zero mean, unit variance.

    A Hann window suppresses the edge discontinuity of the periodic FFT.

    Parameters
    ----------
    image : array_like
        2-D image.
    n_bins : int
        Number of frequency bins between 0 and Nyquist.

    Returns
    -------
    k_nyquist : numpy.ndarray
        Bin centres, spatial frequency in units of Nyquist (0-1).
    power : numpy.ndarray
        Mean power in each bin (arbitrary units, same for every image).
    """
    array = _as_image(image)
    std = array.std()
    array = (array - array.mean()) / (std if std > 0 else 1.0)
    ny, nx = array.shape
    window = np.outer(np.hanning(ny), np.hanning(nx))
    power = np.abs(np.fft.rfft2(array * window)) ** 2 / np.sum(window**2)
    ky = np.fft.fftfreq(ny)[:, None] * 2.0
    kx = np.fft.rfftfreq(nx)[None, :] * 2.0
    _, mean = ring_means(power, np.hypot(ky, kx), k_max=1.0, n_bins=n_bins, skip_zero=True)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return 0.5 * (edges[1:] + edges[:-1]), mean


def radial_spectrum_distance(images_a, images_b, *, n_bins: int = 64,
                             average: str = "power") -> float:
    """Mean |ln P_a(k) - ln P_b(k)| of the set-averaged radial power spectra.

    Parameters
    ----------
    images_a, images_b : sequence of array_like, or one 2-D array
        The two sets of images.
    n_bins : int
        Number of frequency bins between 0 and Nyquist (bins empty for either set are skipped).
    average : {"power", "log"}
        How a set's spectra are averaged: the mean power (images with much power dominate), or
        the mean of ln P (the geometric mean: every image weighs alike).

    Returns
    -------
    float
        Mean absolute difference of the natural logs over the frequency bins (0 for identical
        sets; 0.69 means a typical factor of two in power).
    """
    if average not in ("power", "log"):
        raise ValueError(f"average={average!r} is not supported; use 'power' or 'log'.")
    spectra = []
    for images, name in ((images_a, "images_a"), (images_b, "images_b")):
        powers = [radial_power_spectrum(im, n_bins=n_bins)[1] for im in _as_list(images, name)]
        stacked = np.vstack(powers)
        if average == "log":
            stacked = _log_or_nan(stacked)
        finite = np.isfinite(stacked)
        count = finite.sum(axis=0)
        total = np.where(finite, stacked, 0.0).sum(axis=0)
        spectra.append(np.where(count > 0, total / np.maximum(count, 1), np.nan))
    # log of the set means ("power"), or the set means of the logs ("log"); NaN: no power
    la, lb = spectra if average == "log" else (_log_or_nan(s) for s in spectra)
    ok = np.isfinite(la) & np.isfinite(lb)
    if not ok.any():
        raise ValueError("no frequency bin has power in both sets; are the images constant?")
    return float(np.mean(np.abs(la[ok] - lb[ok])))


def _log_or_nan(values: np.ndarray) -> np.ndarray:
    """Natural log where ``values > 0``, NaN elsewhere (also for NaN)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(values > 0, np.log(values), np.nan)


def _support(mask: np.ndarray, margin_px: int) -> np.ndarray:
    if margin_px > 0 and mask.any():
        grown = ndimage.binary_dilation(mask, iterations=margin_px)
    else:
        grown = mask
    return ~grown


def _robust_range(image: np.ndarray) -> float:
    lo, hi = np.percentile(image, [0.5, 99.5])
    return float(hi - lo) if hi > lo else 1.0


def background_texture(image, mask, *, margin_px: int = 4, large_scale_px: float = 8.0) -> dict:
    """Texture of the support film: the region more than ``margin_px`` from any particle.

    Parameters
    ----------
    image : array_like
        2-D grey-level image.
    mask : array_like
        Particle mask (bool, or labels with 0 = background), same shape.
    margin_px : int
        Pixels around the particles excluded (Fresnel halos, mask inaccuracy), in px.
    large_scale_px : float
        Standard deviation (px) of the Gaussian that separates the large-scale undulation.

    Returns
    -------
    dict
        ``std`` (support standard deviation / image robust range, the 0.5-99.5 percentile
        span), ``large_scale_std`` (the same after a Gaussian blur of ``large_scale_px``:
        mottling), ``correlation_length_px`` (lag in px at which the support's radially
        averaged autocorrelation falls to 1/e; below 1 px for white noise).
    """
    array = _as_image(image)
    support = _support(_as_mask(mask, array.shape), int(margin_px))
    if support.sum() < 64:
        raise ValueError("fewer than 64 support pixels; lower margin_px or check the mask.")
    scale = _robust_range(array)
    values = array[support]
    mean = values.mean()
    std = float(values.std() / scale)
    # large scale: normalised (masked) Gaussian blur
    w = ndimage.gaussian_filter(support.astype(np.float64), large_scale_px)
    blurred = ndimage.gaussian_filter(np.where(support, array - mean, 0.0), large_scale_px)
    inside = support & (w > 0.5)
    smooth = blurred[inside] / w[inside]
    large = float(smooth.std() / scale) if smooth.size else float("nan")
    return {"std": std, "large_scale_std": large,
            "correlation_length_px": _correlation_length_px(array - mean, support)}


def _correlation_length_px(centred: np.ndarray, support: np.ndarray, max_lag: int = 32) -> float:
    """1/e lag (px) of the masked, radially averaged autocorrelation."""
    ny, nx = centred.shape
    shape = (2 * ny, 2 * nx)  # zero padding: no wrap-around
    x = np.where(support, centred, 0.0)
    m = support.astype(np.float64)
    fx = np.fft.rfft2(x, s=shape)
    fm = np.fft.rfft2(m, s=shape)
    num = np.fft.irfft2(np.abs(fx) ** 2, s=shape)
    den = np.fft.irfft2(np.abs(fm) ** 2, s=shape)
    lags = np.arange(-max_lag, max_lag + 1)
    num = num[np.ix_(lags % shape[0], lags % shape[1])]
    den = den[np.ix_(lags % shape[0], lags % shape[1])]
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.where(den > 10, num / np.maximum(den, 1e-12), np.nan)
    corr /= corr[max_lag, max_lag]
    r = np.hypot(*np.meshgrid(lags, lags, indexing="ij"))
    radial = np.array([np.nanmean(corr[(r >= d - 0.5) & (r < d + 0.5)])
                       for d in range(max_lag + 1)])
    target = math.exp(-1.0)
    below = np.flatnonzero(radial < target)
    if below.size == 0:
        return float(max_lag)
    d = int(below[0])
    c0, c1 = radial[d - 1], radial[d]
    return float(d - 1 + (c0 - target) / (c0 - c1))


def _signed_distance(mask: np.ndarray) -> np.ndarray:
    """Distance (px) to the particle boundary: > 0 outside, < 0 inside."""
    outside = ndimage.distance_transform_edt(~mask)
    inside = ndimage.distance_transform_edt(mask)
    return np.where(mask, 0.5 - inside, outside - 0.5)


def _edge_profile(image, mask, reach_px: float, bin_px: float):
    """(centres, p): the mean intensity against the signed distance to the mask boundary.

    ``p`` is normalised so that the inner level (mean over ``[-reach, -reach/2]``) is 0 and
    the outer level (mean over ``[reach/2, reach]``) is 1; distance bins without pixels are
    dropped. Returns None when the mask has no boundary or the two levels coincide.
    """
    array = _as_image(image)
    m = _as_mask(mask, array.shape)
    if not m.any() or m.all():
        return None
    d = _signed_distance(m)
    edges = np.arange(-reach_px, reach_px + bin_px / 2, bin_px)
    index = np.digitize(d.ravel(), edges) - 1
    n_bins = edges.size - 1
    valid = (index >= 0) & (index < n_bins)
    sums = np.bincount(index[valid], weights=array.ravel()[valid], minlength=n_bins)
    counts = np.bincount(index[valid], minlength=n_bins)
    centres = 0.5 * (edges[1:] + edges[:-1])
    ok = counts > 0
    profile = sums[ok] / counts[ok]
    centres = centres[ok]
    inner = profile[(centres >= -reach_px) & (centres <= -reach_px / 2)]
    outer = profile[(centres >= reach_px / 2) & (centres <= reach_px)]
    if inner.size == 0 or outer.size == 0:
        return None
    lo, hi = inner.mean(), outer.mean()
    if hi == lo:
        return None
    return centres, (profile - lo) / (hi - lo)


def edge_width_px(image, mask, *, reach_px: float = 8.0, bin_px: float = 0.5) -> float:
    """10-90 % rise distance (px) of the mean intensity profile across particle boundaries.

    The profile is the mean intensity as a function of the signed distance to the mask
    boundary (negative inside), pooled over all particles. Its inner level is the mean over
    ``[-reach, -reach/2]``, its outer level the mean over ``[reach/2, reach]``; the width is
    the distance between the 10 % and the 90 % crossings nearest the boundary.

    Parameters
    ----------
    image : array_like
        2-D grey-level image (particles darker or brighter than the support).
    mask : array_like
        Particle mask (bool or labels), same shape.
    reach_px : float
        Half-length of the profile in px.
    bin_px : float
        Profile sampling in px.

    Returns
    -------
    float
        Edge width in px (NaN if the mask has no boundary or the levels coincide).
    """
    found = _edge_profile(image, mask, reach_px, bin_px)
    if found is None:
        return float("nan")
    centres, p = found
    zero = int(np.argmin(np.abs(centres)))
    return _crossing(centres, p, 0.9, zero, +1) - _crossing(centres, p, 0.1, zero, -1)


def edge_midpoint_offset_px(image, mask, *, reach_px: float = 8.0,
                            bin_px: float = 0.5) -> float:
    """Where the mask outline sits on the edge: distance (px) of the 50 % level from it.

    Same profile as :func:`edge_width_px`; the result is the position of the 50 % crossing
    nearest the boundary, positive when the middle of the intensity rise lies outside the
    mask (the outline is drawn inside the edge), negative when it lies inside (the mask
    reaches out to the foot of the edge). It tells whether two sets of masks follow the
    same convention for where a particle ends.

    Parameters
    ----------
    image : array_like
        2-D grey-level image.
    mask : array_like
        Particle mask (bool or labels), same shape.
    reach_px, bin_px : float
        As in :func:`edge_width_px`.

    Returns
    -------
    float
        Offset in px (NaN if the mask has no boundary, the levels coincide or the profile
        never crosses 50 %).
    """
    found = _edge_profile(image, mask, reach_px, bin_px)
    if found is None:
        return float("nan")
    x, p = found
    below = p < 0.5
    i = np.flatnonzero(below[:-1] != below[1:])
    if i.size == 0:
        return float("nan")
    positions = x[i] + (0.5 - p[i]) * (x[i + 1] - x[i]) / (p[i + 1] - p[i])
    return float(positions[np.argmin(np.abs(positions))])


def _crossing(x: np.ndarray, p: np.ndarray, level: float, start: int, step: int) -> float:
    """Interpolated position where p crosses `level`, searching from `start` in `step`."""
    i = start
    if step > 0:
        # outward: first index at or after start with p >= level
        while i < len(p) and p[i] < level:
            i += 1
        if i >= len(p):
            return float(x[-1])
        if i == 0 or p[i - 1] >= level:
            return float(x[i])
        j = i - 1
    else:
        while i >= 0 and p[i] > level:
            i -= 1
        if i < 0:
            return float(x[0])
        if i == len(p) - 1 or p[i + 1] <= level:
            return float(x[i])
        j = i + 1
    return float(x[j] + (level - p[j]) * (x[i] - x[j]) / (p[i] - p[j]))


def particle_contrast(image, mask, *, margin_px: int = 4) -> float:
    """Contrast-to-noise of the particles: (support mean - particle mean) / support std.

    Parameters
    ----------
    image : array_like
        2-D grey-level image.
    mask : array_like
        Particle mask (bool or labels), same shape.
    margin_px : int
        Pixels around the particles left out of the support, in px.

    Returns
    -------
    float
        Positive for dark particles (bright-field TEM); NaN without particles.
    """
    array = _as_image(image)
    m = _as_mask(mask, array.shape)
    support = _support(m, int(margin_px))
    if not m.any() or support.sum() < 2:
        return float("nan")
    bg = array[support]
    std = bg.std()
    return float((bg.mean() - array[m].mean()) / (std if std > 0 else 1.0))


def particle_interior_texture(image, mask, *, erode_px: int = 2) -> float:
    """Standard deviation inside the particles divided by the particle contrast.

    Each particle's own mean is removed first (pooled within-particle standard deviation), so
    differences between particles do not count; the particle border (``erode_px``) is left
    out. The contrast is support mean minus particle mean (same grey units).

    Parameters
    ----------
    image : array_like
        2-D grey-level image.
    mask : array_like
        Particle mask (bool or labels), same shape. Bool masks are split into connected
        components.
    erode_px : int
        Border of each particle left out, in px.

    Returns
    -------
    float
        Texture relative to contrast (0 for perfectly uniform particles); NaN without
        particle interiors.
    """
    array = _as_image(image)
    raw = np.asarray(mask)
    m = _as_mask(raw, array.shape)
    if not m.any():
        return float("nan")
    labels = raw.astype(np.int64) if raw.dtype.kind in "iu" and raw.max() > 1 else \
        ndimage.label(m)[0]
    interior = ndimage.binary_erosion(m, iterations=int(erode_px)) if erode_px > 0 else m
    if interior.sum() < 4:
        return float("nan")
    ids = labels[interior]
    values = array[interior]
    n = np.bincount(ids)
    means = np.bincount(ids, weights=values) / np.maximum(n, 1)
    within = float(np.sqrt(np.mean((values - means[ids]) ** 2)))
    support = _support(m, 4)
    contrast = array[support].mean() - array[m].mean() if support.any() else np.nan
    if not np.isfinite(contrast) or contrast == 0:
        return float("nan")
    return within / abs(float(contrast))


def _image_measures(image, mask) -> dict:
    """The per-image measures of :func:`compare_image_sets` for one image."""
    texture = background_texture(image, mask)
    return {
        "background_std": texture["std"],
        "background_large_scale_std": texture["large_scale_std"],
        "background_correlation_px": texture["correlation_length_px"],
        "edge_width_px": edge_width_px(image, mask),
        "edge_midpoint_offset_px": edge_midpoint_offset_px(image, mask),
        "particle_contrast": particle_contrast(image, mask),
        "particle_interior_texture": particle_interior_texture(image, mask),
    }


def _set_means(images, masks, name: str) -> dict:
    images = _as_list(images, name)
    masks = list(masks)
    if len(masks) != len(images):
        raise ValueError(
            f"{name}: {len(images)} images but {len(masks)} masks; pass one mask per image."
        )
    rows = [_image_measures(im, mk) for im, mk in zip(images, masks, strict=True)]
    out = {}
    for key in rows[0]:
        values = [r[key] for r in rows if np.isfinite(r[key])]
        out[key] = float(np.mean(values)) if values else float("nan")
    return out


def compare_image_sets(
    real: Sequence[np.ndarray],
    sim: Sequence[np.ndarray],
    real_masks: Sequence[np.ndarray],
    sim_masks: Sequence[np.ndarray],
) -> dict:
    """All realism measures for two sets of images with particle masks.

    Parameters
    ----------
    real, sim : sequence of numpy.ndarray
        The two sets of 2-D images (any grey-level scaling; sizes may differ). The names are
        only labels: any two sets can be compared.
    real_masks, sim_masks : sequence of numpy.ndarray
        One particle mask (bool) or label map (0 = background) per image.

    Returns
    -------
    dict
        ``intensity_histogram_distance``, ``radial_spectrum_distance`` (and
        ``radial_spectrum_distance_log_mean``, the same with log spectra averaged) and, for each of
        ``background_std``, ``background_large_scale_std``, ``background_correlation_px``,
        ``edge_width_px``, ``edge_midpoint_offset_px``, ``particle_contrast``, ``particle_interior_texture``, the set
        means ``<name>_real`` and ``<name>_sim``.
    """
    out = {
        "intensity_histogram_distance": intensity_histogram_distance(real, sim),
        "radial_spectrum_distance": radial_spectrum_distance(real, sim),
        "radial_spectrum_distance_log_mean": radial_spectrum_distance(real, sim, average="log"),
    }
    for suffix, images, masks in (("real", real, real_masks), ("sim", sim, sim_masks)):
        for key, value in _set_means(images, masks, suffix).items():
            out[f"{key}_{suffix}"] = value
    return dict(sorted(out.items(), key=lambda kv: kv[0].rsplit("_", 1)[0]))
