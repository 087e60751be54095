"""Electron optics for the fast HRTEM simulator: wavelength, aberrations, envelopes, CTF.

Conventions follow Kirkland, *Advanced Computing in Electron Microscopy* (2nd ed., 2010):

* defocus ``defocus_nm > 0`` is **underfocus**;
* aberration phase ``chi(k) = pi * lambda * k**2 * (0.5 * Cs * lambda**2 * k**2 - defocus)``;
* the objective-lens transfer function is ``H(k) = A(k) * exp(-i chi(k)) * E(k)`` and the image
  of an exit wave ``psi`` is ``|IFFT(FFT(psi) * H)|**2``.

For a weak phase object ``psi = exp(i phi)`` this gives ``I ~ 1 - 2 phi (x) IFFT(ctf)`` with
``ctf = -sin(chi) * E`` (see :func:`ctf_curve`), so a positive ``ctf`` (e.g. the Scherzer
passband) shows atoms dark.

All spatial frequencies are in 1/nm, lengths in nm, ``cs_mm`` in mm, angles in mrad unless the
name says otherwise. Frequency grids are in FFT order (not shifted); use ``numpy.fft.fftshift``
to display them.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft

__all__ = [
    "electron_wavelength_nm",
    "interaction_constant",
    "scherzer_defocus_nm",
    "fourier_grid",
    "aberration_chi",
    "temporal_envelope",
    "spatial_envelope",
    "info_limit_envelope",
    "transfer_function",
    "ctf_curve",
    "ctf_zeros_per_nm",
    "image_intensity",
    "fourier_crop",
]

#: electron rest energy m0 c^2 in keV (CODATA 2018)
_REST_ENERGY_KEV = 510.99895
#: h c in keV nm (CODATA 2018)
_HC_KEV_NM = 1.23984198


def _check_positive(value: float, name: str) -> float:
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}.")
    return value


def _check_shape(shape) -> tuple[int, int]:
    try:
        ny, nx = (int(s) for s in shape)
    except (TypeError, ValueError):
        raise ValueError(f"shape must be a pair of ints (ny, nx), got {shape!r}.") from None
    if ny < 1 or nx < 1:
        raise ValueError(f"shape must be positive, got {shape!r}.")
    return ny, nx


def electron_wavelength_nm(voltage_kv: float) -> float:
    """Relativistic electron wavelength.

    Parameters
    ----------
    voltage_kv : float
        Accelerating voltage in kV (e.g. 80, 200, 300).

    Returns
    -------
    float
        Wavelength in nm (1.969e-3 nm at 300 kV, 2.508e-3 nm at 200 kV, 4.176e-3 nm at 80 kV).
    """
    e_kev = _check_positive(voltage_kv, "voltage_kv")
    return _HC_KEV_NM / math.sqrt(e_kev * (e_kev + 2.0 * _REST_ENERGY_KEV))


def interaction_constant(voltage_kv: float) -> float:
    """Interaction constant sigma (phase per projected potential).

    ``sigma = 2 pi / (lambda V) * (m0 c^2 + e V) / (2 m0 c^2 + e V)`` (Kirkland eq. 5.6).

    Parameters
    ----------
    voltage_kv : float
        Accelerating voltage in kV.

    Returns
    -------
    float
        sigma in rad / (V Å): 6.53e-4 at 300 kV, 7.29e-4 at 200 kV, 1.01e-3 at 80 kV.
    """
    e_kev = _check_positive(voltage_kv, "voltage_kv")
    wavelength_a = electron_wavelength_nm(e_kev) * 10.0
    volts = e_kev * 1e3
    relativistic = (_REST_ENERGY_KEV + e_kev) / (2.0 * _REST_ENERGY_KEV + e_kev)
    return 2.0 * math.pi / (wavelength_a * volts) * relativistic


def scherzer_defocus_nm(cs_mm: float, voltage_kv: float) -> float:
    """Scherzer (extended) defocus ``sqrt(1.5 Cs lambda)``.

    Parameters
    ----------
    cs_mm : float
        Spherical aberration coefficient in mm. Its absolute value is used; for a negative
        C_s (aberration-corrected microscope) the optimum is overfocus, so the returned value is
        negative.
    voltage_kv : float
        Accelerating voltage in kV.

    Returns
    -------
    float
        Defocus in nm (Kirkland convention, > 0 underfocus): about 59.5 nm for C_s = 1.2 mm at
        300 kV.
    """
    cs_nm = float(cs_mm) * 1e6
    if not math.isfinite(cs_nm):
        raise ValueError(f"cs_mm must be finite, got {cs_mm!r}.")
    value = math.sqrt(1.5 * abs(cs_nm) * electron_wavelength_nm(voltage_kv))
    return math.copysign(value, cs_nm) if cs_nm != 0 else 0.0


def fourier_grid(shape, pixel_size_nm: float, *, rfft: bool = False):
    """Spatial frequencies of a 2-D FFT grid.

    Parameters
    ----------
    shape : tuple of int
        Image shape ``(ny, nx)`` in pixels.
    pixel_size_nm : float
        Pixel size in nm.
    rfft : bool, optional
        If True, ``kx`` covers only the non-negative frequencies of ``numpy.fft.rfft2``.

    Returns
    -------
    ky, kx : numpy.ndarray
        Frequencies in 1/nm, float64, shapes ``(ny, 1)`` and ``(1, nx)`` (or ``(1, nx//2+1)``)
        so that they broadcast; FFT order (zero frequency first).
    """
    ny, nx = _check_shape(shape)
    p = _check_positive(pixel_size_nm, "pixel_size_nm")
    ky = np.fft.fftfreq(ny, d=p)[:, None]
    kx = (np.fft.rfftfreq(nx, d=p) if rfft else np.fft.fftfreq(nx, d=p))[None, :]
    return ky, kx


def _defocus_k2(ky, kx, k2, defocus_nm, astigmatism_nm, astigmatism_angle_deg):
    """``defocus(phi) * k**2`` with two-fold astigmatism, without computing the angle phi."""
    term = defocus_nm * k2
    if astigmatism_nm:
        theta = 2.0 * math.radians(astigmatism_angle_deg)
        term = term + astigmatism_nm * (
            (kx * kx - ky * ky) * math.cos(theta) + 2.0 * kx * ky * math.sin(theta)
        )
    return term


def aberration_chi(
    ky,
    kx,
    *,
    voltage_kv: float,
    defocus_nm: float,
    cs_mm: float,
    astigmatism_nm: float = 0.0,
    astigmatism_angle_deg: float = 0.0,
):
    """Aberration phase chi(k) (Kirkland convention).

    ``chi = pi lambda k^2 (0.5 Cs lambda^2 k^2 - defocus(phi))`` with the azimuth-dependent
    defocus ``defocus(phi) = defocus_nm + astigmatism_nm * cos(2 (phi - phi_A))``: the defocus is
    ``defocus_nm + astigmatism_nm`` along the direction ``astigmatism_angle_deg`` and
    ``defocus_nm - astigmatism_nm`` perpendicular to it.

    Parameters
    ----------
    ky, kx : array_like
        Spatial frequencies in 1/nm (broadcastable, e.g. from :func:`fourier_grid`). ``kx`` is
        along image columns (x), ``ky`` along rows (y).
    voltage_kv : float
        Accelerating voltage in kV.
    defocus_nm : float
        Defocus in nm, > 0 underfocus.
    cs_mm : float
        Spherical aberration in mm.
    astigmatism_nm : float, optional
        Two-fold astigmatism amplitude in nm.
    astigmatism_angle_deg : float, optional
        Direction of the extra underfocus, degrees from +x towards +y.

    Returns
    -------
    numpy.ndarray
        chi in rad, float64, broadcast shape of ``ky`` and ``kx``.
    """
    lam = electron_wavelength_nm(voltage_kv)
    cs_nm = float(cs_mm) * 1e6
    ky = np.asarray(ky, dtype=np.float64)
    kx = np.asarray(kx, dtype=np.float64)
    k2 = ky * ky + kx * kx
    df_k2 = _defocus_k2(ky, kx, k2, float(defocus_nm), float(astigmatism_nm),
                        float(astigmatism_angle_deg))
    return np.pi * lam * (0.5 * cs_nm * lam * lam * k2 * k2 - df_k2)


def _temporal_exponent(k2, voltage_kv, focal_spread_nm):
    lam = electron_wavelength_nm(voltage_kv)
    return 0.5 * (np.pi * lam * float(focal_spread_nm)) ** 2 * k2 * k2


def _spatial_exponent(k2, voltage_kv, cs_mm, defocus_nm, convergence_mrad):
    lam = electron_wavelength_nm(voltage_kv)
    alpha = float(convergence_mrad) * 1e-3
    cs_nm = float(cs_mm) * 1e6
    # (Cs lam^3 k^3 - df lam k)^2 = k^2 (Cs lam^3 k^2 - df lam)^2
    return (np.pi * alpha / lam) ** 2 * k2 * (cs_nm * lam**3 * k2 - float(defocus_nm) * lam) ** 2


def temporal_envelope(k, *, voltage_kv: float, focal_spread_nm: float):
    """Temporal-coherence envelope ``E_t = exp[-0.5 (pi lambda Delta)^2 k^4]``.

    Parameters
    ----------
    k : array_like
        Spatial frequency magnitude in 1/nm.
    voltage_kv : float
        Accelerating voltage in kV.
    focal_spread_nm : float
        Focal spread Delta in nm (typically 2-6 nm); 0 gives 1 everywhere.

    Returns
    -------
    numpy.ndarray
        Envelope (0-1], float64.
    """
    if focal_spread_nm < 0:
        raise ValueError(f"focal_spread_nm must be >= 0, got {focal_spread_nm!r}.")
    k = np.asarray(k, dtype=np.float64)
    return np.exp(-_temporal_exponent(k * k, voltage_kv, focal_spread_nm))


def spatial_envelope(
    k, *, voltage_kv: float, cs_mm: float, defocus_nm: float, convergence_mrad: float
):
    """Spatial-coherence envelope ``E_s = exp[-(pi alpha / lambda)^2 (Cs lambda^3 k^3 - df lambda k)^2]``.

    Parameters
    ----------
    k : array_like
        Spatial frequency magnitude in 1/nm.
    voltage_kv : float
        Accelerating voltage in kV.
    cs_mm : float
        Spherical aberration in mm.
    defocus_nm : float
        Defocus in nm (> 0 underfocus).
    convergence_mrad : float
        Illumination semi-angle alpha in mrad (typically 0.1-0.5); 0 gives 1 everywhere.

    Returns
    -------
    numpy.ndarray
        Envelope (0-1], float64.
    """
    if convergence_mrad < 0:
        raise ValueError(f"convergence_mrad must be >= 0, got {convergence_mrad!r}.")
    k = np.asarray(k, dtype=np.float64)
    return np.exp(-_spatial_exponent(k * k, voltage_kv, cs_mm, defocus_nm, convergence_mrad))


def _info_exponent(k2, info_limit_nm):
    return 2.0 * float(info_limit_nm) ** 2 * k2


def info_limit_envelope(k, *, info_limit_nm: float | None):
    """Gaussian information-limit envelope ``exp[-2 (k d)^2]`` (e^-2 at k = 1/d).

    Used for the extra damping by the gas in environmental TEM (physics.md section 8: about
    0.12 nm at 4 mbar N2).

    Parameters
    ----------
    k : array_like
        Spatial frequency magnitude in 1/nm.
    info_limit_nm : float or None
        Information limit d in nm; None or 0 gives 1 everywhere.

    Returns
    -------
    numpy.ndarray
        Envelope (0-1], float64.
    """
    k = np.asarray(k, dtype=np.float64)
    if info_limit_nm is None or info_limit_nm == 0:
        return np.ones_like(k)
    if info_limit_nm < 0:
        raise ValueError(f"info_limit_nm must be None or >= 0, got {info_limit_nm!r}.")
    return np.exp(-_info_exponent(k * k, info_limit_nm))


def transfer_function(
    shape,
    pixel_size_nm: float,
    *,
    voltage_kv: float,
    defocus_nm: float,
    cs_mm: float,
    astigmatism_nm: float = 0.0,
    astigmatism_angle_deg: float = 0.0,
    focal_spread_nm: float = 0.0,
    convergence_mrad: float = 0.0,
    aperture_mrad: float | None = None,
    info_limit_nm: float | None = None,
) -> np.ndarray:
    """Objective-lens transfer function on an FFT grid.

    ``H = A(k lambda <= alpha_ap) * exp(-i chi) * E_t * E_s * E_info``. The envelopes use the
    mean defocus (astigmatism is neglected in E_s).

    Parameters
    ----------
    shape : tuple of int
        Grid shape ``(ny, nx)`` in pixels.
    pixel_size_nm : float
        Pixel size in nm.
    voltage_kv : float
        Accelerating voltage in kV.
    defocus_nm : float
        Defocus in nm (> 0 underfocus).
    cs_mm : float
        Spherical aberration in mm.
    astigmatism_nm, astigmatism_angle_deg : float, optional
        Two-fold astigmatism (nm) and its direction (degrees), see :func:`aberration_chi`.
    focal_spread_nm : float, optional
        Focal spread in nm (temporal envelope); 0 disables it.
    convergence_mrad : float, optional
        Illumination semi-angle in mrad (spatial envelope); 0 disables it.
    aperture_mrad : float or None, optional
        Objective-aperture semi-angle in mrad (hard cut-off at ``k = alpha / lambda``); None for
        no aperture.
    info_limit_nm : float or None, optional
        Extra Gaussian information limit in nm (:func:`info_limit_envelope`); None disables it.

    Returns
    -------
    numpy.ndarray
        complex64 array of ``shape`` in FFT order; ``H[0, 0] = 1``.
    """
    ky, kx = fourier_grid(shape, pixel_size_nm)
    if focal_spread_nm < 0:
        raise ValueError(f"focal_spread_nm must be >= 0, got {focal_spread_nm!r}.")
    if convergence_mrad < 0:
        raise ValueError(f"convergence_mrad must be >= 0, got {convergence_mrad!r}.")
    lam = electron_wavelength_nm(voltage_kv)
    k2 = ky * ky + kx * kx
    chi = aberration_chi(
        ky, kx, voltage_kv=voltage_kv, defocus_nm=defocus_nm, cs_mm=cs_mm,
        astigmatism_nm=astigmatism_nm, astigmatism_angle_deg=astigmatism_angle_deg,
    )
    # reduce in float64, then evaluate cos/sin in float32 (fast, error < 1e-6 rad)
    chi = np.remainder(chi, 2.0 * np.pi).astype(np.float32)
    exponent = None
    if focal_spread_nm:
        exponent = _temporal_exponent(k2, voltage_kv, focal_spread_nm)
    if convergence_mrad:
        term = _spatial_exponent(k2, voltage_kv, cs_mm, defocus_nm, convergence_mrad)
        exponent = term if exponent is None else exponent + term
    if info_limit_nm:
        if info_limit_nm < 0:
            raise ValueError(f"info_limit_nm must be None or >= 0, got {info_limit_nm!r}.")
        term = _info_exponent(k2, info_limit_nm)
        exponent = term if exponent is None else exponent + term
    amplitude = None
    if exponent is not None:
        amplitude = np.exp(-exponent).astype(np.float32)
    if aperture_mrad is not None:
        k_ap = _check_positive(aperture_mrad, "aperture_mrad") * 1e-3 / lam
        inside = (k2 <= k_ap * k_ap).astype(np.float32)
        amplitude = inside if amplitude is None else amplitude * inside
    out = np.empty(chi.shape, dtype=np.complex64)
    out.real = np.cos(chi)
    out.imag = -np.sin(chi)
    if amplitude is not None:
        out *= amplitude
    return out


def ctf_curve(
    k_per_nm,
    *,
    voltage_kv: float,
    defocus_nm: float,
    cs_mm: float,
    focal_spread_nm: float = 0.0,
    convergence_mrad: float = 0.0,
) -> dict:
    """One-dimensional phase-contrast transfer function for plotting.

    Parameters
    ----------
    k_per_nm : array_like
        Spatial frequencies in 1/nm.
    voltage_kv : float
        Accelerating voltage in kV.
    defocus_nm : float
        Defocus in nm (> 0 underfocus).
    cs_mm : float
        Spherical aberration in mm.
    focal_spread_nm : float, optional
        Focal spread in nm.
    convergence_mrad : float, optional
        Illumination semi-angle in mrad.

    Returns
    -------
    dict
        ``"k_per_nm"``, ``"chi"`` (rad), ``"sin_chi"``, ``"envelope"`` (E_t E_s) and ``"ctf"``
        ``= -sin(chi) * envelope``. With this sign a positive ctf shows positive phase (atoms)
        dark, as in the Scherzer passband.
    """
    k = np.asarray(k_per_nm, dtype=np.float64)
    chi = aberration_chi(np.zeros_like(k), k, voltage_kv=voltage_kv, defocus_nm=defocus_nm,
                         cs_mm=cs_mm)
    envelope = temporal_envelope(k, voltage_kv=voltage_kv, focal_spread_nm=focal_spread_nm)
    envelope = envelope * spatial_envelope(k, voltage_kv=voltage_kv, cs_mm=cs_mm,
                                           defocus_nm=defocus_nm,
                                           convergence_mrad=convergence_mrad)
    sin_chi = np.sin(chi)
    return {"k_per_nm": k, "chi": chi, "sin_chi": sin_chi, "envelope": envelope,
            "ctf": -sin_chi * envelope}


def ctf_zeros_per_nm(
    *, voltage_kv: float, defocus_nm: float, cs_mm: float, k_max_per_nm: float
) -> np.ndarray:
    """Spatial frequencies k > 0 where sin(chi) = 0 (Thon-ring minima).

    Solves ``chi(k) = n pi`` analytically in ``u = k^2`` (a quadratic) for every integer n that
    chi reaches on ``0 < k <= k_max`` (both branches of the parabola, so underfocus gives the
    zeros before and after the minimum of chi). Astigmatism is not included.

    Parameters
    ----------
    voltage_kv : float
        Accelerating voltage in kV.
    defocus_nm : float
        Defocus in nm (> 0 underfocus).
    cs_mm : float
        Spherical aberration in mm.
    k_max_per_nm : float
        Largest frequency of interest in 1/nm.

    Returns
    -------
    numpy.ndarray
        Sorted zeros in 1/nm (float64); empty if chi is identically 0 (no defocus, no C_s).
    """
    k_max = _check_positive(k_max_per_nm, "k_max_per_nm")
    lam = electron_wavelength_nm(voltage_kv)
    # chi / pi = a u^2 + b u with u = k^2
    a = 0.5 * float(cs_mm) * 1e6 * lam**3
    b = -lam * float(defocus_nm)
    u_max = k_max * k_max
    candidates = [0.0, u_max]
    if a != 0 and 0 < -b / (2 * a) < u_max:
        candidates.append(-b / (2 * a))
    values = [a * u * u + b * u for u in candidates]
    n_lo, n_hi = math.ceil(min(values) - 1e-12), math.floor(max(values) + 1e-12)
    roots = []
    for n in range(n_lo, n_hi + 1):
        if a == 0:
            if b == 0:
                return np.zeros(0)
            sols = [n / b]
        else:
            disc = b * b + 4 * a * n
            if disc < 0:
                continue
            sq = math.sqrt(disc)
            sols = [(-b - sq) / (2 * a), (-b + sq) / (2 * a)]
        roots.extend(u for u in sols if 0 < u <= u_max * (1 + 1e-12))
    k = np.sqrt(np.unique(np.round(np.asarray(roots, dtype=np.float64), 12)))
    return np.sort(k)


def image_intensity(
    exit_wave, pixel_size_nm: float, *, transfer: np.ndarray | None = None, **transfer_kwargs
) -> np.ndarray:
    """Bright-field image intensity ``|IFFT(FFT(psi) * H)|^2``.

    Parameters
    ----------
    exit_wave : array_like
        Complex exit wave psi, 2-D, normalised so that vacuum is 1.
    pixel_size_nm : float
        Pixel size of ``exit_wave`` in nm.
    transfer : numpy.ndarray, optional
        A precomputed :func:`transfer_function` of the same shape (saves its cost when many
        images share the optics). Do not pass ``transfer_kwargs`` with it.
    **transfer_kwargs
        Keyword arguments of :func:`transfer_function` (``voltage_kv``, ``defocus_nm``,
        ``cs_mm``, ...).

    Returns
    -------
    numpy.ndarray
        Intensity, float32, same shape (vacuum = 1).
    """
    psi = np.asarray(exit_wave)
    if psi.ndim != 2:
        raise ValueError(f"exit_wave must be a 2-D array, got shape {psi.shape}.")
    psi = psi.astype(np.complex64, copy=False)
    if transfer is None:
        transfer = transfer_function(psi.shape, pixel_size_nm, **transfer_kwargs)
    else:
        if transfer_kwargs:
            raise TypeError(
                "Pass either transfer= or the transfer_function keyword arguments, not both "
                f"(got transfer and {sorted(transfer_kwargs)})."
            )
        if transfer.shape != psi.shape:
            raise ValueError(
                f"transfer has shape {transfer.shape} but exit_wave has shape {psi.shape}; "
                "compute it with transfer_function(exit_wave.shape, ...)."
            )
    spectrum = scipy.fft.fft2(psi, workers=-1)
    spectrum *= transfer
    wave = scipy.fft.ifft2(spectrum, workers=-1, overwrite_x=True)
    return (wave.real * wave.real + wave.imag * wave.imag).astype(np.float32, copy=False)


def fourier_crop(image, out_shape) -> np.ndarray:
    """Anti-aliased down-sampling by cropping the centred spectrum.

    Keeps the frequencies below the new Nyquist frequency (the new Nyquist row/column itself is
    set to zero for even output sizes so the result stays symmetric) and rescales so that the
    mean is preserved. Use it to go from the 2x oversampled render grid to the output grid; the
    output pixel size is ``pixel_size_nm * in_shape / out_shape``.

    Parameters
    ----------
    image : array_like
        Real 2-D image.
    out_shape : tuple of int
        Output shape ``(ny, nx)`` in pixels, each <= the input size.

    Returns
    -------
    numpy.ndarray
        float32 image of ``out_shape``.
    """
    img = np.asarray(image)
    if img.ndim != 2 or np.iscomplexobj(img):
        raise ValueError(f"image must be a real 2-D array, got shape {img.shape}, "
                         f"dtype {img.dtype}.")
    ny_in, nx_in = img.shape
    ny, nx = _check_shape(out_shape)
    if ny > ny_in or nx > nx_in:
        raise ValueError(
            f"out_shape {(ny, nx)} is larger than the image {img.shape}; fourier_crop only "
            "down-samples."
        )
    img = img.astype(np.float32, copy=False)
    if (ny, nx) == img.shape:
        return img.copy()
    spec = scipy.fft.rfft2(img, workers=-1)
    out = np.zeros((ny, nx // 2 + 1), dtype=spec.dtype)
    top = (ny + 1) // 2
    bottom = ny // 2
    ncol = nx // 2 + 1
    out[:top] = spec[:top, :ncol]
    if bottom:
        out[ny - bottom:] = spec[ny_in - bottom:, :ncol]
    if ny < ny_in and ny % 2 == 0:
        out[ny // 2] = 0
    if nx < nx_in and nx % 2 == 0:
        out[:, nx // 2] = 0
    out *= (ny * nx) / (ny_in * nx_in)
    return scipy.fft.irfft2(out, s=(ny, nx), workers=-1).astype(np.float32, copy=False)
