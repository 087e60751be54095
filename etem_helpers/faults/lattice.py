"""Lattice fringes of one particle: windowed FFT, Bragg spots, resolved or not, zone axis.

Each particle is cut out of the micrograph with a small margin, weighted by a tapered window
(its instance mask blurred by a Gaussian, so that neither the carbon film nor a touching
neighbour enters the transform and the edge does not ring), zero-padded by a factor of two
and Fourier transformed. Bragg spots are local maxima of the power whose ratio to the radial
median of the power (the diffuse background at that frequency) exceeds a threshold.

Frequencies are in cycles per pixel inside the module (``k_px``) and in 1/nm in the output
(``k_per_nm = k_px / pixel_size_nm``); ``d_nm = 1 / k_per_nm``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
import scipy.fft
from scipy import ndimage

__all__ = [
    "LatticeSettings",
    "ParticleSpectrum",
    "BraggSpot",
    "LatticeResult",
    "particle_crop",
    "particle_spectrum",
    "find_bragg_spots",
    "zone_axis_guess",
    "analyze_lattice",
]


@dataclass(frozen=True)
class LatticeSettings:
    """Settings of the per-particle lattice analysis.

    Attributes
    ----------
    margin_px : int
        Pixels added around the particle's bounding box before the transform.
    taper_px : float
        Gaussian sigma (pixels) that blurs the mask into a tapered window.
    pad_factor : int
        Zero padding: the transform size is the next fast length >= pad_factor x crop side
        (at least ``min_fft_px``).
    min_fft_px : int
        Smallest transform side.
    d_min_nm, d_max_nm : float
        Spacings searched for Bragg spots (fcc metals: d111 0.22-0.24 nm, d200 0.19-0.21 nm).
    nyquist_margin : float
        Spots must lie inside ``nyquist_margin x`` the Nyquist frequency (0.5 cycles/px).
    snr_min : float
        Minimum ratio of a spot's power to the radial median power (background) at its
        frequency. The ratio of pure noise power to its median is exponential / ln 2, so 20
        leaves about 1e-6 false spots per Fourier pixel.
    min_fringes : float
        The particle must span at least this many fringes (equivalent diameter / d).
    min_area_px : int
        Smaller particles are never lattice-resolved.
    smooth_bins : float
        Gaussian sigma (Fourier pixels of the padded transform) that averages the power
        over a spot's footprint before the spot search (a matched filter: it lowers the
        scatter of the noise power much more than the height of a spot).
    """

    margin_px: int = 4
    taper_px: float = 1.5
    pad_factor: int = 2
    min_fft_px: int = 128
    d_min_nm: float = 0.12
    d_max_nm: float = 0.6
    nyquist_margin: float = 0.9
    snr_min: float = 20.0
    min_fringes: float = 4.0
    min_area_px: int = 30
    smooth_bins: float = 1.0

    def resolvable_at(self, pixel_size_nm: float) -> bool:
        """Whether any spacing up to ``d_max_nm`` lies inside the searched part of the
        transform at this pixel size (above about 0.27 nm/px no lattice can be resolved)."""
        return float(pixel_size_nm) <= 0.5 * self.nyquist_margin * self.d_max_nm


@dataclass
class ParticleSpectrum:
    """The windowed, zero-padded power spectrum of one particle.

    Attributes
    ----------
    power : numpy.ndarray
        Centred power (fftshift order), shape ``(n, n)``.
    background : numpy.ndarray
        Radial median of ``power`` at each pixel's integer radius, same shape.
    crop : numpy.ndarray
        The float64 crop (mean inside the window subtracted), before windowing.
    window : numpy.ndarray
        The tapered window, same shape as ``crop``.
    origin_yx : tuple of int
        Top-left corner of the crop in the micrograph.
    area_px : int
        Pixels of the particle's mask.
    """

    power: np.ndarray
    background: np.ndarray
    crop: np.ndarray
    window: np.ndarray
    origin_yx: tuple
    area_px: int

    @property
    def n(self) -> int:
        return int(self.power.shape[0])


@dataclass(frozen=True)
class BraggSpot:
    """One Bragg reflection (one of a Friedel pair, upper half-plane).

    ``ky_px``, ``kx_px`` in cycles/pixel; ``angle_deg`` the direction of the reciprocal
    vector in the image (0 = +x, counter-clockwise with y pointing down, in [0, 180));
    ``snr`` the power over the radial median at that frequency (detection); ``power`` the
    power itself (ranking: "strongest" spot).
    """

    ky_px: float
    kx_px: float
    k_per_nm: float
    d_nm: float
    angle_deg: float
    snr: float
    power: float = 0.0


@dataclass
class LatticeResult:
    """Lattice analysis of one particle (see :func:`analyze_lattice`)."""

    lattice_resolved: bool
    d_spacing_nm: float
    zone_axis: str
    spots: list = field(default_factory=list)
    n_fringes: float = float("nan")
    max_snr: float = 0.0


def _bbox(mask: np.ndarray):
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return rows[0], rows[-1] + 1, cols[0], cols[-1] + 1


def particle_crop(image, labels, particle_id: int, *, margin_px: int = 4, bbox=None):
    """Cut one particle out of a micrograph.

    Parameters
    ----------
    image : numpy.ndarray
        2-D micrograph.
    labels : numpy.ndarray
        Instance labels, same shape (0 background).
    particle_id : int
        The id to cut.
    margin_px : int
        Margin around the bounding box.
    bbox : tuple of slice, optional
        The particle's bounding box (``scipy.ndimage.find_objects``), to avoid a scan of the
        whole label map per particle.

    Returns
    -------
    crop : numpy.ndarray
        float64 image crop.
    mask : numpy.ndarray
        bool mask of the particle in the crop.
    origin_yx : tuple of int
        Top-left corner of the crop in the micrograph.
    """
    if bbox is None:
        mask_full = labels == particle_id
        if not mask_full.any():
            raise ValueError(f"particle_id={particle_id} is not in labels.")
        r0, r1, c0, c1 = _bbox(mask_full)
    else:
        r0, r1, c0, c1 = bbox[0].start, bbox[0].stop, bbox[1].start, bbox[1].stop
    r0, c0 = max(r0 - margin_px, 0), max(c0 - margin_px, 0)
    r1, c1 = min(r1 + margin_px, image.shape[0]), min(c1 + margin_px, image.shape[1])
    crop = np.asarray(image[r0:r1, c0:c1], dtype=np.float64)
    mask = np.asarray(labels[r0:r1, c0:c1]) == particle_id
    if not mask.any():
        raise ValueError(f"particle_id={particle_id} is not in labels.")
    return crop, mask, (int(r0), int(c0))


@functools.lru_cache(maxsize=128)
def _rings(n: int):
    """Integer radius of each pixel of an n x n centred grid, and the pixels sorted by it."""
    yy, xx = np.indices((n, n))
    r = np.hypot(yy - n // 2, xx - n // 2).astype(np.int64)
    r_flat = r.ravel()
    order = np.argsort(r_flat.astype(np.uint16), kind="stable")  # a radix sort (r < 2**16)
    r_sorted = r_flat[order]
    edges = np.flatnonzero(np.diff(r_sorted)) + 1
    starts = np.concatenate([[0], edges])
    ends = np.concatenate([edges, [r_sorted.size]])
    return r, order, r_sorted, starts, ends


def _radial_median(power: np.ndarray) -> np.ndarray:
    r, order, r_sorted, starts, ends = _rings(int(power.shape[0]))
    p_ring = power.ravel()[order]
    # the middle element(s) of each ring by a partial sort of that ring's slice (exact, and
    # linear in the ring's size: sorting the whole spectrum cost n^2 log n)
    med = np.full(int(r_sorted[-1]) + 1, np.nan)
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        ring = p_ring[start:end]
        k_lo, k_hi = (ring.size - 1) // 2, ring.size // 2
        part = np.partition(ring, (k_lo, k_hi))
        med[r_sorted[start]] = 0.5 * (part[k_lo] + part[k_hi])
    med = np.where(np.isfinite(med) & (med > 0), med, np.nanmax(med))
    return med[r]


def particle_spectrum(
    image, labels, particle_id: int, settings: LatticeSettings | None = None, *, bbox=None
) -> ParticleSpectrum:
    """Windowed, zero-padded power spectrum of one particle.

    Parameters
    ----------
    image, labels : numpy.ndarray
        Micrograph and its instance labels.
    particle_id : int
        Particle to analyse.
    settings : LatticeSettings, optional
    bbox : tuple of slice, optional
        Bounding box of the particle (``scipy.ndimage.find_objects``).

    Returns
    -------
    ParticleSpectrum
    """
    s = settings or LatticeSettings()
    crop, mask, origin = particle_crop(image, labels, particle_id, margin_px=s.margin_px,
                                       bbox=bbox)
    window = ndimage.gaussian_filter(mask.astype(np.float64), s.taper_px) * mask
    window = ndimage.gaussian_filter(window, 0.5 * s.taper_px)
    wsum = window.sum()
    if wsum <= 0:
        raise ValueError(f"particle_id={particle_id} has an empty window.")
    centred = crop - float((crop * window).sum() / wsum)
    side = max(crop.shape)
    n = scipy.fft.next_fast_len(max(s.min_fft_px, s.pad_factor * side))
    if n % 2:
        n += 1
    padded = np.zeros((n, n))
    padded[: crop.shape[0], : crop.shape[1]] = centred * window
    spectrum = scipy.fft.fft2(padded)
    power = np.fft.fftshift((spectrum.real**2 + spectrum.imag**2) / np.sum(window**2))
    smooth = ndimage.gaussian_filter(power, s.smooth_bins) if s.smooth_bins > 0 else power
    return ParticleSpectrum(power=smooth, background=_radial_median(smooth), crop=centred,
                            window=window, origin_yx=origin, area_px=int(mask.sum()))


def _refine(values: np.ndarray, i: int, j: int) -> tuple[float, float]:
    """Sub-pixel peak by a parabola through the log power of the 3 x 3 neighbourhood."""
    def offset(a, b, c):
        denom = a - 2.0 * b + c
        return 0.0 if denom >= 0 else float(np.clip(0.5 * (a - c) / denom, -0.5, 0.5))

    lv = np.log(np.maximum(values[i - 1:i + 2, j - 1:j + 2], 1e-300))
    return i + offset(lv[0, 1], lv[1, 1], lv[2, 1]), j + offset(lv[1, 0], lv[1, 1], lv[1, 2])


def find_bragg_spots(
    spec: ParticleSpectrum, pixel_size_nm: float, settings: LatticeSettings | None = None
) -> list[BraggSpot]:
    """Bragg spots of a particle spectrum, strongest first (one per Friedel pair).

    Parameters
    ----------
    spec : ParticleSpectrum
    pixel_size_nm : float
        Pixel size of the micrograph in nm.
    settings : LatticeSettings, optional

    Returns
    -------
    list of BraggSpot
        Spots whose power over the radial median exceeds ``settings.snr_min``, with spacing
        in ``[d_min_nm, d_max_nm]`` and frequency inside the Nyquist margin, sorted by
        decreasing power (low-order reflections first: a high-order spot can stand out more
        over its lower background but is weaker).
    """
    s = settings or LatticeSettings()
    n = spec.n
    ratio = spec.power / spec.background
    c = n // 2
    yy, xx = np.indices(ratio.shape)
    k_px = np.hypot(yy - c, xx - c) / n
    k_lo = pixel_size_nm / s.d_max_nm
    k_hi = min(pixel_size_nm / s.d_min_nm, 0.5 * s.nyquist_margin)
    band = (k_px >= k_lo) & (k_px <= k_hi) & ((yy < c) | ((yy == c) & (xx > c)))
    local_max = ratio == ndimage.maximum_filter(ratio, size=2 * s.pad_factor + 1)
    cand = np.flatnonzero((band & local_max & (ratio >= s.snr_min)).ravel())
    spots = []
    for flat in cand[np.argsort(-ratio.ravel()[cand])]:
        i, j = divmod(int(flat), n)
        if not (0 < i < n - 1 and 0 < j < n - 1):
            continue
        fi, fj = _refine(spec.power, i, j)
        ky, kx = (fi - c) / n, (fj - c) / n
        k_nm = math.hypot(ky, kx) / pixel_size_nm
        angle = math.degrees(math.atan2(-ky, kx)) % 180.0
        spots.append(BraggSpot(ky_px=ky, kx_px=kx, k_per_nm=k_nm, d_nm=1.0 / k_nm,
                               angle_deg=angle, snr=float(ratio[i, j]),
                               power=float(spec.power[i, j])))
    return sorted(spots, key=lambda spot: -spot.power)


def _line_angle(a: float, b: float) -> float:
    d = abs(a - b) % 180.0
    return min(d, 180.0 - d)


def zone_axis_guess(spots: list[BraggSpot], *, tol_deg: float = 3.5, tol_rel: float = 0.04) -> str:
    """"[110]" when the spots show the fcc [110] pattern, else "".

    The pattern: two {111} reflections of equal spacing at 70.5 deg, or a {111} and a
    {200} (spacing ratio 2/sqrt(3) = 1.155) at 54.7 deg.

    Parameters
    ----------
    spots : list of BraggSpot
    tol_deg : float
        Angular tolerance.
    tol_rel : float
        Relative tolerance on the spacing ratios.

    Returns
    -------
    str
    """
    for a_index, a in enumerate(spots):
        for b in spots[a_index + 1:]:
            ratio = max(a.k_per_nm, b.k_per_nm) / min(a.k_per_nm, b.k_per_nm)
            angle = _line_angle(a.angle_deg, b.angle_deg)
            if ratio < 1 + tol_rel and abs(angle - 70.53) < tol_deg:
                return "[110]"
            if abs(ratio - 2 / math.sqrt(3)) < tol_rel and abs(angle - 54.74) < tol_deg:
                return "[110]"
    return ""


def analyze_lattice(
    image, labels, particle_id: int, pixel_size_nm: float,
    settings: LatticeSettings | None = None, *, spectrum: ParticleSpectrum | None = None,
) -> LatticeResult:
    """Lattice of one particle: spots, resolved or not, strongest spacing, zone axis.

    The lattice counts as resolved when at least one spot passes the thresholds of
    :class:`LatticeSettings` (power over background, spacing range, inside Nyquist) and the
    particle spans at least ``min_fringes`` fringes of the strongest spacing.

    Parameters
    ----------
    image, labels : numpy.ndarray
        Micrograph and its instance labels.
    particle_id : int
    pixel_size_nm : float
        Pixel size in nm.
    settings : LatticeSettings, optional
    spectrum : ParticleSpectrum, optional
        Reuse a spectrum computed before.

    Returns
    -------
    LatticeResult
        ``d_spacing_nm`` NaN and ``zone_axis`` "" when not resolved.
    """
    s = settings or LatticeSettings()
    spec = spectrum or particle_spectrum(image, labels, particle_id, s)
    if spec.area_px < s.min_area_px:
        return LatticeResult(False, float("nan"), "")
    spots = find_bragg_spots(spec, pixel_size_nm, s)
    if not spots:
        return LatticeResult(False, float("nan"), "", max_snr=0.0)
    d = spots[0].d_nm
    diameter_px = 2.0 * math.sqrt(spec.area_px / math.pi)
    n_fringes = diameter_px * pixel_size_nm / d
    resolved = n_fringes >= s.min_fringes
    return LatticeResult(
        lattice_resolved=bool(resolved),
        d_spacing_nm=float(d) if resolved else float("nan"),
        zone_axis=zone_axis_guess(spots) if resolved else "",
        spots=spots,
        n_fringes=float(n_fringes),
        max_snr=float(max(spot.snr for spot in spots)),
    )
