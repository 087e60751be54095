"""Per-particle uncertainty of the mask and contour measurements, and of a sample mean.

Where does the error of a measured size come from? (1) Where exactly the edge is: the
probability map rises over a few pixels, and a threshold 0.1 higher or lower moves the
outline; the *spread* of a measurement over plausible thresholds is an honest, per-particle
observable of that. (2) Pixelisation: the error of a pixel-based outline grows like the pixel
size over the particle size. (3) Everything else (segmentation bias, shape mismatch) as a
constant relative term. The 1-sigma uncertainty is modelled as

    sigma^2 = (a * spread)^2 + (b * scale * pixel_size / diameter)^2 + (c * scale)^2,

with ``scale`` the diameter for the diameter (relative terms) and 1 for aspect ratio and
roundness. ``a, b, c`` are fitted per estimator and quantity by maximum Gaussian likelihood on
validation particles, then multiplied by one factor so that +-1.96 sigma covers 95 % of the
validation errors (:func:`fit_variance_model`). Coverage on independent test data is measured
by ``benchmarks/eval_sizing.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .contour import contour_measurements

__all__ = [
    "QUANTITIES",
    "threshold_spread",
    "uncertainty_features",
    "fit_variance_model",
    "predict_std",
    "default_uncertainty_path",
    "load_uncertainty_model",
    "mean_diameter_nm",
]

QUANTITIES = ("diameter_nm", "aspect_ratio", "roundness")
_Z95 = 1.959964


def threshold_spread(labels, probability, pixel_size_nm, *, threshold=0.5, delta=0.1):
    """Half the change of each measurement when the contour threshold moves by +-``delta``.

    Parameters
    ----------
    labels, probability, pixel_size_nm
        As for :func:`etem_helpers.sizing.contour.contour_measurements`.
    threshold : float
        The nominal threshold.
    delta : float
        Threshold offset (clipped so both thresholds stay in [0.05, 0.95]).

    Returns
    -------
    pandas.DataFrame
        ``particle_id`` and ``<q>_spread`` for each of :data:`QUANTITIES` (>= 0).
    """
    table = contour_measurements(labels, probability, pixel_size_nm, threshold=threshold,
                                 spread_delta=delta)
    return table[["particle_id", *(f"{q}_spread" for q in QUANTITIES)]]


def uncertainty_features(values: pd.DataFrame, spread: pd.DataFrame, pixel_size_nm: float):
    """Feature arrays ``(spread, pixel term, constant term)`` per quantity.

    Parameters
    ----------
    values : pandas.DataFrame
        The estimates (``diameter_nm``, ``aspect_ratio``, ``roundness``), same row order as
        ``spread``.
    spread : pandas.DataFrame
        From :func:`threshold_spread`.
    pixel_size_nm : float or ndarray

    Returns
    -------
    dict
        ``{q: (N, 3) ndarray}``.
    """
    d = np.maximum(values["diameter_nm"].to_numpy(dtype=np.float64), 1e-9)
    rel_px = np.asarray(pixel_size_nm, dtype=np.float64) / d * np.ones_like(d)
    out = {}
    for q in QUANTITIES:
        scale = d if q == "diameter_nm" else np.ones_like(d)
        out[q] = np.column_stack([spread[f"{q}_spread"].to_numpy(dtype=np.float64),
                                  scale * rel_px, scale])
    return out


def predict_std(coefficients, features) -> np.ndarray:
    """``sqrt(sum_j (coef_j * feature_j)^2)`` times the coverage factor.

    Parameters
    ----------
    coefficients : dict
        ``{"coef": [a, b, c], "factor": k}`` (from :func:`fit_variance_model`).
    features : (N, 3) ndarray

    Returns
    -------
    (N,) ndarray, > 0
    """
    coef = np.asarray(coefficients["coef"], dtype=np.float64)
    var = ((features * coef) ** 2).sum(axis=1)
    return float(coefficients["factor"]) * np.sqrt(np.maximum(var, 1e-18))


def fit_variance_model(features, errors, *, coverage=0.95) -> dict:
    """Fit the coefficients of the variance model on validation errors.

    Parameters
    ----------
    features : (N, 3) ndarray
        From :func:`uncertainty_features` for one quantity.
    errors : (N,) ndarray
        Estimate minus truth.
    coverage : float
        Target coverage of +-1.96 sigma on these data.

    Returns
    -------
    dict
        ``coef`` (3 floats >= 0), ``factor`` (the coverage factor), ``n``.
    """
    from scipy.optimize import minimize

    features = np.asarray(features, dtype=np.float64)
    errors = np.asarray(errors, dtype=np.float64)
    ok = np.isfinite(errors) & np.all(np.isfinite(features), axis=1)
    features, errors = features[ok], errors[ok]

    def nll(log_coef):
        var = ((features * np.exp(log_coef)) ** 2).sum(axis=1) + 1e-18
        return 0.5 * np.mean(np.log(var) + errors**2 / var)

    start = np.log([1.0, 0.3, max(np.std(errors / np.maximum(features[:, 2], 1e-9)), 1e-4)])
    fit = minimize(nll, start, method="Nelder-Mead",
                   options={"maxiter": 4000, "xatol": 1e-4, "fatol": 1e-8})
    model = {"coef": np.exp(fit.x).tolist(), "factor": 1.0, "n": int(errors.size)}
    ratio = np.abs(errors) / predict_std(model, features)
    model["factor"] = float(np.quantile(ratio, coverage) / _Z95)
    return model


def default_uncertainty_path() -> Path:
    """Path of the shipped uncertainty calibration (JSON)."""
    return Path(__file__).resolve().parents[1] / "models" / "sizing_uncertainty.json"


def load_uncertainty_model(path=None) -> dict:
    """Read an uncertainty calibration: ``{estimator: {quantity: coefficients}}``."""
    path = Path(path) if path is not None else default_uncertainty_path()
    if not path.is_file():
        raise FileNotFoundError(
            f"uncertainty calibration {path} not found; make it with "
            "`python -m etem_helpers.sizing.calibrate --out <file>`."
        )
    return json.loads(path.read_text())


def mean_diameter_nm(table: pd.DataFrame, *, exclude_border=True) -> dict:
    """Mean particle diameter of a micrograph with its uncertainty.

    Parameters
    ----------
    table : pandas.DataFrame
        Particle table with ``diameter_nm``, ``diameter_nm_std`` (and ``touches_border``).
    exclude_border : bool
        Leave out particles cut by the image edge (their size is a lower bound).

    Returns
    -------
    dict
        ``n``; ``mean_nm``; ``measurement_std_nm`` = ``sqrt(sum sigma_i^2) / n`` (the
        uncertainty of the mean of *these* particles from the per-particle uncertainties);
        ``sampling_std_nm`` = ``s / sqrt(n)`` (the standard error as an estimate of the
        population mean; it already contains the measurement scatter); ``ci95_nm`` = mean
        +- 1.96 ``sampling_std_nm`` (the measurement term is used instead where it is
        larger, e.g. for n = 1).
    """
    keep = np.ones(len(table), dtype=bool)
    if exclude_border and "touches_border" in table:
        keep &= ~table["touches_border"].to_numpy(dtype=bool)
    d = table["diameter_nm"].to_numpy(dtype=np.float64)[keep]
    s = table["diameter_nm_std"].to_numpy(dtype=np.float64)[keep]
    n = int(d.size)
    if n == 0:
        return {"n": 0, "mean_nm": np.nan, "measurement_std_nm": np.nan,
                "sampling_std_nm": np.nan, "ci95_nm": (np.nan, np.nan)}
    mean = float(d.mean())
    meas = float(np.sqrt(np.sum(s**2)) / n)
    samp = float(d.std(ddof=1) / np.sqrt(n)) if n > 1 else np.nan
    half = _Z95 * (meas if not np.isfinite(samp) else max(samp, meas))
    return {"n": n, "mean_nm": mean, "measurement_std_nm": meas, "sampling_std_nm": samp,
            "ci95_nm": (mean - half, mean + half)}
