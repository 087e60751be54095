"""Amorphous carbon support film: projected phase of random carbon atoms plus an undulation.

Model (physics.md section 4): carbon atoms at a number density of 0.1 atoms/Å^3 placed at
random (Poisson) through a film of thickness t, each adding an integrated phase of
0.078 rad Å^2 at 300 kV (abTEM / Lobato potential; scaled with the interaction constant for
other voltages), convolved with a Gaussian atom profile; plus a gentle long-range 1/k^beta
undulation of the film.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft

from .optics import _check_positive, _check_shape, fourier_grid, interaction_constant

__all__ = ["amorphous_carbon_phase", "CARBON_DENSITY_PER_A3", "CARBON_PHASE_RAD_A2_300KV"]

#: number density of amorphous carbon, atoms / Å^3 (about 2 g/cm^3)
CARBON_DENSITY_PER_A3 = 0.1
#: integrated phase of one carbon atom at 300 kV, rad Å^2 (abTEM, Lobato potential)
CARBON_PHASE_RAD_A2_300KV = 0.078
#: Gaussian atom width (nm) that reproduces the phase standard deviations of physics.md
#: (0.074 / 0.116 / 0.158 rad for 2 / 5 / 10 nm of carbon at 0.05 nm sampling)
DEFAULT_ATOM_SIGMA_NM = 0.043
#: above this many atoms ``method="auto"`` samples per-pixel counts (bounded memory)
_MAX_SPLAT_ATOMS = 4_000_000


def _half_spectrum_weights(nx: int) -> np.ndarray:
    """Multiplicity of each rfft column in the full spectrum (for Parseval sums)."""
    w = np.full(nx // 2 + 1, 2.0)
    w[0] = 1.0
    if nx % 2 == 0:
        w[-1] = 1.0
    return w


def _splat_atoms(shape, n_atoms: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform random atom positions splatted bilinearly (periodic) onto the pixel grid."""
    ny, nx = shape
    y = rng.uniform(0.0, ny, size=n_atoms)
    x = rng.uniform(0.0, nx, size=n_atoms)
    y0 = np.floor(y).astype(np.int64)
    x0 = np.floor(x).astype(np.int64)
    fy = y - y0
    fx = x - x0
    y0 %= ny
    x0 %= nx
    y1 = (y0 + 1) % ny
    x1 = (x0 + 1) % nx
    size = ny * nx
    counts = np.bincount(y0 * nx + x0, weights=(1 - fy) * (1 - fx), minlength=size)
    counts += np.bincount(y0 * nx + x1, weights=(1 - fy) * fx, minlength=size)
    counts += np.bincount(y1 * nx + x0, weights=fy * (1 - fx), minlength=size)
    counts += np.bincount(y1 * nx + x1, weights=fy * fx, minlength=size)
    return counts.reshape(shape).astype(np.float32)


