"""Parameters of one simulated micrograph: a single validated dataclass.

:class:`SimulationParams` holds everything :func:`etem_helpers.simulate.simulate_micrograph`
needs (specimen, optics, detector, environment). Every field is checked on construction;
an out-of-range value raises :class:`ValueError` naming the field, its value, the allowed
range and what to do. :func:`sample_params` draws realistic randomised parameters for
training data; its distributions are documented in its docstring.

Ranges follow ``docs/physics.md`` (Kirkland conventions: ``defocus_nm > 0`` is
underfocus). Validation ranges are deliberately a little wider than the "typical" ranges
drawn by :func:`sample_params`, so that teaching notebooks can explore extreme settings
(e.g. large defocus for Fresnel fringes) without tripping the validator.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import ClassVar

import numpy as np

__all__ = [
    "REGIMES",
    "KINDS",
    "MATERIALS",
    "LATTICE_CONSTANT_NM",
    "SimulationParams",
    "sample_params",
    "d111_nm",
]

#: Imaging regimes: lattice-resolved HRTEM or mass-thickness low magnification.
REGIMES: tuple[str, ...] = ("hrtem", "lowmag")

#: Particle shapes the simulator can render.
KINDS: tuple[str, ...] = ("round", "faceted", "decahedral", "rod", "nanotube", "aggregate")

#: fcc lattice constants in nm (physics.md section 1).
LATTICE_CONSTANT_NM: dict[str, float] = {"Au": 0.4078, "Pt": 0.3924, "Pd": 0.3891, "Ag": 0.4086}

#: Supported particle materials.
MATERIALS: tuple[str, ...] = tuple(LATTICE_CONSTANT_NM)

# (low, high) validation ranges of the scalar fields, inclusive. Units in the field names.
_RANGES: dict[str, tuple[float, float]] = {
    "image_size_px": (64, 4096),
    "voltage_kv": (60.0, 300.0),
    "cs_mm": (-0.04, 2.0),
    "astigmatism_nm": (0.0, 50.0),
    "astigmatism_angle_deg": (-360.0, 360.0),
    "focal_spread_nm": (0.0, 20.0),
    "convergence_mrad": (0.0, 2.0),
    "aperture_mrad": (5.0, 100.0),
    "absorption": (0.0, 0.2),
    "carbon_thickness_nm": (0.0, 30.0),
    "dose_e_per_a2": (1.0, 10000.0),
    "drift_nm": (0.0, 10.0),
    "drift_angle_deg": (-360.0, 360.0),
    "jitter_nm": (0.0, 2.0),
    "gas_fraction": (0.0, 0.3),
    "gas_info_limit_nm": (0.05, 2.0),
    "mtf_c1": (0.5, 1.0),
    "mtf_c2": (0.0, 0.1),
    "mtf_c3": (0.05, 1.0),
    "mtf_c4": (1.0, 5.0),
    "n_particles": (0, 500),
    "fault_probability": (0.0, 1.0),
    "on_zone_probability": (0.0, 1.0),
    "touching_fraction": (0.0, 1.0),
    "edge_fraction": (0.0, 1.0),
    "atom_sigma_nm": (0.02, 0.06),
    "round_fraction": (0.0, 1.0),
    "outline_roughness": (0.0, 0.3),
    "edge_exponent": (0.5, 2.0),
    "edge_softness_nm": (0.0, 20.0),
    "interior_texture": (0.0, 1.0),
    "texture_length_nm": (0.05, 20.0),
    "support_undulation_rad": (0.0, 1.0),
    "support_undulation_beta": (0.5, 3.0),
    "support_granularity_rad": (0.0, 1.0),
    "support_grain_nm": (0.05, 20.0),
}

_PIXEL_RANGES: dict[str, tuple[float, float]] = {"hrtem": (0.01, 0.1), "lowmag": (0.1, 1.0)}
_DEFOCUS_RANGES: dict[str, tuple[float, float]] = {
    "hrtem": (-300.0, 300.0),
    "lowmag": (-20000.0, 20000.0),
}
_DIAMETER_RANGE = (1.0, 100.0)


def d111_nm(material: str) -> float:
    """Spacing of the {111} lattice planes, a/sqrt(3), in nm.

    Parameters
    ----------
    material : str
        One of :data:`MATERIALS`.

    Returns
    -------
    float
        d(111) in nm (Au: 0.2354 nm).
    """
    if material not in LATTICE_CONSTANT_NM:
        raise ValueError(f"material must be one of {MATERIALS}, got {material!r}.")
    return LATTICE_CONSTANT_NM[material] / math.sqrt(3.0)


def _range_error(name: str, value, low, high, advice: str = "") -> ValueError:
    msg = f"SimulationParams.{name}={value!r} is outside the allowed range [{low}, {high}]."
    if advice:
        msg += " " + advice
    else:
        msg += f" Choose a value between {low} and {high}."
    return ValueError(msg)


@dataclass(frozen=True)
class SimulationParams:
    """All settings of one simulated micrograph (validated on construction).

    Parameters
    ----------
    regime : {"hrtem", "lowmag"}
        ``"hrtem"``: lattice-resolved, atomic columns are rendered. ``"lowmag"``:
        mass-thickness contrast, particles rendered as mean inner potential x thickness
        (columns are never splatted there: they would alias into moire).
    image_size_px : int
        Output image side in pixels (square images), 64-4096.
    pixel_size_nm : float
        Output pixel size in nm. ``hrtem``: 0.01-0.1; ``lowmag``: 0.1-1. Lattice fringes
        of spacing d are only resolved when ``pixel_size_nm < d / 2.2``; otherwise particles
        get ``fault_visible = False`` (not an error).
    oversample : int
        Render-grid oversampling factor, 1 or 2 (default 2: render at ``pixel_size_nm / 2``
        and Fourier-crop, which anti-aliases the lattice and the exit wave).
    voltage_kv : float
        Acceleration voltage in kV, 60-300 (common: 80, 200, 300).
    cs_mm : float
        Spherical aberration in mm, -0.04 to 2 (corrected microscopes: -0.04 to 0.04).
    defocus_nm : float or None
        Defocus in nm, Kirkland convention (> 0 underfocus). None = Scherzer defocus
        sqrt(1.5 C_s lambda). Allowed: ``hrtem`` -300 to 300 nm, ``lowmag`` -20000 to 20000 nm
        (low-magnification bright field is often taken several um from focus).
    astigmatism_nm : float
        Two-fold astigmatism amplitude in nm, 0-50 (typical 0-5).
    astigmatism_angle_deg : float
        Azimuth of the astigmatism in degrees.
    focal_spread_nm : float
        Focal spread (temporal coherence) in nm, 0-20 (typical 2-6).
    convergence_mrad : float
        Illumination semi-angle in mrad, 0-2 (typical 0.1-0.5).
    aperture_mrad : float or None
        Objective aperture semi-angle in mrad, 5-100, or None for no aperture.
    absorption : float
        kappa in the exit wave exp[(i - kappa) phi], 0-0.2 (amplitude contrast).
    carbon_thickness_nm : float
        Amorphous carbon support thickness in nm, 0-30.
    dose_e_per_a2 : float or None
        Electron dose in e/A^2, 1-10000. None = noise-free (image is the normalised
        intensity, no shot noise, no detector MTF).
    drift_nm, drift_angle_deg : float
        Linear drift length during the exposure in nm (0-10) and its direction in degrees.
    jitter_nm : float
        Gaussian vibration amplitude (standard deviation) in nm, 0-2.
    gas_fraction : float
        Fraction of electrons scattered by the environmental gas, 0-0.3 (E-TEM).
    gas_info_limit_nm : float or None
        Extra information limit from the gas in nm (0.05-2; about 0.12 nm at 4 mbar N2),
        or None for none.
    mtf_c1, mtf_c2, mtf_c3, mtf_c4 : float
        Detector MTF parameters, MTF(q) = (c1 - c2) / (1 + (q / 2 c3)^c4) + c2 with q in
        units of Nyquist (c1 0.5-1, c2 0-0.1, c3 0.05-1, c4 1-5).
    material : {"Au", "Pt", "Pd", "Ag"}
        Metal of the crystalline particles (sets the lattice constant).
    n_particles : int
        Number of objects to place, 0-500 (fewer may be placed if they do not fit).
    diameter_range_nm : tuple of float
        (min, max) particle diameter in nm, within 1-100 and min <= max. For rods and
        nanotubes it is the width; for aggregates the overall size.
    diameter_distribution : {"log-uniform", "uniform"}
        Distribution of each object's diameter within ``diameter_range_nm``.
    kinds : tuple of str
        Shapes drawn uniformly for each object, from :data:`KINDS`.
    fault_probability : float
        Probability that a single-crystal particle (round, faceted, rod) has a twin or an
        intrinsic stacking fault (half each). Decahedra are always multiply twinned.
    on_zone_probability : float
        Probability that a crystalline particle is on the [110] zone axis.
    touching_fraction : float
        Fraction of objects placed in contact with a previously placed neighbour.
    edge_fraction : float
        Fraction of objects whose centre may lie near the edge, so that they are cut by it
        (flagged ``touches_border`` in the ground truth).
    atom_sigma_nm : float
        Standard deviation of the Gaussian atom (incl. thermal smearing) in nm, 0.02-0.06.
    round_fraction : float or None
        Probability (0-1) that an object is ``"round"`` when ``kinds`` contains it (the
        others share the rest uniformly); None draws all ``kinds`` uniformly.
    outline_roughness : float
        Round particles: relative amplitude (0-0.3) of a random low-order (orders 2-5)
        Fourier perturbation of the outline radius, r(theta) = r0 [1 + sum a_m cos(m theta
        + phi_m)] with sum |a_m| <= ``outline_roughness``. Real particles are seldom perfect
        ellipses. The label map stays the exact analytic footprint. 0 = ellipses.
    edge_exponent : float
        Round particles: thickness profile ``t = T q^gamma`` with ``q = 1 - (r / R)^2``
        (0.5-2). 0.5 is an ellipsoid; larger values give thinner, softer edges (flattened,
        wetting or partly sintered particles). The footprint (t > 0) does not change.
    edge_softness_nm : float
        Low-magnification regime: standard deviation in nm (0-20) of a Gaussian that smooths
        the particles' projected potential (not the support), i.e. diffuse particle edges
        (surface roughness below the pixel size, thin wetting rims, sintering necks). The
        label map stays the sharp analytic footprint, which then sits at the middle of
        each blurred edge (the dividing surface of a diffuse interface, where a
        microscopist draws the outline). 0 = sharp edges; ignored in the HRTEM regime.
    interior_texture : float
        Relative standard deviation (0-1) of a smooth Gaussian random field that modulates
        the absorption of crystalline particles in the low-magnification regime: thickness
        variation and diffraction contrast of grains / orientations (regions near a Bragg
        condition scatter outside the aperture and look darker); see
        :func:`etem_helpers.simulate.specimen.render_diffraction_attenuation`.
        0 = uniform interiors.
    texture_length_nm : float
        Correlation length (Gaussian standard deviation) of that field in nm,
        roughly the grain size (0.05-20).
    support_undulation_rad : float
        Root-mean-square phase (rad, 0-1) of the long-range 1/k^beta undulation of the
        support film (thickness variation, contamination, bending).
    support_undulation_beta : float
        Exponent beta of the undulation amplitude spectrum (0.5-3).
    support_granularity_rad : float
        Root-mean-square phase (rad, 0-1) of a granular density variation of the support at
        the ``support_grain_nm`` scale (clustered amorphous carbon / contamination, which
        the CTF at large defocus turns into the mottled look of low-magnification images).
        0 = none.
    support_grain_nm : float
        Correlation length (Gaussian standard deviation, nm, 0.05-20) of that granularity.
    """

    #: How the particles are placed: "random" (sparse, :func:`~.specimen.place_particles`);
    #: the subclass :class:`~etem_helpers.simulate.dense.DenseSimulationParams` says "dense".
    packing: ClassVar[str] = "random"

    regime: str = "hrtem"
    image_size_px: int = 512
    pixel_size_nm: float = 0.05
    oversample: int = 2
    voltage_kv: float = 300.0
    cs_mm: float = 1.2
    defocus_nm: float | None = None
    astigmatism_nm: float = 0.0
    astigmatism_angle_deg: float = 0.0
    focal_spread_nm: float = 4.0
    convergence_mrad: float = 0.2
    aperture_mrad: float | None = None
    absorption: float = 0.08
    carbon_thickness_nm: float = 5.0
    dose_e_per_a2: float | None = 1000.0
    drift_nm: float = 0.0
    drift_angle_deg: float = 0.0
    jitter_nm: float = 0.0
    gas_fraction: float = 0.0
    gas_info_limit_nm: float | None = None
    mtf_c1: float = 0.95
    mtf_c2: float = 0.005
    mtf_c3: float = 0.35
    mtf_c4: float = 2.5
    material: str = "Au"
    n_particles: int = 5
    diameter_range_nm: tuple[float, float] = (3.0, 8.0)
    diameter_distribution: str = "log-uniform"
    kinds: tuple[str, ...] = ("round", "faceted", "decahedral")
    fault_probability: float = 0.3
    on_zone_probability: float = 0.7
    touching_fraction: float = 0.2
    edge_fraction: float = 0.1
    atom_sigma_nm: float = 0.035
    round_fraction: float | None = None
    outline_roughness: float = 0.0
    edge_exponent: float = 0.5
    edge_softness_nm: float = 0.0
    interior_texture: float = 0.0
    texture_length_nm: float = 1.0
    support_undulation_rad: float = 0.05
    support_undulation_beta: float = 1.5
    support_granularity_rad: float = 0.0
    support_grain_nm: float = 1.0

    def __post_init__(self) -> None:
        if self.regime not in REGIMES:
            raise ValueError(
                f"SimulationParams.regime={self.regime!r} is not supported; use one of {REGIMES}."
            )
        # Integers.
        for name in ("image_size_px", "n_particles", "oversample"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise ValueError(
                    f"SimulationParams.{name}={value!r} must be an integer; pass e.g. {name}=512."
                )
            object.__setattr__(self, name, int(value))
        if self.oversample not in (1, 2):
            raise ValueError(
                f"SimulationParams.oversample={self.oversample!r} must be 1 or 2 "
                "(2 = render at half the pixel size and Fourier-crop; recommended)."
            )
        # Optional floats.
        optional = ("defocus_nm", "aperture_mrad", "dose_e_per_a2", "gas_info_limit_nm",
                    "round_fraction")
        # Plain scalar ranges.
        for name, (low, high) in _RANGES.items():
            value = getattr(self, name)
            if value is None and name in optional:
                continue
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise ValueError(
                    f"SimulationParams.{name}={value!r} must be a number in [{low}, {high}]."
                ) from None
            if not math.isfinite(number) or not low <= number <= high:
                raise _range_error(name, value, low, high)
            if name not in ("image_size_px", "n_particles"):
                object.__setattr__(self, name, number)
        low, high = _PIXEL_RANGES[self.regime]
        px = self.pixel_size_nm
        if not isinstance(px, int | float | np.floating | np.integer) or not (
            math.isfinite(px) and low <= px <= high
        ):
            raise _range_error(
                "pixel_size_nm",
                px,
                low,
                high,
                f"For regime={self.regime!r} use {low}-{high} nm/px"
                + (" (or regime='lowmag' for coarser pixels)." if self.regime == "hrtem" else
                   " (or regime='hrtem' for finer pixels)."),
            )
        object.__setattr__(self, "pixel_size_nm", float(px))
        if self.defocus_nm is not None:
            low, high = _DEFOCUS_RANGES[self.regime]
            df = self.defocus_nm
            if not isinstance(df, int | float | np.floating | np.integer) or not (
                math.isfinite(df) and low <= df <= high
            ):
                raise _range_error(
                    "defocus_nm", df, low, high,
                    f"For regime={self.regime!r} use {low} to {high} nm (> 0 is underfocus), "
                    "or None for Scherzer defocus.",
                )
            object.__setattr__(self, "defocus_nm", float(df))
        if self.material not in MATERIALS:
            raise ValueError(
                f"SimulationParams.material={self.material!r} is not supported; "
                f"use one of {MATERIALS}."
            )
        self._validate_diameters()
        if self.diameter_distribution not in ("log-uniform", "uniform"):
            raise ValueError(
                f"SimulationParams.diameter_distribution={self.diameter_distribution!r} is not "
                "supported; use 'log-uniform' or 'uniform'."
            )
        kinds = self.kinds
        if isinstance(kinds, str):
            kinds = (kinds,)
        kinds = tuple(kinds)
        bad = [k for k in kinds if k not in KINDS]
        if not kinds or bad:
            raise ValueError(
                f"SimulationParams.kinds={self.kinds!r} must be a non-empty tuple of {KINDS}"
                + (f"; unknown: {bad}." if bad else ".")
            )
        object.__setattr__(self, "kinds", kinds)

    def _validate_diameters(self) -> None:
        rng = self.diameter_range_nm
        try:
            lo, hi = (float(v) for v in rng)
        except (TypeError, ValueError):
            raise ValueError(
                f"SimulationParams.diameter_range_nm={rng!r} must be a pair (min_nm, max_nm) "
                f"within {_DIAMETER_RANGE}."
            ) from None
        low, high = _DIAMETER_RANGE
        if not (math.isfinite(lo) and math.isfinite(hi)) or not low <= lo <= hi <= high:
            raise ValueError(
                f"SimulationParams.diameter_range_nm={rng!r} must satisfy "
                f"{low} <= min <= max <= {high} (nm)."
            )
        if lo > 0.8 * self.field_of_view_nm:
            raise ValueError(
                f"SimulationParams.diameter_range_nm={rng!r}: the smallest particle does not fit "
                f"in the {self.field_of_view_nm:.3g} nm field of view "
                f"(image_size_px x pixel_size_nm); use smaller particles, more pixels or a "
                "larger pixel size."
            )
        object.__setattr__(self, "diameter_range_nm", (lo, hi))

    # Derived quantities -------------------------------------------------------------
    @property
    def field_of_view_nm(self) -> float:
        """Side of the field of view in nm (``image_size_px * pixel_size_nm``)."""
        return self.image_size_px * float(self.pixel_size_nm)

    @property
    def render_pixel_size_nm(self) -> float:
        """Pixel size of the oversampled render grid in nm."""
        return float(self.pixel_size_nm) / self.oversample

    @property
    def render_size_px(self) -> int:
        """Side of the oversampled render grid in pixels."""
        return self.image_size_px * self.oversample

    @property
    def lattice_resolved(self) -> bool:
        """True when {111} fringes are rendered and sampled (HRTEM and p < d111 / 2.2)."""
        return self.regime == "hrtem" and self.pixel_size_nm < d111_nm(self.material) / 2.2

    def effective_defocus_nm(self) -> float:
        """The defocus used, in nm: ``defocus_nm`` or the Scherzer defocus if None."""
        if self.defocus_nm is not None:
            return float(self.defocus_nm)
        return _scherzer_defocus_nm(cs_mm=self.cs_mm, voltage_kv=self.voltage_kv)

    def to_dict(self) -> dict:
        """All fields as a plain dict (tuples kept), e.g. for metadata and manifests."""
        return asdict(self)

    def replace(self, **changes) -> SimulationParams:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """Names of all fields, in order."""
        return tuple(f.name for f in fields(cls))


def _wavelength_nm(voltage_kv: float) -> float:
    # Relativistic electron wavelength (same formula as optics.electron_wavelength_nm;
    # duplicated so that params does not depend on the optics module).
    v = voltage_kv * 1e3
    h, m0, e, c = 6.62607015e-34, 9.1093837015e-31, 1.602176634e-19, 299792458.0
    return h / math.sqrt(2 * m0 * e * v * (1 + e * v / (2 * m0 * c**2))) * 1e9


def _scherzer_defocus_nm(*, cs_mm: float, voltage_kv: float) -> float:
    # sqrt(1.5 |C_s| lambda), negative (overfocus) for negative C_s, as optics.scherzer_defocus_nm
    if cs_mm == 0:
        return 0.0
    value = math.sqrt(1.5 * abs(cs_mm) * 1e6 * _wavelength_nm(voltage_kv))
    return math.copysign(value, cs_mm)


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def sample_params(
    rng: np.random.Generator, regime: str, image_size_px: int = 512
) -> SimulationParams:
    """Draw realistic randomised simulation parameters.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness (``numpy.random.default_rng(seed)``).
    regime : {"hrtem", "lowmag"}
        Imaging regime.
    image_size_px : int
        Output image side in pixels.

    Returns
    -------
    SimulationParams

    Notes
    -----
    Distributions (U = uniform, logU = log-uniform), following physics.md:

    * voltage 300 / 200 / 80 kV with probabilities 0.6 / 0.3 / 0.1.
    * Optics: 70 % uncorrected, C_s ~ U(0.5, 2) mm; HRTEM defocus = Scherzer + U(-50, 50) nm;
      30 % corrected, C_s ~ U(-0.04, 0.04) mm, defocus ~ U(-20, 20) nm (both regimes).
      HRTEM: astigmatism U(0, 5) nm at U(0, 180) deg; focal spread U(2, 6) nm; convergence
      U(0.1, 0.5) mrad; objective aperture none (50 %) or U(15, 40) mrad (HRTEM; low mag
      below).
    * Specimen (both regimes unless stated below): material Au / Pt / Pd / Ag with
      probabilities 0.5 / 0.2 / 0.15 / 0.15; HRTEM carbon U(2, 20) nm, absorption
      U(0.05, 0.1); fault probability U(0.2, 0.6); on-zone probability U(0.5, 0.9); touching fraction
      U(0, 0.3); HRTEM edge fraction U(0, 0.2); atom sigma U(0.03, 0.04) nm.
    * HRTEM: pixel U(0.025, 0.09) nm; minimum diameter U(2, 4) nm, maximum = min x U(1.5, 4)
      capped at a third of the field; kinds: the four nanoparticle shapes (round, faceted,
      decahedral, rod), plus nanotubes / aggregates with probability 0.15 each.
    * Low mag (since 2026-11; tuned against the five calibration images
      ``etem_helpers.datasets.real.SINTERING_CALIBRATION_IDS`` with :mod:`etem_helpers.realism`,
      never against the held-out ones; see BENCHMARKS.md): drawn by a separate branch after
      the voltage and C_s, so HRTEM draws are unchanged.

      - pixel logU(0.1, 0.6) nm (so that a 1-100 nm particle spans 10-120 px);
      - defocus: the granularity period sqrt(lambda |df|) ~ U(1.5, 6) output pixels, 85 %
        underfocus (bright Fresnel halo outside the particles, as in the real images), i.e.
        0.1-20 um; astigmatism U(0, 2 %) of |df| (at most 50 nm); convergence U(0.02, 0.2)
        mrad (a spread low-mag beam); objective aperture none (30 %) or U(5, 20) mrad;
      - particle diameters uniform between U(8, 20) px and U(80, 120) px (capped at 100 nm
        and a quarter of the field): the real calibration particles have quartiles 44 / 61 /
        77 px with a few below 15 px and above 90 px;
      - kinds: round always, plus faceted / decahedral / rod / nanotube / aggregate with
        probabilities 0.4 / 0.2 / 0.3 / 0.15 / 0.2; ``round_fraction`` U(0.6, 0.95);
        ``outline_roughness`` U(0, 0.15); ``edge_exponent`` U(0.5, 0.7); diffuse edges
        ``edge_softness_nm`` U(2, 5) px (revision 3: the real edges are about 8 px wide from
        10 to 90 % and the hand-drawn outline sits near the middle of that rise, not at its
        outer foot; the softer thickness profiles of revision 2 put the true outline at the
        foot);
      - coverage U(0.1, 0.3) (real: 0.16-0.19); edge fraction U(0.1, 0.4);
      - absorption U(0.05, 0.12) (with the thick low-mag particles larger values saturate
        them to black, unlike the real images); ``interior_texture`` U(0.05, 0.3) with
        ``texture_length_nm`` U(0.7, 2) px (diffraction / thickness contrast);
      - carbon U(5, 30) nm; ``support_undulation_rad`` U(0.02, 0.15), beta U(1, 2);
        ``support_granularity_rad`` U(0.05, 0.3) at ``support_grain_nm`` U(1.5, 4) px
        (the mottled support);
      - dose logU(10, 1000) e/A^2; drift U(0, 1) px; jitter U(0, 1.5) px; gas none (70 %) or
        f ~ U(0, 0.3) without an extra information limit (irrelevant at these pixel sizes);
        MTF c3 U(0.2, 0.35) (scintillator cameras at low magnification are a bit softer).
    * HRTEM: number of objects from an area coverage U(0.05, 0.3) of the field divided by
      the mean particle area, clipped to 1-80.
    * HRTEM: dose logU(50, 5000) e/A^2; drift U(0, 0.3) nm at U(0, 360) deg; jitter
      U(0, 0.05) nm; gas: none (50 %) or f ~ U(0, 0.3) with an information limit
      U(0.1, 0.2) nm; MTF c1 U(0.9, 1), c2 U(0, 0.01), c3 U(0.3, 0.4), c4 U(2.4, 2.6).
    """
    if regime not in REGIMES:
        raise ValueError(f"regime={regime!r} is not supported; use one of {REGIMES}.")
    voltage = float(rng.choice([300.0, 200.0, 80.0], p=[0.6, 0.3, 0.1]))
    corrected = rng.random() < 0.3
    if corrected:
        cs = float(rng.uniform(-0.04, 0.04))
    else:
        cs = float(rng.uniform(0.5, 2.0))
    if regime == "hrtem":
        pixel = float(rng.uniform(0.025, 0.09))
        if corrected:
            defocus = float(rng.uniform(-20.0, 20.0))
        else:
            defocus = _scherzer_defocus_nm(cs_mm=cs, voltage_kv=voltage) + float(
                rng.uniform(-50.0, 50.0)
            )
        absorption = float(rng.uniform(0.05, 0.1))
        dose = _log_uniform(rng, 50.0, 5000.0)
    else:
        return _sample_lowmag(rng, voltage_kv=voltage, cs_mm=cs, image_size_px=image_size_px)
    field = image_size_px * pixel
    d_lo = float(rng.uniform(2.0, 4.0))
    d_hi = min(d_lo * float(rng.uniform(1.5, 4.0)), field / 3.0)
    kinds = ["round", "faceted", "decahedral", "rod"]
    if rng.random() < 0.15:
        kinds.append("nanotube")
    if rng.random() < 0.15:
        kinds.append("aggregate")
    d_lo = min(d_lo, 0.5 * field)
    d_hi = max(d_hi, d_lo)
    coverage = float(rng.uniform(0.05, 0.3))
    mean_area = np.pi * (0.5 * (d_lo + d_hi) / 2.0) ** 2
    n_particles = int(np.clip(round(coverage * field**2 / mean_area), 1, 80))
    has_gas = rng.random() < 0.5
    return SimulationParams(
        regime=regime,
        image_size_px=image_size_px,
        pixel_size_nm=pixel,
        voltage_kv=voltage,
        cs_mm=cs,
        defocus_nm=float(np.clip(defocus, *_DEFOCUS_RANGES[regime])),
        astigmatism_nm=float(rng.uniform(0.0, 5.0)),
        astigmatism_angle_deg=float(rng.uniform(0.0, 180.0)),
        focal_spread_nm=float(rng.uniform(2.0, 6.0)),
        convergence_mrad=float(rng.uniform(0.1, 0.5)),
        aperture_mrad=None if rng.random() < 0.5 else float(rng.uniform(15.0, 40.0)),
        absorption=absorption,
        carbon_thickness_nm=float(rng.uniform(2.0, 20.0)),
        dose_e_per_a2=dose,
        drift_nm=float(rng.uniform(0.0, 0.3)),
        drift_angle_deg=float(rng.uniform(0.0, 360.0)),
        jitter_nm=float(rng.uniform(0.0, 0.05)),
        gas_fraction=float(rng.uniform(0.0, 0.3)) if has_gas else 0.0,
        gas_info_limit_nm=float(rng.uniform(0.1, 0.2)) if has_gas else None,
        mtf_c1=float(rng.uniform(0.9, 1.0)),
        mtf_c2=float(rng.uniform(0.0, 0.01)),
        mtf_c3=float(rng.uniform(0.3, 0.4)),
        mtf_c4=float(rng.uniform(2.4, 2.6)),
        material=str(rng.choice(list(MATERIALS), p=[0.5, 0.2, 0.15, 0.15])),
        n_particles=n_particles,
        diameter_range_nm=(d_lo, d_hi),
        kinds=tuple(kinds),
        fault_probability=float(rng.uniform(0.2, 0.6)),
        on_zone_probability=float(rng.uniform(0.5, 0.9)),
        touching_fraction=float(rng.uniform(0.0, 0.3)),
        edge_fraction=float(rng.uniform(0.0, 0.2)),
        atom_sigma_nm=float(rng.uniform(0.03, 0.04)),
    )


def _sample_lowmag(
    rng: np.random.Generator, *, voltage_kv: float, cs_mm: float, image_size_px: int
) -> SimulationParams:
    """Low-magnification parameters (see :func:`sample_params` for the distributions)."""
    pixel = _log_uniform(rng, 0.1, 0.6)
    wavelength = _wavelength_nm(voltage_kv)
    # granularity period sqrt(lambda |df|) of 1.5-6 output pixels, 85 % underfocus
    period_nm = float(rng.uniform(1.5, 6.0)) * pixel
    sign = 1.0 if rng.random() < 0.85 else -1.0
    defocus = float(np.clip(sign * period_nm**2 / wavelength, *_DEFOCUS_RANGES["lowmag"]))
    field = image_size_px * pixel
    d_lo = max(1.0, float(rng.uniform(8.0, 20.0)) * pixel)
    d_hi = min(float(rng.uniform(80.0, 120.0)) * pixel, 100.0, field / 4.0)
    d_lo = min(d_lo, d_hi)
    weights = {"faceted": 0.4, "decahedral": 0.2, "rod": 0.3, "nanotube": 0.15,
               "aggregate": 0.2}
    kinds = ["round"] + [k for k, w in weights.items() if rng.random() < w]
    coverage = float(rng.uniform(0.1, 0.3))
    mean_area = np.pi * (0.5 * (d_lo + d_hi) / 2.0) ** 2
    n_particles = int(np.clip(round(coverage * field**2 / mean_area), 1, 80))
    has_gas = rng.random() < 0.3
    return SimulationParams(
        regime="lowmag",
        image_size_px=image_size_px,
        pixel_size_nm=pixel,
        voltage_kv=voltage_kv,
        cs_mm=cs_mm,
        defocus_nm=defocus,
        astigmatism_nm=min(float(rng.uniform(0.0, 0.02)) * abs(defocus), 50.0),
        astigmatism_angle_deg=float(rng.uniform(0.0, 180.0)),
        focal_spread_nm=float(rng.uniform(2.0, 6.0)),
        convergence_mrad=float(rng.uniform(0.02, 0.2)),
        aperture_mrad=None if rng.random() < 0.3 else float(rng.uniform(5.0, 20.0)),
        absorption=float(rng.uniform(0.05, 0.12)),
        carbon_thickness_nm=float(rng.uniform(5.0, 30.0)),
        dose_e_per_a2=_log_uniform(rng, 10.0, 1000.0),
        drift_nm=float(rng.uniform(0.0, 1.0)) * pixel,
        drift_angle_deg=float(rng.uniform(0.0, 360.0)),
        jitter_nm=float(rng.uniform(0.0, 1.5)) * pixel,
        gas_fraction=float(rng.uniform(0.0, 0.3)) if has_gas else 0.0,
        gas_info_limit_nm=None,
        mtf_c1=float(rng.uniform(0.9, 1.0)),
        mtf_c2=float(rng.uniform(0.0, 0.01)),
        mtf_c3=float(rng.uniform(0.2, 0.35)),
        mtf_c4=float(rng.uniform(2.4, 2.6)),
        material=str(rng.choice(list(MATERIALS), p=[0.5, 0.2, 0.15, 0.15])),
        n_particles=n_particles,
        diameter_range_nm=(d_lo, d_hi),
        diameter_distribution="uniform",
        kinds=tuple(kinds),
        round_fraction=float(rng.uniform(0.6, 0.95)),
        fault_probability=float(rng.uniform(0.2, 0.6)),
        on_zone_probability=float(rng.uniform(0.5, 0.9)),
        touching_fraction=float(rng.uniform(0.0, 0.3)),
        edge_fraction=float(rng.uniform(0.1, 0.4)),
        atom_sigma_nm=float(rng.uniform(0.03, 0.04)),
        outline_roughness=float(rng.uniform(0.0, 0.15)),
        edge_exponent=float(rng.uniform(0.5, 0.7)),
        interior_texture=float(rng.uniform(0.05, 0.3)),
        texture_length_nm=float(rng.uniform(0.7, 2.0)) * pixel,
        support_undulation_rad=float(rng.uniform(0.02, 0.15)),
        support_undulation_beta=float(rng.uniform(1.0, 2.0)),
        support_granularity_rad=float(rng.uniform(0.05, 0.3)),
        support_grain_nm=float(rng.uniform(1.5, 4.0)) * pixel,
        edge_softness_nm=float(rng.uniform(2.0, 5.0)) * pixel,
    )
