"""Uncertainty budget of a reported mean particle diameter (GUM style).

What it answers: how well the *mean diameter of this sample* is known, and which
component dominates, so that effort goes where it pays (a better calibration, a sharper
edge definition, or more particles). What it does not answer: how wide the size
distribution is (that is the spread, not an uncertainty), or the uncertainty of a
single particle.

The components are independent standard uncertainties combined by root sum of squares
(JCGM 100:2008, GUM, section 5.1) and expanded with a coverage factor k (k = 2 for
about 95 % when the combined distribution is near normal):

* **calibration** (type B): relative pixel-size uncertainty x mean; a pixel-size error
  scales every diameter alike, so it does not average out.
* **edge definition** (type B): the means obtained over a sweep of plausible edge
  thresholds (or contour levels) span a range; its half-width is treated as a rectangular
  distribution, ``u = (max - min) / (2 sqrt 3)`` (GUM 4.3.7).
* **counting statistics** (type A): ``s / sqrt(n)``, the standard error of the mean.
  Particles of one image are not independent; pass per-image means as
  ``diameters_nm`` (or a cluster-bootstrap SE as ``counting_se_nm``) when images differ.
* **per-particle uncertainty**: ``sqrt(sum sigma_i^2) / n`` from ``diameter_nm_std``.
  Random per-particle errors already widen the observed spread, so they are inside the
  counting term; adding them again double counts. The row is shown, and included in the
  combined uncertainty only when ``per_particle_in_combined=True`` (use that when the
  per-particle errors are shared, e.g. a model bias, rather than random).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["uncertainty_budget"]


def _check_nonneg(value, name) -> float:
    value = float(value)
    if not (np.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}.")
    return value


def uncertainty_budget(
    diameters_nm,
    *,
    pixel_size_rel_uncertainty: float,
    threshold_sweep_means_nm=None,
    diameter_std_nm=None,
    counting_se_nm: float | None = None,
    per_particle_in_combined: bool = False,
    coverage_factor: float = 2.0,
) -> pd.DataFrame:
    """Uncertainty budget of the mean of ``diameters_nm``.

    Parameters
    ----------
    diameters_nm : array_like of float
        Measured diameters (nm); non-finite values are dropped.
    pixel_size_rel_uncertainty : float
        Relative standard uncertainty of the pixel size (e.g. 0.02 for 2 %).
    threshold_sweep_means_nm : array_like of float, optional
        Mean diameters of the same particles measured over a sweep of edge
        thresholds chosen by the caller (at least 2 values).
    diameter_std_nm : array_like of float, optional
        Per-particle 1-sigma uncertainties (the contract's ``diameter_nm_std``),
        aligned with ``diameters_nm``.
    counting_se_nm : float, optional
        Standard error of the mean to use instead of ``s / sqrt(n)`` (e.g. from the
        cluster bootstrap).
    per_particle_in_combined : bool, optional
        Include the per-particle row in the combined uncertainty (see module notes).
    coverage_factor : float, optional
        k of the expanded uncertainty. Default 2.

    Returns
    -------
    pandas.DataFrame
        One row per component then ``combined`` and ``expanded``, with columns
        ``component``, ``type`` ("A"/"B"/""), ``standard_uncertainty_nm``,
        ``relative_percent`` (of the mean), ``in_combined`` (bool) and ``note``.
        ``df.attrs`` holds ``mean_nm``, ``n``, ``coverage_factor``.
    """
    d = np.asarray(diameters_nm, dtype=np.float64).ravel()
    finite = np.isfinite(d)
    if finite.sum() < 2:
        raise ValueError(f"need at least 2 finite diameters, got {int(finite.sum())}.")
    rel = _check_nonneg(pixel_size_rel_uncertainty, "pixel_size_rel_uncertainty")
    k = _check_nonneg(coverage_factor, "coverage_factor")
    values = d[finite]
    n = values.size
    mean = float(values.mean())
    rows = [("calibration", "B", rel * mean, True,
             f"pixel size known to {100 * rel:.3g} % (relative, scales every diameter)")]
    if threshold_sweep_means_nm is not None:
        sweep = np.asarray(threshold_sweep_means_nm, dtype=np.float64).ravel()
        sweep = sweep[np.isfinite(sweep)]
        if sweep.size < 2:
            raise ValueError("threshold_sweep_means_nm needs at least 2 finite means.")
        u_edge = float(np.ptp(sweep) / (2.0 * np.sqrt(3.0)))
        rows.append(("edge definition", "B", u_edge, True,
                     f"means over {sweep.size} thresholds span {np.ptp(sweep):.3g} nm; "
                     "rectangular half-width / sqrt(3)"))
    if counting_se_nm is None:
        u_count = float(values.std(ddof=1) / np.sqrt(n))
        note = f"s / sqrt(n), n = {n} (assumes independent particles)"
    else:
        u_count = _check_nonneg(counting_se_nm, "counting_se_nm")
        note = "standard error supplied by the caller"
    rows.append(("counting statistics", "A", u_count, True, note))
    if diameter_std_nm is not None:
        sig = np.asarray(diameter_std_nm, dtype=np.float64).ravel()
        if sig.size != d.size:
            raise ValueError(
                f"diameter_std_nm has {sig.size} values for {d.size} diameters; align them."
            )
        sig = sig[finite]
        sig = sig[np.isfinite(sig)]
        u_pp = float(np.sqrt(np.sum(sig**2)) / n) if sig.size else float("nan")
        rows.append(("per-particle uncertainty", "B", u_pp, bool(per_particle_in_combined),
                     "sqrt(sum sigma_i^2) / n; random part already in the counting term"))
    table = pd.DataFrame(rows, columns=["component", "type", "standard_uncertainty_nm",
                                        "in_combined", "note"])
    used = table.loc[table["in_combined"], "standard_uncertainty_nm"].to_numpy()
    u_c = float(np.sqrt(np.nansum(used**2)))
    extra = pd.DataFrame(
        [("combined", "", u_c, False, "root sum of squares of the rows in_combined"),
         ("expanded", "", k * u_c, False, f"k = {k:g}")],
        columns=table.columns,
    )
    table = pd.concat([table, extra], ignore_index=True)
    table.insert(3, "relative_percent", 100.0 * table["standard_uncertainty_nm"] / mean)
    table.attrs.update({"mean_nm": mean, "n": int(n), "coverage_factor": k})
    return table
