"""Particle sizing: sub-pixel contour measurement, FeatureNet, per-particle uncertainty.

The pipeline calls :func:`estimate_sizes` (one row per particle: size, shape and calibrated
1-sigma uncertainties, and the estimator's name). Submodules: ``contour`` (sub-pixel outline
measurement), ``data`` (simulated crops with exact truth), ``featurenet`` (the CNN),
``train`` (``python -m etem_helpers.sizing.train``), ``uncertainty`` (variance model, mean
diameter of a micrograph), ``calibrate`` (``python -m etem_helpers.sizing.calibrate``).
Torch is imported only when FeatureNet is used.
"""

from .contour import contour_measurements
from .estimate import ESTIMATORS, SIZE_COLUMNS, estimate_sizes
from .uncertainty import mean_diameter_nm

__all__ = ["ESTIMATORS", "SIZE_COLUMNS", "contour_measurements", "estimate_sizes",
           "mean_diameter_nm"]
