"""Simulate one (E-)TEM / HRTEM micrograph with exact ground truth.

Pipeline (``docs/physics.md``), on the ``oversample`` x finer render grid:

1. particles placed and rendered as projected phase (:mod:`.specimen`), plus an amorphous
   carbon support (:func:`.support.amorphous_carbon_phase`);
2. exit wave ``psi = exp[(i - kappa) phi]`` (``kappa = absorption``), times the diffraction
   contrast attenuation of crystalline particles at low magnification
   (:func:`.specimen.render_diffraction_attenuation`);
3. image ``|psi (x) h|^2`` with the objective-lens transfer function, including the
   environmental gas information limit (:func:`.optics.image_intensity`);
4. Fourier crop to the output grid (anti-aliasing, :func:`.optics.fourier_crop`);
5. drift / jitter blur, gas scattering (contrast loss), Poisson shot noise and the detector
   MTF (:mod:`.detector`).

The true label map is computed from the analytic thickness on the output grid and the
particle table with :func:`etem_helpers.measure.measure_particles`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .._version import __version__
from ..measure import measure_particles
from . import detector, optics
from .params import SimulationParams, d111_nm
from .specimen import (
    Particle,
    particle_attributes,
    place_particles,
    render_diffraction_attenuation,
    render_labels,
    render_phase,
)
from .support import amorphous_carbon_phase

__all__ = [
    "SimulatedMicrograph",
    "simulate_micrograph",
    "simulate_from_particles",
    "lattice_transferred",
    "ground_truth_table",
]


@dataclass
class SimulatedMicrograph:
    """A simulated micrograph and its ground truth.

    Attributes
    ----------
    image : numpy.ndarray
        float32 image: detector counts per pixel (after shot noise and the detector MTF), or
        the normalised intensity (vacuum = 1) when ``dose_e_per_a2`` is None.
    labels : numpy.ndarray
        int32 instance labels, 0 background, ids 1..N.
    particles : pandas.DataFrame
        Ground-truth table: the contract columns measured from ``labels`` with
        :func:`etem_helpers.measure.measure_particles` (``confidence`` = 1,
        ``fault_probability`` = 1.0 / 0.0 from ``fault_visible`` where the lattice is resolved,
        NaN elsewhere, ``has_fault`` = the structure has a twin or stacking fault) plus
        ``kind``, ``shape``, ``material``, ``fault_type``, ``fault_visible``, ``on_zone``,
        ``lattice_angle_deg``, ``true_center_y_px``, ``true_center_x_px``, ``true_size_nm``.
    metadata : dict
        ``pixel_size_nm``, ``voltage_kv``, ``cs_mm``, ``defocus_nm`` (the value used),
        ``dose_e_per_a2``, ``gas_fraction``, ``seed``, ``regime``, ``n_particles``,
        ``image_units``, ``generator_version`` and ``params`` (all fields).
    clean : numpy.ndarray
        float32 noise-free intensity (vacuum = 1) after optics, drift and gas, before the shot
        noise and the detector: for teaching.
    params : SimulationParams
        The parameters used.
    objects : list of Particle
        The rendered objects; ``objects[i - 1]`` has label id ``i``.
    """

    image: np.ndarray
    labels: np.ndarray
    particles: pd.DataFrame
    metadata: dict
    clean: np.ndarray
    params: SimulationParams
    objects: list = field(default_factory=list)


def lattice_transferred(params: SimulationParams) -> bool:
    """Whether {111} fringes are sampled and transferred by the microscope.

    True when the regime is HRTEM, ``pixel_size_nm < d111 / 2.2`` (inside Nyquist with a
    margin), 1/d111 lies inside the objective aperture and the product of the temporal,
    spatial and gas envelopes at 1/d111 is at least e^-2 (inside the information limit).

    Parameters
    ----------
    params : SimulationParams

    Returns
    -------
    bool
    """
    if not params.lattice_resolved:
        return False
    k = 1.0 / d111_nm(params.material)
    defocus = params.effective_defocus_nm()
    envelope = float(optics.temporal_envelope(k, voltage_kv=params.voltage_kv,
                                              focal_spread_nm=params.focal_spread_nm))
    envelope *= float(optics.spatial_envelope(k, voltage_kv=params.voltage_kv,
                                              cs_mm=params.cs_mm, defocus_nm=defocus,
                                              convergence_mrad=params.convergence_mrad))
    envelope *= float(optics.info_limit_envelope(k, info_limit_nm=params.gas_info_limit_nm))
    if params.aperture_mrad is not None:
        k_aperture = params.aperture_mrad * 1e-3 / optics.electron_wavelength_nm(params.voltage_kv)
        if k > k_aperture:
            return False
    return envelope >= math.exp(-2.0)


def ground_truth_table(
    labels: np.ndarray, objects: list[Particle], params: SimulationParams
) -> pd.DataFrame:
    """The ground-truth particle table of a simulated label map.

    Parameters
    ----------
    labels : numpy.ndarray
        int32 labels with ids 1..N; id ``i`` is ``objects[i - 1]``.
    objects : list of Particle
        The rendered objects.
    params : SimulationParams
        Imaging parameters (pixel size, optics for :func:`lattice_transferred`).

    Returns
    -------
    pandas.DataFrame
        See :class:`SimulatedMicrograph` ``particles``.
    """
    table = measure_particles(labels, params.pixel_size_nm)
    if len(table) != len(objects):
        raise RuntimeError(
            f"label map has {len(table)} ids but {len(objects)} objects were rendered; "
            "this is a bug in the simulator."
        )
    attrs = particle_attributes(objects, params)
    crystalline = np.array([p.crystalline for p in objects], dtype=bool)
    resolved = crystalline & lattice_transferred(params)
    has_fault = attrs["has_fault"].to_numpy(dtype=bool)
    on_zone = attrs["on_zone"].to_numpy(dtype=bool)
    fault_visible = has_fault & on_zone & resolved
    table["confidence"] = 1.0
    table["fault_probability"] = np.where(resolved, fault_visible.astype(np.float64), np.nan)
    table["has_fault"] = pd.array(has_fault, dtype="boolean")
    table["fault_visible"] = fault_visible
    for column in attrs.columns:
        if column != "has_fault":
            table[column] = attrs[column].to_numpy()
    return table


def _exit_wave(phase: np.ndarray, absorption: float) -> np.ndarray:
    psi = np.empty(phase.shape, dtype=np.complex64)
    amplitude = np.exp(np.float32(-absorption) * phase)
    psi.real = amplitude * np.cos(phase)
    psi.imag = amplitude * np.sin(phase)
    return psi


def simulate_from_particles(
    params: SimulationParams, particles: list[Particle], seed: int
) -> SimulatedMicrograph:
    """Simulate a micrograph of a given list of particles (placement skipped).

    Useful for tests and teaching (a single twinned particle, a chosen fault, ...).

    Parameters
    ----------
    params : SimulationParams
        Imaging parameters (``n_particles``, ``kinds`` etc. are ignored).
    particles : list of Particle
        Objects in occlusion order (later on top), world coordinates in nm.
    seed : int
        Seed of the carbon film, aggregate texture and shot noise.

    Returns
    -------
    SimulatedMicrograph
    """
    streams = np.random.SeedSequence(_check_seed(seed)).spawn(4)
    return _simulate(params, particles, seed=seed, streams=streams[1:])


def simulate_micrograph(params: SimulationParams, seed: int) -> SimulatedMicrograph:
    """Simulate one micrograph with its ground truth.

    Parameters
    ----------
    params : SimulationParams
        All settings (see :class:`SimulationParams`).
    seed : int
        Non-negative integer; the same (params, seed) gives a bit-identical result.

    Returns
    -------
    SimulatedMicrograph
        ``image`` (float32 counts, or normalised intensity when the dose is None),
        ``labels`` (int32), ``particles`` (ground-truth table), ``metadata``, ``clean``.

    Examples
    --------
    >>> from etem_helpers.simulate import SimulationParams, simulate_micrograph
    >>> sim = simulate_micrograph(SimulationParams(image_size_px=128, n_particles=2), seed=0)
    >>> sim.image.shape, sim.labels.dtype.name
    ((128, 128), 'int32')
    """
    if not isinstance(params, SimulationParams):
        raise TypeError(
            f"params must be a SimulationParams, got {type(params).__name__}; build one with "
            "SimulationParams(...) or sample_params(rng, regime)."
        )
    streams = np.random.SeedSequence(_check_seed(seed)).spawn(4)
    particles = place_particles(params, np.random.default_rng(streams[0]))
    return _simulate(params, particles, seed=seed, streams=streams[1:])


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    return int(seed)


def _simulate(params, particles, *, seed, streams) -> SimulatedMicrograph:
    rng_specimen, rng_carbon, rng_noise = (np.random.default_rng(s) for s in streams)
    n_out = params.image_size_px
    labels, kept = render_labels(particles, params)
    objects = [particles[i] for i in kept]
    phase = render_phase(objects, params, rng_specimen)
    if params.carbon_thickness_nm > 0:
        phase += amorphous_carbon_phase(
            phase.shape, params.render_pixel_size_nm, thickness_nm=params.carbon_thickness_nm,
            voltage_kv=params.voltage_kv, rng=rng_carbon,
            undulation_rad=params.support_undulation_rad,
            undulation_beta=params.support_undulation_beta,
            granularity_rad=params.support_granularity_rad, grain_nm=params.support_grain_nm,
        )
    psi = _exit_wave(phase, params.absorption)
    del phase
    attenuation = render_diffraction_attenuation(objects, params, rng_specimen)
    if attenuation is not None:
        psi *= np.exp(-attenuation)
    defocus = params.effective_defocus_nm()
    intensity = optics.image_intensity(
        psi, params.render_pixel_size_nm,
        voltage_kv=params.voltage_kv, defocus_nm=defocus, cs_mm=params.cs_mm,
        astigmatism_nm=params.astigmatism_nm,
        astigmatism_angle_deg=params.astigmatism_angle_deg,
        focal_spread_nm=params.focal_spread_nm, convergence_mrad=params.convergence_mrad,
        aperture_mrad=params.aperture_mrad, info_limit_nm=params.gas_info_limit_nm,
    )
    del psi
    intensity = optics.fourier_crop(intensity, (n_out, n_out))
    intensity = detector.apply_motion_blur(
        intensity, params.pixel_size_nm, drift_nm=params.drift_nm,
        drift_angle_deg=params.drift_angle_deg, jitter_nm=params.jitter_nm,
    )
    if params.gas_fraction > 0:
        intensity = detector.apply_gas_scattering(intensity, gas_fraction=params.gas_fraction)
    clean = intensity
    if params.dose_e_per_a2 is None:
        image = clean.copy()
        units = "normalised intensity (vacuum = 1)"
    else:
        counts = detector.shot_noise(clean, dose_e_per_a2=params.dose_e_per_a2,
                                     pixel_size_nm=params.pixel_size_nm, rng=rng_noise)
        mtf = detector.detector_mtf(counts.shape, c1=params.mtf_c1, c2=params.mtf_c2,
                                    c3=params.mtf_c3, c4=params.mtf_c4)
        image = detector.apply_detector_mtf(counts, mtf)
        units = "counts"
    table = ground_truth_table(labels, objects, params)
    metadata = {
        "pixel_size_nm": params.pixel_size_nm,
        "voltage_kv": params.voltage_kv,
        "cs_mm": params.cs_mm,
        "defocus_nm": defocus,
        "dose_e_per_a2": params.dose_e_per_a2,
        "gas_fraction": params.gas_fraction,
        "seed": int(seed),
        "regime": params.regime,
        "n_particles": int(len(table)),
        "image_units": units,
        "generator_version": __version__,
        "params": params.to_dict(),
    }
    return SimulatedMicrograph(image=image.astype(np.float32, copy=False), labels=labels,
                               particles=table, metadata=metadata,
                               clean=clean.astype(np.float32, copy=False), params=params,
                               objects=objects)
