"""Check a micrograph's pixel size against the lattice spacings of a known material.

Measured fringe spacings (``d_spacing_nm`` of lattice-resolved particles, computed with the
pixel size under test) are assigned to the nearest of the material's {111} and {200}
spacings; the ratio true / measured of each particle scales the pixel size. Spacings that
match neither reflection within ``tolerance`` (another phase, a graphite nanotube, a spurious
spot) are left out.

A particle's spacing is only as precise as the number of fringes across it: on simulated
HRTEM micrographs (training split of the fault classifier's data, true pixel size) the
robust SD of one particle's strongest spacing is about ``0.74 * fringes**-1.42`` (2.5 % at
11 fringes, 0.4 % above 30), and the particles of one micrograph share an error of about
0.6 % (``benchmarks/eval_faults.py``, BENCHMARKS.md). So each particle is weighted by
``1 / sigma**2``, the implied pixel size is the weighted median, and its relative uncertainty
``u`` combines the weights (scaled up by the particles' scatter, Birge ratio) with that shared
error. A verdict is given only where ``u`` supports it: "mismatch" when the discrepancy
exceeds ``max_discrepancy`` and ``z`` times ``u``, "ok" when it is within ``max_discrepancy``
and ``z * u`` is too; otherwise, and with no particle left, "cannot check", never a guess.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from etem_helpers.measure import weighted_median

__all__ = ["LATTICE_CONSTANT_NM", "CalibrationCheck", "material_spacings_nm", "spacing_sd",
           "check_calibration"]

LATTICE_CONSTANT_NM = {"Au": 0.4078, "Pt": 0.3924, "Pd": 0.3891, "Ag": 0.4086}

#: One particle's relative spacing error (robust SD) against the fringes across it:
#: ``SPACING_SD_COEFFICIENT * fringes ** SPACING_SD_EXPONENT``, at least SPACING_SD_FLOOR;
#: SPACING_SD_UNKNOWN_SIZE where the particle table has no ``diameter_nm``.
SPACING_SD_COEFFICIENT = 0.74
SPACING_SD_EXPONENT = -1.42
SPACING_SD_FLOOR = 0.004
SPACING_SD_UNKNOWN_SIZE = 0.015
#: Relative error shared by all particles of a micrograph (not reduced by averaging).
SHARED_SPACING_SD = 0.006


@dataclass(frozen=True)
class CalibrationCheck:
    """Result of :func:`check_calibration`.

    Attributes
    ----------
    status : {"ok", "mismatch", "cannot check"}
    pixel_size_nm : float
        The pixel size under test.
    implied_pixel_size_nm : float
        Pixel size that makes the measured spacings match the material (NaN if cannot check).
    relative_discrepancy : float
        ``pixel_size_nm / implied_pixel_size_nm - 1`` (NaN if cannot check); +0.05 means the
        stated pixel size is 5 % too large.
    n_particles : int
        Particles used.
    spread : float
        Relative median absolute deviation of the per-particle implied pixel sizes.
    material : str
    message : str
    uncertainty : float
        Relative standard uncertainty of ``implied_pixel_size_nm`` (NaN if no particle).
    """

    status: str
    pixel_size_nm: float
    implied_pixel_size_nm: float
    relative_discrepancy: float
    n_particles: int
    spread: float
    material: str
    message: str
    uncertainty: float = float("nan")


def material_spacings_nm(material: str) -> dict[str, float]:
    """{111} and {200} spacings of an fcc metal in nm (``a / sqrt(3)``, ``a / 2``)."""
    if material not in LATTICE_CONSTANT_NM:
        raise ValueError(f"material={material!r} is not known; use one of "
                         f"{sorted(LATTICE_CONSTANT_NM)}.")
    a = LATTICE_CONSTANT_NM[material]
    return {"111": a / math.sqrt(3.0), "200": a / 2.0}


def _n_matching(d, spacings, tolerance) -> int:
    return int(sum(min(abs(v / s - 1.0) for s in spacings.values()) <= tolerance for v in d))


def spacing_sd(fringes) -> np.ndarray:
    """Relative SD of one particle's measured spacing, from the fringes across it.

    Parameters
    ----------
    fringes : array_like
        Particle diameter / spacing (NaN where unknown).

    Returns
    -------
    numpy.ndarray
        ``max(SPACING_SD_COEFFICIENT * fringes ** SPACING_SD_EXPONENT, SPACING_SD_FLOOR)``,
        ``SPACING_SD_UNKNOWN_SIZE`` where ``fringes`` is not a positive number.
    """
    fringes = np.asarray(fringes, dtype=np.float64)
    known = np.isfinite(fringes) & (fringes > 0)
    sd = np.full(fringes.shape, SPACING_SD_UNKNOWN_SIZE)
    sd[known] = np.maximum(SPACING_SD_COEFFICIENT * fringes[known] ** SPACING_SD_EXPONENT,
                           SPACING_SD_FLOOR)
    return sd


def check_calibration(particles, material: str = "Au", pixel_size_nm: float | None = None, *,
                      tolerance: float = 0.07, max_discrepancy: float = 0.02,
                      min_particles: int = 1, prefer_unfaulted: bool = True,
                      max_spread: float = 0.015, z: float = 2.5) -> CalibrationCheck:
    """Compare measured fringe spacings with the material's {111} / {200} spacings.

    Parameters
    ----------
    particles : pandas.DataFrame or mapping
        With columns ``d_spacing_nm`` and ``lattice_resolved`` (e.g. ``result.particles``
        or the output of :func:`etem_helpers.faults.analyze_faults`), measured with
        ``pixel_size_nm``; with ``diameter_nm`` (as in ``result.particles``) each particle
        is weighted by the fringes across it, without it all get the same, cautious weight.
    material : {"Au", "Pt", "Pd", "Ag"}
    pixel_size_nm : float
        The pixel size the spacings were measured with (the calibration under test).
    tolerance : float
        A spacing is used when it is within this relative distance of the {111} or {200}
        spacing (7 %: a +-5 % wrong calibration is still assigned correctly, since {111} and
        {200} differ by 15 %).
    max_discrepancy : float
        |relative discrepancy| above this gives status "mismatch".
    min_particles : int
        Fewer matching particles give "cannot check".
    max_spread : float
        When the particles disagree (median absolute deviation of their implied pixel sizes
        above this), the answer is "cannot check": inconsistent evidence gives no verdict.
    z : float
        Coverage factor of the uncertainty for a verdict (see the module notes).
    prefer_unfaulted : bool
        With a ``has_fault`` column, use only particles called fault-free when at least two
        of them match (split reflections of twins and faults shift the strongest spot).

    Returns
    -------
    CalibrationCheck
    """
    if pixel_size_nm is None or not np.isfinite(pixel_size_nm) or pixel_size_nm <= 0:
        raise ValueError(f"pixel_size_nm must be the (positive) pixel size the spacings were "
                         f"measured with, got {pixel_size_nm!r}.")
    spacings = material_spacings_nm(material)
    d = np.asarray(particles["d_spacing_nm"], dtype=np.float64)
    resolved = np.asarray(particles["lattice_resolved"], dtype=bool) & np.isfinite(d)
    if prefer_unfaulted and "has_fault" in getattr(particles, "columns", particles):
        # a twin or fault splits and shifts the reflections: use the particles called
        # fault-free when there are enough of them
        clean = resolved & ~np.asarray(pd.array(particles["has_fault"], dtype="boolean")
                                       .fillna(True), dtype=bool)
        if _n_matching(d[clean], spacings, tolerance) >= max(min_particles, 2):
            resolved = clean
    diameter = (np.asarray(particles["diameter_nm"], dtype=np.float64)
                if "diameter_nm" in getattr(particles, "columns", particles)
                else np.full(d.shape, np.nan))
    d, diameter = d[resolved], diameter[resolved]
    ratios, sds = [], []
    for value, size in zip(d, diameter, strict=True):
        ref = min(spacings.values(), key=lambda s, v=value: abs(v / s - 1.0))
        if abs(value / ref - 1.0) <= tolerance:
            ratios.append(ref / value)
            sds.append(float(spacing_sd(size / value)))
    n = len(ratios)
    if n < min_particles:
        why = ("no particle has a resolved lattice" if d.size == 0 else
               f"none of the {d.size} resolved spacings matches {material} {{111}}/{{200}} "
               f"within {tolerance:.0%}")
        return CalibrationCheck("cannot check", float(pixel_size_nm), float("nan"), float("nan"),
                                n, float("nan"), material, f"cannot check: {why}.")
    ratios = np.array(ratios)
    weights = 1.0 / np.array(sds) ** 2
    centre = weighted_median(ratios, weights)
    implied = float(pixel_size_nm * centre)
    discrepancy = float(pixel_size_nm / implied - 1.0)
    spread = float(np.median(np.abs(ratios / np.median(ratios) - 1.0)))
    variance = 1.0 / weights.sum()
    if n >= 3:  # scale by the observed scatter where it exceeds the expected one (Birge ratio)
        birge = float((weights * (ratios / centre - 1.0) ** 2).sum() / (n - 1))
        variance *= max(1.0, birge)
    uncertainty = float(math.sqrt(variance + SHARED_SPACING_SD**2))
    if spread > max_spread:
        return CalibrationCheck("cannot check", float(pixel_size_nm), implied, discrepancy, n,
                                spread, material,
                                f"cannot check: the {n} matching particles disagree "
                                f"(spread {spread:.1%} > {max_spread:.1%}).", uncertainty)
    found = (f"{n} particle(s) imply {implied:.5f} nm/px +- {uncertainty:.1%} for {material}; "
             f"the stated {pixel_size_nm:.5f} nm/px is off by {discrepancy:+.1%}")
    if abs(discrepancy) > max_discrepancy and abs(discrepancy) > z * uncertainty:
        status, message = "mismatch", f"mismatch: {found}."
    elif abs(discrepancy) <= max_discrepancy and z * uncertainty <= max_discrepancy:
        status, message = "ok", f"ok: {found}."
    else:
        status = "cannot check"
        message = (f"cannot check: {found}, which the lattice cannot tell from "
                   f"{'zero' if abs(discrepancy) <= max_discrepancy else 'a small error'} "
                   f"(too few or too small particles; more lattice-resolved particles, or "
                   f"larger ones, would decide).")
    return CalibrationCheck(status, float(pixel_size_nm), implied, discrepancy, n, spread,
                            material, message, uncertainty)
