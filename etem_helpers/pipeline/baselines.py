"""Classical particle segmentation baselines: what an ImageJ/Fiji user would do.

Both baselines follow the usual manual recipe: Gaussian smoothing, a threshold
(global Otsu or local mean), fill holes, remove objects smaller than a minimum
size, split touching particles with a watershed on the Euclidean distance map
(as ImageJ's *Process > Binary > Watershed*), then measure. Every length is given
in nm and converted with the pixel size, so the same settings work for any
magnification.

In bright-field TEM, metal particles are usually *darker* than the amorphous
support (mass-thickness and diffraction contrast): ``dark_particles=True`` (the
default) inverts the image before thresholding. Use ``dark_particles=False`` for
HAADF-STEM or dark-field images.

The returned ``probability`` is a heuristic score, not a calibrated probability:
``sigmoid((s - t) / noise)`` where ``s`` is the smoothed (and, for dark particles,
inverted) image, ``t`` the threshold (a scalar for Otsu, a map for the local
threshold) and ``noise`` a robust estimate of the noise standard deviation of
``s`` (median absolute difference of neighbouring pixels). Pixels at the
threshold score 0.5, pixels two noise levels above it about 0.88. A particle's
``confidence`` is the mean of this score over its pixels.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_local, threshold_otsu
from skimage.morphology import h_maxima
from skimage.segmentation import watershed

from etem_helpers.io import validate_pixel_size
from etem_helpers.measure import measure_particles, relabel_sequential
from etem_helpers.pipeline.result import AnalysisResult
from etem_helpers.preprocess.validate import has_contrast, read_input

__all__ = ["otsu_watershed", "adaptive_threshold_watershed"]


def _validate_length(name, value) -> float:
    """A finite length >= 0 in nm (0 switches the step off); errors name the argument."""
    if value is not None and not isinstance(value, bool) and value == 0:
        return 0.0
    return validate_pixel_size(
        value, argument=name, quantity="a finite length >= 0 in nm (0 switches it off)"
    )


def _noise_std(smoothed, *, lag_px=1) -> float:
    """Robust noise standard deviation of ``smoothed`` from pixel differences.

    Differences are taken ``lag_px`` apart (beyond the smoothing correlation
    length), their median absolute deviation scaled to a Gaussian standard
    deviation and divided by sqrt(2); sparse edges barely affect the median.
    """
    diffs = []
    if smoothed.shape[1] > lag_px:
        diffs.append((smoothed[:, lag_px:] - smoothed[:, :-lag_px]).ravel())
    if smoothed.shape[0] > lag_px:
        diffs.append((smoothed[lag_px:, :] - smoothed[:-lag_px, :]).ravel())
    if not diffs:
        return 0.0
    d = np.concatenate(diffs)
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2.0))


class _Prepared(NamedTuple):
    smoothed: np.ndarray | None  # None: a frame without contrast
    pixel_size_nm: float
    sigma_px: float
    min_diameter_nm: float
    shape: tuple[int, int]
    source: str


def _prepare(image, pixel_size_nm, dark_particles, smooth_sigma_nm, min_diameter_nm):
    """The checked, smoothed (and for dark particles inverted) image and the settings in px."""
    img, pixel_size_nm, source, _ = read_input(image, pixel_size_nm)  # the Analyzer's checks
    smooth_sigma_nm = _validate_length("smooth_sigma_nm", smooth_sigma_nm)
    min_diameter_nm = _validate_length("min_diameter_nm", min_diameter_nm)
    if not has_contrast(img):
        return _Prepared(None, pixel_size_nm, 0.0, min_diameter_nm, img.shape, source)
    img = img.astype(np.float64)
    if dark_particles:
        img = -img
    sigma_px = smooth_sigma_nm / pixel_size_nm
    smoothed = ndi.gaussian_filter(img, sigma=sigma_px, mode="reflect") if sigma_px > 0 else img
    return _Prepared(smoothed, pixel_size_nm, sigma_px, min_diameter_nm, img.shape, source)


def _remove_small(mask, min_area_px) -> np.ndarray:
    labels, n = ndi.label(mask)
    if n == 0 or min_area_px <= 1:
        return mask
    areas = np.bincount(labels.ravel())
    keep = areas >= min_area_px
    keep[0] = False
    return keep[labels]


def _noise_lag_px(sigma_px) -> int:
    # Gaussian-smoothed white noise decorrelates to exp(-lag**2 / (4 sigma**2)) < 0.1.
    return int(np.ceil(3.0 * sigma_px)) + 1 if sigma_px > 0 else 1


def _segment(prepared: _Prepared, threshold, *, split_touching, dark_particles):
    """Threshold, clean and split; returns (labels int32, probability float32, info)."""
    smoothed, pixel_size_nm, sigma_px, min_diameter_nm = prepared[:4]
    noise = _noise_std(smoothed, lag_px=_noise_lag_px(sigma_px))
    dynamic = float(np.ptp(smoothed))
    min_area_px = np.pi * (0.5 * min_diameter_nm / pixel_size_nm) ** 2
    # h of the h-maxima markers: a neck must be at least this much narrower (in
    # distance-map units) than the particle to be split. ImageJ uses 0.5 px.
    h_px = max(1.0, 0.25 * min_diameter_nm / pixel_size_nm)
    info = {
        "noise_std": noise,
        "min_area_px": float(min_area_px),
        "split_h_px": float(h_px) if split_touching else None,
        "sigma_px": float(sigma_px),
        "dark_particles": bool(dark_particles),
    }
    if dynamic <= 1e-12 * max(1.0, float(np.abs(smoothed).max())):
        # Constant image: nothing to find.
        labels = np.zeros(smoothed.shape, dtype=np.int32)
        probability = np.zeros(smoothed.shape, dtype=np.float32)
        return labels, probability, info

    mask = smoothed > threshold
    mask = ndi.binary_fill_holes(mask)
    mask = _remove_small(mask, min_area_px)

    if split_touching and mask.any():
        distance = ndi.distance_transform_edt(mask)
        markers, _ = ndi.label(h_maxima(distance, h_px), structure=np.ones((3, 3)))
        labels = watershed(-distance, markers, mask=mask)
        # Drop watershed fragments below the minimum size as well.
        areas = np.bincount(labels.ravel())
        small = areas < min_area_px
        small[0] = False
        labels[small[labels]] = 0
    else:
        labels, _ = ndi.label(mask)
    labels = relabel_sequential(labels).astype(np.int32, copy=False)

    scale = noise if noise > 0 else dynamic / 10.0
    z = np.clip((smoothed - threshold) / scale, -50.0, 50.0)
    probability = (1.0 / (1.0 + np.exp(-z))).astype(np.float32)
    return labels, probability, info


def _no_contrast(prepared: _Prepared, method: str) -> AnalysisResult:
    """The result for a frame without contrast (blank, saturated, a few hot pixels): nothing."""
    labels = np.zeros(prepared.shape, dtype=np.int32)
    probability = np.zeros(prepared.shape, dtype=np.float32)
    return _finish(labels, probability, prepared, method, {"constant_image": True})


def _finish(labels, probability, prepared: _Prepared, method, info) -> AnalysisResult:
    info.setdefault("constant_image", False)
    particles = measure_particles(labels, prepared.pixel_size_nm, probability=probability)
    return AnalysisResult(
        labels=labels,
        particles=particles,
        probability=probability,
        pixel_size_nm=prepared.pixel_size_nm,
        pixel_size_source=prepared.source,
        method=method,
        info=info,
    )


def otsu_watershed(
    image,
    pixel_size_nm,
    *,
    dark_particles=True,
    smooth_sigma_nm=0.5,
    min_diameter_nm=1.0,
    split_touching=True,
) -> AnalysisResult:
    """Segment particles with a global Otsu threshold and a distance watershed.

    Parameters
    ----------
    image : (H, W) ndarray or str or path-like
        Grey-scale micrograph (any real dtype, finite values, at least 32 px a side), or a
        micrograph file (its calibration is used), checked as by :func:`etem_helpers.analyze`.
    pixel_size_nm : float or None
        Pixel size in nm per pixel (> 0); required for an array, overrides a file's.
    dark_particles : bool, optional
        True (default) for bright-field TEM, where particles are darker than the
        support; False for bright particles (HAADF-STEM, dark field).
    smooth_sigma_nm : float, optional
        Standard deviation of the Gaussian smoothing in nm (default 0.5 nm, which
        also washes out lattice fringes in HRTEM images). 0 disables smoothing.
    min_diameter_nm : float, optional
        Smallest particle kept, as an area-equivalent diameter in nm (default
        1 nm). Also sets the depth needed to split touching particles (h-maxima
        of the distance map with ``h = max(1 px, min_diameter_nm / 4)``).
    split_touching : bool, optional
        Split touching particles with the distance-map watershed (default True).

    Returns
    -------
    AnalysisResult
        ``method="otsu_watershed"``, ``pixel_size_source="argument"``;
        ``probability`` is the heuristic score described in the module docstring;
        ``info`` holds ``threshold``, ``sigma_px``, ``noise_std``, ``min_area_px``
        and ``split_h_px``. A frame without contrast (blank, saturated, a few hot pixels or
        dead rows: :func:`etem_helpers.preprocess.validate.has_contrast`) gives zero
        particles (``info["constant_image"]``), as with :func:`etem_helpers.analyze`.
    """
    prepared = _prepare(image, pixel_size_nm, dark_particles, smooth_sigma_nm, min_diameter_nm)
    if prepared.smoothed is None:
        return _no_contrast(prepared, "otsu_watershed")
    smoothed = prepared.smoothed
    if np.ptp(smoothed) > 0:
        threshold = float(threshold_otsu(smoothed))
    else:
        threshold = float(smoothed.flat[0])
    labels, probability, info = _segment(
        prepared, threshold, split_touching=split_touching, dark_particles=dark_particles
    )
    # Report the threshold in the units of the input image.
    info["threshold"] = -threshold if dark_particles else threshold
    return _finish(labels, probability, prepared, "otsu_watershed", info)


def adaptive_threshold_watershed(
    image,
    pixel_size_nm,
    *,
    block_size_nm=50.0,
    offset_noise=3.0,
    dark_particles=True,
    smooth_sigma_nm=0.5,
    min_diameter_nm=1.0,
    split_touching=True,
) -> AnalysisResult:
    """Segment particles with a local (adaptive) threshold and a distance watershed.

    The threshold at each pixel is the Gaussian-weighted local mean
    (:func:`skimage.filters.threshold_local`, ``method="gaussian"``) over a block of
    ``block_size_nm`` plus ``offset_noise`` times the robust noise level, which
    copes with uneven illumination or support thickness better than one global
    threshold. Otherwise identical to :func:`otsu_watershed`.

    Parameters
    ----------
    image : (H, W) ndarray or str or path-like
        Grey-scale micrograph (any real dtype, finite values, at least 32 px a side), or a
        micrograph file (its calibration is used), checked as by :func:`etem_helpers.analyze`.
    pixel_size_nm : float or None
        Pixel size in nm per pixel (> 0); required for an array, overrides a file's.
    block_size_nm : float, optional
        Side of the local neighbourhood in nm (default 50 nm); it should be several
        times the largest particle. Converted to an odd number of pixels >= 3 and
        capped at the image size.
    offset_noise : float, optional
        How many noise standard deviations above the local mean a pixel must be to
        count as particle (default 3). Larger values give fewer noise specks.
    dark_particles, smooth_sigma_nm, min_diameter_nm, split_touching
        As in :func:`otsu_watershed`.

    Returns
    -------
    AnalysisResult
        ``method="adaptive_threshold_watershed"``; ``info`` holds ``block_size_px``,
        ``offset_noise``, ``sigma_px``, ``noise_std``, ``min_area_px``, ``split_h_px``.
    """
    prepared = _prepare(image, pixel_size_nm, dark_particles, smooth_sigma_nm, min_diameter_nm)
    block_size_nm = validate_pixel_size(
        block_size_nm, argument="block_size_nm", quantity="a finite positive length in nm"
    )
    try:
        offset_noise = float(offset_noise)
    except (TypeError, ValueError):
        raise TypeError(f"offset_noise must be a number, got {offset_noise!r}.") from None
    if not np.isfinite(offset_noise):
        raise ValueError(f"offset_noise must be finite, got {offset_noise!r}.")
    if prepared.smoothed is None:
        return _no_contrast(prepared, "adaptive_threshold_watershed")
    smoothed, pixel_size_nm, sigma_px = prepared[:3]
    block_px = max(3, int(round(block_size_nm / pixel_size_nm)))
    largest_odd = max(3, max(smoothed.shape) | 1)
    block_px = min(block_px | 1, largest_odd)
    noise = _noise_std(smoothed, lag_px=_noise_lag_px(sigma_px))
    local_mean = threshold_local(smoothed, block_size=block_px, method="gaussian", offset=0.0)
    threshold = local_mean + offset_noise * noise
    labels, probability, info = _segment(
        prepared, threshold, split_touching=split_touching, dark_particles=dark_particles
    )
    info.update(block_size_px=int(block_px), offset_noise=offset_noise)
    return _finish(labels, probability, prepared, "adaptive_threshold_watershed", info)
