"""Check a micrograph's pixel size against the lattice spacings of a known material.

Measured fringe spacings (``d_spacing_nm`` of lattice-resolved particles, computed with the
pixel size under test) are assigned to the nearest of the material's {111} and {200}
spacings; the ratio true / measured of each particle scales the pixel size. The median
over particles is the implied pixel size. Spacings that match neither reflection within
``tolerance`` (another phase, a graphite nanotube, a spurious spot) are left out. With no
particle left the answer is "cannot check", never a guess.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["LATTICE_CONSTANT_NM", "CalibrationCheck", "material_spacings_nm",
           "check_calibration"]

LATTICE_CONSTANT_NM = {"Au": 0.4078, "Pt": 0.3924, "Pd": 0.3891, "Ag": 0.4086}


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
    """

    status: str
    pixel_size_nm: float
    implied_pixel_size_nm: float
    relative_discrepancy: float
    n_particles: int
    spread: float
    material: str
    message: str


def material_spacings_nm(material: str) -> dict[str, float]:
    """{111} and {200} spacings of an fcc metal in nm (``a / sqrt(3)``, ``a / 2``)."""
    if material not in LATTICE_CONSTANT_NM:
        raise ValueError(f"material={material!r} is not known; use one of "
                         f"{sorted(LATTICE_CONSTANT_NM)}.")
    a = LATTICE_CONSTANT_NM[material]
    return {"111": a / math.sqrt(3.0), "200": a / 2.0}


def _n_matching(d, spacings, tolerance) -> int:
    return int(sum(min(abs(v / s - 1.0) for s in spacings.values()) <= tolerance for v in d))


def check_calibration(particles, material: str = "Au", pixel_size_nm: float | None = None, *,
                      tolerance: float = 0.07, max_discrepancy: float = 0.02,
                      min_particles: int = 1, prefer_unfaulted: bool = True,
                      max_spread: float = 0.015) -> CalibrationCheck:
    """Compare measured fringe spacings with the material's {111} / {200} spacings.

    Parameters
    ----------
    particles : pandas.DataFrame or mapping
        With columns ``d_spacing_nm`` and ``lattice_resolved`` (e.g. ``result.particles``
        or the output of :func:`etem_helpers.faults.analyze_faults`), measured with
        ``pixel_size_nm``.
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
    d = d[resolved]
    ratios = []
    for value in d:
        ref = min(spacings.values(), key=lambda s, v=value: abs(v / s - 1.0))
        if abs(value / ref - 1.0) <= tolerance:
            ratios.append(ref / value)
    n = len(ratios)
    if n < min_particles:
        why = ("no particle has a resolved lattice" if d.size == 0 else
               f"none of the {d.size} resolved spacings matches {material} {{111}}/{{200}} "
               f"within {tolerance:.0%}")
        return CalibrationCheck("cannot check", float(pixel_size_nm), float("nan"), float("nan"),
                                n, float("nan"), material, f"cannot check: {why}.")
    ratios = np.array(ratios)
    implied = float(pixel_size_nm * np.median(ratios))
    discrepancy = float(pixel_size_nm / implied - 1.0)
    spread = float(np.median(np.abs(ratios / np.median(ratios) - 1.0)))
    if spread > max_spread:
        return CalibrationCheck("cannot check", float(pixel_size_nm), implied, discrepancy, n,
                                spread, material,
                                f"cannot check: the {n} matching particles disagree "
                                f"(spread {spread:.1%} > {max_spread:.1%}).")
    status = "ok" if abs(discrepancy) <= max_discrepancy else "mismatch"
    message = (f"{status}: {n} particle(s) imply {implied:.5f} nm/px for {material}; the stated "
               f"{pixel_size_nm:.5f} nm/px is off by {discrepancy:+.1%}.")
    return CalibrationCheck(status, float(pixel_size_nm), implied, discrepancy, n, spread,
                            material, message)