def amorphous_carbon_phase(
    shape,
    pixel_size_nm: float,
    *,
    thickness_nm: float,
    voltage_kv: float,
    rng: np.random.Generator,
    undulation_beta: float = 1.5,
    undulation_rad: float = 0.05,
    granularity_rad: float = 0.0,
    grain_nm: float = 1.0,
    atom_sigma_nm: float = DEFAULT_ATOM_SIGMA_NM,
    method: str = "auto",
) -> np.ndarray:
    """Projected phase of an amorphous carbon film.

    The film is periodic (FFT-based), so tiles join seamlessly. Its mean phase is
    ``0.1 atoms/Å^3 * t * 0.078 rad Å^2 = 0.078 rad per nm`` of thickness at 300 kV, and the atom
    contribution has standard deviation ``sqrt(n c^2 / (4 pi s^2))`` for areal density n,
    phase per atom c and atom width s (Campbell's theorem): about 0.074 / 0.116 / 0.158 rad for
    2 / 5 / 10 nm with the default ``atom_sigma_nm``, independent of the pixel size as long as
    the pixel is not much larger than the atom.

    Parameters
    ----------
    shape : tuple of int
        Output shape ``(ny, nx)`` in pixels.
    pixel_size_nm : float
        Pixel size in nm.
    thickness_nm : float
        Film thickness in nm (0 gives a zero phase).
    voltage_kv : float
        Accelerating voltage in kV (the phase scales with the interaction constant).
    rng : numpy.random.Generator
        Random generator (``numpy.random.default_rng(seed)``).
    undulation_beta : float, optional
        Exponent of the undulation amplitude spectrum ``|U(k)| ~ 1/k^beta`` (1-2).
    undulation_rad : float, optional
        Expected root-mean-square phase of the undulation in rad (0 disables it). Its
        spectrum is steep, so most of it sits at the scale of the field of view.
    granularity_rad : float, optional
        Root-mean-square phase in rad of a granular density variation of the film at the
        ``grain_nm`` scale (Gaussian random field; 0 disables it). Real low-magnification
        supports look mottled at the scale of a few nm: clustered amorphous carbon,
        contamination and thickness variation, which the CTF at um defocus turns into
        strong intensity granularity. Single-atom speckle alone averages out at 0.1-1 nm
        pixels.
    grain_nm : float, optional
        Correlation length (standard deviation of the Gaussian filter) of that field, nm.
    atom_sigma_nm : float, optional
        Standard deviation of the Gaussian atom profile in nm. The default 0.043 nm is
        calibrated on the physics.md standard deviations (with 0.03 nm they would be about 45 %
        higher, because the real Lobato carbon potential is not a narrow Gaussian).
    method : {"auto", "atoms", "counts"}, optional
        ``"atoms"`` draws Poisson atom positions and splats them bilinearly (the splatting
        blur is compensated in Fourier space); ``"counts"`` draws
        a Poisson number of atoms per pixel directly (statistically equivalent, fast for many
        atoms per pixel, e.g. 1 nm/px and 20 nm of carbon). ``"auto"`` uses atoms below one
        atom per pixel on average (and at most 4 million atoms), counts otherwise.

    Returns
    -------
    numpy.ndarray
        Phase in rad, float32, ``shape``.
    """
    ny, nx = _check_shape(shape)
    p_nm = _check_positive(pixel_size_nm, "pixel_size_nm")
    thickness_nm = float(thickness_nm)
    if not math.isfinite(thickness_nm) or thickness_nm < 0:
        raise ValueError(f"thickness_nm must be >= 0, got {thickness_nm!r}.")
    if granularity_rad < 0:
        raise ValueError(f"granularity_rad must be >= 0, got {granularity_rad!r}.")
    grain_nm = _check_positive(grain_nm, "grain_nm")
    if undulation_rad < 0:
        raise ValueError(f"undulation_rad must be >= 0, got {undulation_rad!r}.")
    atom_sigma_nm = _check_positive(atom_sigma_nm, "atom_sigma_nm")
    if method not in ("auto", "atoms", "counts"):
        raise ValueError(f"method must be 'auto', 'atoms' or 'counts', got {method!r}.")
    if not isinstance(rng, np.random.Generator):
        raise TypeError("rng must be a numpy.random.Generator, e.g. numpy.random.default_rng(0).")
    if thickness_nm == 0:
        return np.zeros((ny, nx), dtype=np.float32)

    pixel_area_a2 = (p_nm * 10.0) ** 2
    atoms_per_a2 = CARBON_DENSITY_PER_A3 * thickness_nm * 10.0
    atoms_per_pixel = atoms_per_a2 * pixel_area_a2
    phase_per_atom = CARBON_PHASE_RAD_A2_300KV * interaction_constant(voltage_kv) / (
        interaction_constant(300.0)
    )
    if method == "auto":
        few = atoms_per_pixel < 1.0 and atoms_per_pixel * ny * nx <= _MAX_SPLAT_ATOMS
        method = "atoms" if few else "counts"
    if method == "atoms":
        n_atoms = int(rng.poisson(atoms_per_pixel * ny * nx))
        counts = _splat_atoms((ny, nx), n_atoms, rng)
    else:
        counts = rng.poisson(atoms_per_pixel, size=(ny, nx)).astype(np.float32)
    counts *= np.float32(phase_per_atom / pixel_area_a2)

    ky, kx = fourier_grid((ny, nx), p_nm, rfft=True)
    k2 = ky * ky + kx * kx
    spectrum = scipy.fft.rfft2(counts, workers=-1)
    gaussian = np.exp(-2.0 * np.pi**2 * atom_sigma_nm**2 * k2)
    if method == "atoms":
        # undo the mean power loss of bilinear splatting, (2 + cos 2 pi f) / 3 per axis
        # (f in cycles/pixel), so both methods give the same spectrum and standard deviation
        fy = np.fft.fftfreq(ny)[:, None]
        fx = np.fft.rfftfreq(nx)[None, :]
        gaussian /= np.sqrt((2.0 + np.cos(2 * np.pi * fy)) * (2.0 + np.cos(2 * np.pi * fx)) / 9.0)
    spectrum *= gaussian.astype(np.float32)
    if undulation_rad > 0:
        amp = np.zeros_like(k2)
        np.power(k2, -0.5 * float(undulation_beta), out=amp, where=k2 > 0)
        mean_square = float(np.sum(amp**2 * _half_spectrum_weights(nx)[None, :])) / (ny * nx)
        amp *= undulation_rad / math.sqrt(mean_square)
        white = rng.standard_normal((ny, nx), dtype=np.float32)
        spectrum += scipy.fft.rfft2(white, workers=-1) * amp.astype(np.float32)
    if granularity_rad > 0:
        amp = np.exp(-2.0 * np.pi**2 * grain_nm**2 * k2)
        amp[0, 0] = 0.0
        mean_square = float(np.sum(amp**2 * _half_spectrum_weights(nx)[None, :])) / (ny * nx)
        amp *= granularity_rad / math.sqrt(mean_square)
        white = rng.standard_normal((ny, nx), dtype=np.float32)
        spectrum += scipy.fft.rfft2(white, workers=-1) * amp.astype(np.float32)
    return scipy.fft.irfft2(spectrum, s=(ny, nx), workers=-1).astype(np.float32, copy=False)
