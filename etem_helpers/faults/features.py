"""Per-particle features for fault classification.

Two feature sets:

* :func:`groschner2021_features`: the five features of Groschner, Choi & Scott, Microsc.
  Microanal. 27, 549 (2021), as their published code computes them
  (``ScottLabUCB/HTTEM``, ``pyNanoFind/random_forest_demo/Random_Forest_Training_and_Results.ipynb``,
  functions ``annular_mask``, ``fft_integrate``, ``center_of_mass`` and
  ``gather_img_features``): the crop is cut square (its first ``min(ny, nx)`` rows /
  columns), |FFT| (fftshift) is summed under soft annuli (erf edges 4 px wide, flat part
  10 px wide, inner radius ``i * sqrt(2)`` px for ``i = 0, 1, ...``), the first 100 sums
  form the radial profile; features are its mean, standard deviation and index-weighted
  centre of mass, plus the crop's mean and standard deviation. Our crop is the particle's
  bounding box from :func:`etem_helpers.faults.lattice.particle_crop` with the particle's mean
  subtracted (their crops were PNGs saved by ``plt.imsave``, i.e. rescaled per crop, so the
  absolute level carried no information there either).
* :func:`physics_features`: what a fault does to the lattice: extra spots (a twin's mirrored
  lattice), streaks of the reflections along the fault normal, and geometric phase analysis
  (GPA) of the strongest reflections (an intrinsic stacking fault shifts the inclined {111}
  fringes by a third of a period: a phase jump of 120 degrees; a twin removes the matrix
  reflection from the twinned half: the GPA amplitude drops there).

:func:`fft_patch` gives the input of the CNN: the particle's log power over background on a
grid in units of the strongest spacing, rotated so that the strongest spot lies along +x.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft
from scipy import ndimage
from scipy.special import erf

from .lattice import BraggSpot, ParticleSpectrum, zone_axis_guess

__all__ = [
    "GROSCHNER_FEATURES",
    "PHYSICS_FEATURES",
    "groschner2021_features",
    "groschner_radial_profile",
    "gpa_phase",
    "physics_features",
    "fft_patch",
]

GROSCHNER_FEATURES = ("fft_int_mean", "fft_int_std", "image_mean", "image_std", "fft_int_com")

PHYSICS_FEATURES = (
    "n_spots", "n_spots_strong", "n_directions", "zone_110", "log_snr_1", "snr_ratio_2",
    "snr_ratio_3", "n_fringes", "streak_max", "streak_mean", "gpa_coherence_min",
    "gpa_coherence_max", "gpa_mode_fraction_min", "gpa_amplitude_cv_max", "gpa_jump_deg",
    "step_gain_max", "step_jump_deg", "step_amplitude_log_ratio", "step_gain_second",
    "n_split_spots", "step_local_jump_deg",
)


def _soft_step(q, q_min, q_max):
    z = (q - (q_min + (q_max - q_min) / 2.0)) / (q_max - q_min) * 4.0
    return (1.0 + erf(z)) / 2.0


def groschner_radial_profile(crop, *, n_radii: int = 100, ring_width_px: float = 10.0,
                             edge_px: float = 4.0) -> np.ndarray:
    """|FFT| summed in sliding soft annuli (Groschner et al. 2021).

    Parameters
    ----------
    crop : array_like
        2-D particle crop; cut to its leading square ``min(ny, nx)``.
    n_radii : int
        Number of annuli kept (the paper: 100); fewer when the square is smaller.
    ring_width_px, edge_px : float
        Flat width and erf edge width of each annulus, in Fourier pixels.

    Returns
    -------
    numpy.ndarray
        The profile, ``min(n_radii, side)`` values.
    """
    img = np.asarray(crop, dtype=np.float64)
    if img.ndim != 2 or min(img.shape) < 2:
        raise ValueError(f"crop must be a 2-D array of at least 2 x 2, got shape {img.shape}.")
    side = min(img.shape)
    cut = img[:side, :side]
    magnitude = np.abs(np.fft.fftshift(scipy.fft.fft2(cut)))
    xx, yy = np.meshgrid(np.arange(side), np.arange(side))
    # pixels at the same distance from the centre share one weight: sum |FFT| per distinct
    # squared distance (exact integers, (2x - side)^2 + (2y - side)^2 = 4 r^2) first
    key = ((2 * xx - side) ** 2 + (2 * yy - side) ** 2).ravel()
    unique, inverse = np.unique(key, return_inverse=True)
    mag_sum = np.bincount(inverse, weights=magnitude.ravel())
    rr = np.sqrt(unique / 4.0)
    radii = np.arange(min(n_radii, side)) * math.sqrt(2.0)
    profile = np.empty(radii.size)
    for index, r0 in enumerate(radii):
        r1 = r0 + edge_px
        mask = _soft_step(rr, r0, r1) - _soft_step(rr, r1 + ring_width_px,
                                                   r1 + ring_width_px + edge_px)
        profile[index] = np.sum(mag_sum * mask)
    return profile


def groschner2021_features(crop) -> np.ndarray:
    """Groschner et al. (2021) five features of one particle crop.

    Parameters
    ----------
    crop : array_like
        2-D crop around the particle (their crops: the bounding box of the segmented
        particle).

    Returns
    -------
    numpy.ndarray
        float64, shape (5,): ``fft_int_mean``, ``fft_int_std``, ``image_mean``,
        ``image_std``, ``fft_int_com`` (see :data:`GROSCHNER_FEATURES`).
    """
    img = np.asarray(crop, dtype=np.float64)
    profile = groschner_radial_profile(img)
    com = float(np.dot(profile, np.arange(profile.size)) / profile.sum()) if profile.sum() else 0.0
    return np.array([profile.mean(), profile.std(), img.mean(), img.std(), com])


# --------------------------------------------------------------------------------------
# Physics features
# --------------------------------------------------------------------------------------
def _spot_pixel(spec: ParticleSpectrum, spot: BraggSpot) -> tuple[float, float]:
    c = spec.n // 2
    return c + spot.ky_px * spec.n, c + spot.kx_px * spec.n


def _streak_anisotropy(spec: ParticleSpectrum, spot: BraggSpot, *, n_angles: int = 36) -> float:
    """Max over directions of the spectrum on a small circle around the spot over its median."""
    ratio = spec.power / spec.background
    i, j = _spot_pixel(spec, spot)
    rho = 0.3 * math.hypot(spot.ky_px, spot.kx_px) * spec.n
    theta = np.linspace(0.0, math.pi, n_angles, endpoint=False)
    values = []
    for sign in (1.0, -1.0):
        coords = np.array([i + sign * rho * np.sin(theta), j + sign * rho * np.cos(theta)])
        values.append(ndimage.map_coordinates(ratio, coords, order=1, mode="nearest"))
    profile = 0.5 * (values[0] + values[1])  # direction and its opposite: a streak is a line
    return float(np.log(max(profile.max(), 1e-12) / max(np.median(profile), 1e-12)))


def gpa_phase(spec: ParticleSpectrum, spot: BraggSpot, *, sigma_rel: float = 0.25):
    """Geometric phase and amplitude of one reflection over the particle crop.

    Parameters
    ----------
    spec : ParticleSpectrum
    spot : BraggSpot
        Reflection g (cycles/pixel).
    sigma_rel : float
        Gaussian mask radius in units of |g| (the spatial resolution of the phase map is
        about ``1 / (2 pi sigma_rel |g|)`` pixels).

    Returns
    -------
    phase : numpy.ndarray
        Phase in rad (-pi, pi], same shape as ``spec.crop``, with the mean linear ramp removed.
    amplitude : numpy.ndarray
        Amplitude of the Bragg-filtered image.
    """
    crop = spec.crop * spec.window
    ny, nx = crop.shape
    fy = np.fft.fftfreq(ny)[:, None]
    fx = np.fft.fftfreq(nx)[None, :]
    g = math.hypot(spot.ky_px, spot.kx_px)
    sigma = sigma_rel * g
    yy, xx = np.indices(crop.shape)
    demod = crop * np.exp(-2j * np.pi * (spot.ky_px * yy + spot.kx_px * xx))
    filt = np.exp(-(fy**2 + fx**2) / (2.0 * sigma**2))
    field_ = scipy.fft.ifft2(scipy.fft.fft2(demod) * filt)
    # remove the residual ramp (g known only to a fraction of a Fourier pixel)
    weight = spec.window > 0.5 * spec.window.max()
    dy = field_[1:, :] * np.conj(field_[:-1, :]) * (weight[1:, :] & weight[:-1, :])
    dx = field_[:, 1:] * np.conj(field_[:, :-1]) * (weight[:, 1:] & weight[:, :-1])
    gy, gx = np.angle(dy.sum()), np.angle(dx.sum())
    field_ = field_ * np.exp(-1j * (gy * yy + gx * xx))
    return np.angle(field_), np.abs(field_)


def _gpa_stats(spec: ParticleSpectrum, phase, amplitude) -> tuple[float, float, float, float]:
    """Coherence, main-mode fraction, amplitude CV and phase jump of one GPA map."""
    inside = ndimage.binary_erosion(spec.window > 0.5 * spec.window.max(), iterations=2)
    if inside.sum() < 10:
        inside = spec.window > 0.5 * spec.window.max()
    a = amplitude[inside]
    p = phase[inside]
    total = a.sum()
    if total <= 0:
        return 1.0, 1.0, 0.0, 0.0
    z = (a * np.exp(1j * p)).sum() / total
    coherence = float(abs(z))
    # weighted phase histogram: share of the weight within +-30 deg of the main mode
    bins = 24
    hist, _ = np.histogram(np.mod(p, 2 * np.pi), bins=bins, range=(0, 2 * np.pi), weights=a)
    circ = np.concatenate([hist, hist[:3]])
    window_sum = np.array([circ[k:k + 5].sum() for k in range(bins)])
    main = int(np.argmax(window_sum))
    mode_fraction = float(window_sum[main] / total)
    # second mode away from the main one (> 60 deg): the jump
    centres = (np.arange(bins) + 0.5) * 2 * np.pi / bins
    main_angle = centres[(main + 2) % bins]
    dist = np.abs(np.angle(np.exp(1j * (centres - main_angle))))
    far = window_sum.copy()
    far[np.array([dist[(k + 2) % bins] for k in range(bins)]) < math.radians(60)] = 0
    jump = 0.0
    if far.max() > 0.15 * total:
        second = int(np.argmax(far))
        jump = float(np.degrees(abs(np.angle(np.exp(1j * (centres[(second + 2) % bins]
                                                            - main_angle))))))
    cv = float(a.std() / a.mean()) if a.mean() > 0 else 0.0
    return coherence, mode_fraction, cv, jump


_MAX_STEP_PIXELS = 6000


def _n_split_spots(spots: list[BraggSpot], *, max_rel: float = 0.2) -> int:
    """Spots with a neighbour closer than ``max_rel |g|`` (a split or doubled reflection)."""
    count = 0
    for i, a in enumerate(spots):
        g = math.hypot(a.ky_px, a.kx_px)
        for j, b in enumerate(spots):
            if i != j and min(math.hypot(a.ky_px - b.ky_px, a.kx_px - b.kx_px),
                              math.hypot(a.ky_px + b.ky_px, a.kx_px + b.kx_px)) < max_rel * g:
                count += 1
                break
    return count


def _step_fits(maps, inside, yy, xx, normal_angles, *, band_px: float = 8.0) -> np.ndarray:
    """Best two-domain split of each GPA map over candidate fault normals.

    The particle is cut by a line normal to ``n`` at every position (10-90 % of its pixels);
    on each side the amplitude-weighted mean phasor is formed. For each map and its best cut
    over all normals returns: the coherence gain ``(|Z1| + |Z2| - |Z|) / sum(a)`` (0 for a
    uniform phase, up to 0.5 for two domains 120 deg apart); the phase jump between the
    sides (deg); |log| of the ratio of their mean amplitudes (a twin removes a reflection
    from one side); and the LOCAL jump, between bands ``band_px`` wide on either side of the
    cut (a fault is a step, a thickness or strain gradient is not: its local jump is small).

    Parameters
    ----------
    maps : list of (phase, amplitude)
        GPA maps of the same crop.
    inside : numpy.ndarray
        bool mask of the pixels used.
    yy, xx : numpy.ndarray
        Pixel coordinates.
    normal_angles : array_like
        Candidate normals in rad.
    band_px : float

    Returns
    -------
    numpy.ndarray
        ``(len(maps), 4)``.
    """
    ys, xs = yy[inside], xx[inside]
    take = None
    if ys.size > _MAX_STEP_PIXELS:  # a regular subsample keeps the search fast
        take = np.linspace(0, ys.size - 1, _MAX_STEP_PIXELS).astype(np.int64)
        ys, xs = ys[take], xs[take]
    out = np.zeros((len(maps), 4))
    if ys.size < 20:
        return out
    zs, amps = [], []
    for phase, amplitude in maps:
        z = (amplitude * np.exp(1j * phase))[inside]
        a = amplitude[inside]
        zs.append(z if take is None else z[take])
        amps.append(a if take is None else a[take])
    totals = [a.sum() for a in amps]
    z_totals = [abs(z.sum()) for z in zs]
    best_gain = [0.0] * len(maps)
    best: list = [None] * len(maps)
    lo, hi = int(0.1 * ys.size), int(0.9 * ys.size)
    for angle in normal_angles:
        u = ys * math.sin(angle) + xs * math.cos(angle)
        order = np.argsort(u, kind="stable")
        for m, z in enumerate(zs):
            if totals[m] <= 0:
                continue
            cz = np.cumsum(z[order])
            z1 = cz[lo:hi]
            gain = (np.abs(z1) + np.abs(cz[-1] - z1) - z_totals[m]) / totals[m]
            k = int(np.argmax(gain))
            if gain[k] > best_gain[m]:
                best_gain[m], best[m] = float(gain[k]), (u, order, lo + k)
    for m, (z, a) in enumerate(zip(zs, amps, strict=True)):
        if best[m] is None:
            continue
        u, order, cut = best[m]
        side = np.zeros(z.size, dtype=bool)
        side[order[cut + 1:]] = True
        jump = abs(math.degrees(np.angle(z[side].sum() * np.conj(z[~side].sum()))))
        m1, m2 = a[~side].mean(), a[side].mean()
        u_cut = u[order[cut]]
        near1 = (~side) & (u >= u_cut - band_px)
        near2 = side & (u <= u_cut + band_px)
        local = 0.0
        if near1.any() and near2.any():
            local = abs(math.degrees(np.angle(z[near2].sum() * np.conj(z[near1].sum()))))
        out[m] = (best_gain[m], jump, abs(math.log(max(m1, 1e-12) / max(m2, 1e-12))), local)
    return out


def _step_features(spec: ParticleSpectrum, spots: list[BraggSpot], maps: list) -> np.ndarray:
    """Two-domain split features over the GPA maps of the strongest spots (see _step_fits)."""
    g_min = min(math.hypot(s.ky_px, s.kx_px) for s in spots)
    edge_px = int(math.ceil(1.0 / (2.0 * math.pi * 0.25 * g_min)))
    inside = ndimage.binary_erosion(spec.window > 0.5 * spec.window.max(), iterations=edge_px)
    yy, xx = np.indices(spec.crop.shape)
    # candidate fault normals every 7.5 deg (the normal's own reflection may be missing)
    normals = np.radians(np.arange(0.0, 180.0, 7.5))
    fits = _step_fits(maps, inside, yy, xx, normals)
    order = np.argsort(-fits[:, 0])
    first = fits[order[0]]
    second = fits[order[1], 0] if len(order) > 1 else 0.0
    return np.array([first[0], first[1], fits[:, 2].max(), second, first[3]])


def _n_directions(spots: list[BraggSpot], tol_deg: float = 5.0) -> int:
    angles = sorted(s.angle_deg for s in spots)
    if not angles:
        return 0
    count = 1
    for a, b in zip(angles[:-1], angles[1:], strict=True):
        count += (b - a) > tol_deg
    if count > 1 and (angles[0] + 180.0 - angles[-1]) <= tol_deg:
        count -= 1
    return count


def physics_features(spec: ParticleSpectrum, spots: list[BraggSpot], pixel_size_nm: float,
                     *, strong_snr: float = 50.0, n_gpa: int = 3) -> np.ndarray:
    """Physics features of one lattice-resolved particle (see :data:`PHYSICS_FEATURES`).

    Parameters
    ----------
    spec : ParticleSpectrum
        From :func:`etem_helpers.faults.lattice.particle_spectrum`.
    spots : list of BraggSpot
        From :func:`etem_helpers.faults.lattice.find_bragg_spots` (strongest first).
    pixel_size_nm : float
        Pixel size in nm.
    strong_snr : float
        Power-over-background of a "strong" spot.
    n_gpa : int
        Number of strongest reflections analysed by GPA.

    Returns
    -------
    numpy.ndarray
        float64 of length ``len(PHYSICS_FEATURES)``; zeros (and coherence 1) without spots.
    """
    out = dict.fromkeys(PHYSICS_FEATURES, 0.0)
    out.update(gpa_coherence_min=1.0, gpa_coherence_max=1.0, gpa_mode_fraction_min=1.0)
    if spots:
        snr = np.array([s.snr for s in spots])
        diameter_px = 2.0 * math.sqrt(spec.area_px / math.pi)
        out.update(
            n_spots=float(len(spots)),
            n_spots_strong=float((snr >= strong_snr).sum()),
            n_directions=float(_n_directions(spots)),
            zone_110=float(zone_axis_guess(spots) == "[110]"),
            log_snr_1=float(np.log(snr[0])),
            snr_ratio_2=float(snr[1] / snr[0]) if len(snr) > 1 else 0.0,
            snr_ratio_3=float(snr[2] / snr[0]) if len(snr) > 2 else 0.0,
            n_fringes=float(diameter_px * pixel_size_nm / spots[0].d_nm),
        )
        streaks = [_streak_anisotropy(spec, s) for s in spots[:6]]
        out.update(streak_max=float(max(streaks)), streak_mean=float(np.mean(streaks)))
        # GPA on the low-order reflections ({111}, {200}): higher orders ({220}) are
        # dominated by thickness and defocus contrast changes, not by the stacking
        k0 = spots[0].k_per_nm
        low = [s for s in spots if s.k_per_nm <= 1.25 * k0] or spots[:1]
        low = low[:max(n_gpa, 4)]
        maps = [gpa_phase(spec, s) for s in low]  # each map computed once
        stats = np.array([_gpa_stats(spec, *m) for m in maps[:n_gpa]])
        out.update(
            gpa_coherence_min=float(stats[:, 0].min()),
            gpa_coherence_max=float(stats[:, 0].max()),
            gpa_mode_fraction_min=float(stats[:, 1].min()),
            gpa_amplitude_cv_max=float(stats[:, 2].max()),
            gpa_jump_deg=float(stats[:, 3].max()),
        )
        step = _step_features(spec, low, maps)
        out.update(step_gain_max=step[0], step_jump_deg=step[1],
                   step_amplitude_log_ratio=step[2], step_gain_second=step[3],
                   n_split_spots=float(_n_split_spots(spots)), step_local_jump_deg=step[4])
    return np.array([out[name] for name in PHYSICS_FEATURES], dtype=np.float64)


def fft_patch(spec: ParticleSpectrum, spots: list[BraggSpot], *, size: int = 48,
              extent: float = 1.6, px_per_fringe: float = 2.5) -> np.ndarray:
    """CNN input: the FFT and the lattice image of a particle, normalised by its fringes.

    Channel 0: log(power / background) around the origin, in units of the strongest
    spot's |g| (half-width ``extent``). Channel 1: the windowed crop resampled to
    ``px_per_fringe`` pixels per strongest fringe around the particle's centre, divided by
    its standard deviation. Both are rotated so that the strongest spot lies along +x (its
    fringes vertical), so a mirror of both channels about the horizontal axis is again a
    valid input.

    Parameters
    ----------
    spec : ParticleSpectrum
    spots : list of BraggSpot
        Strongest first; without spots the raw grids are used (0.25 cycles/px).
    size : int
        Output side.
    extent : float
        Half-width of the FFT channel in units of |g|.
    px_per_fringe : float
        Sampling of the image channel.

    Returns
    -------
    numpy.ndarray
        float32 ``(2, size, size)``.
    """
    c = spec.n // 2
    if spots:
        g = math.hypot(spots[0].ky_px, spots[0].kx_px)
        angle = math.atan2(spots[0].ky_px, spots[0].kx_px)
    else:
        g, angle = 0.25 / extent, 0.0
    u = np.linspace(-1.0, 1.0, size)
    uy, ux = np.meshgrid(u, u, indexing="ij")
    cos, sin = math.cos(angle), math.sin(angle)
    ry, rx = ux * sin + uy * cos, ux * cos - uy * sin
    ratio = np.log(np.maximum(spec.power / spec.background, 1e-6))
    scale_f = g * spec.n * extent
    fft_channel = ndimage.map_coordinates(ratio, np.array([c + scale_f * ry, c + scale_f * rx]),
                                          order=1, mode="constant", cval=0.0)
    image = spec.crop * spec.window
    total = spec.window.sum()
    yy, xx = np.indices(image.shape)
    cy, cx = (spec.window * yy).sum() / total, (spec.window * xx).sum() / total
    scale_r = 0.5 * size / (px_per_fringe * g)  # crop pixels per half-patch
    real = ndimage.map_coordinates(image, np.array([cy + scale_r * ry, cx + scale_r * rx]),
                                   order=1, mode="constant", cval=0.0)
    real = real / max(float(image[spec.window > 0.5 * spec.window.max()].std()), 1e-12)
    out = np.stack([np.clip(fft_channel, -3.0, 8.0), np.clip(real, -5.0, 5.0)])
    return out.astype(np.float32)
