"""One entry point for the pipeline: sizes, shapes and their uncertainties per particle.

The pipeline (``Analyzer``) calls :func:`estimate_sizes` with the U-Net's labels and
probability map and writes the returned columns into the particle table, the estimator's name
into ``result.info``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from etem_helpers.measure import measure_particles

from .contour import contour_measurements
from .data import instance_inputs
from .uncertainty import (
    QUANTITIES,
    load_uncertainty_model,
    predict_std,
    uncertainty_features,
)

__all__ = ["ESTIMATORS", "SIZE_COLUMNS", "estimate_sizes"]

ESTIMATORS = ("mask", "contour", "featurenet")
_SPREAD_DELTA = 0.1  # as threshold_spread's default, used for the calibration

#: Columns of :func:`estimate_sizes`.
SIZE_COLUMNS = (
    "particle_id", "diameter_nm", "aspect_ratio", "roundness", "area_nm2", "feret_max_nm",
    "diameter_nm_std", "aspect_ratio_std", "roundness_std", "estimator",
)


def _empty() -> pd.DataFrame:
    table = pd.DataFrame({c: pd.Series(dtype=np.float64) for c in SIZE_COLUMNS})
    table["particle_id"] = table["particle_id"].astype(np.int32)
    table["estimator"] = table["estimator"].astype(object)
    return table


def _with_std(values: pd.DataFrame, spread, pixel_size_nm, coefficients) -> pd.DataFrame:
    features = uncertainty_features(values, spread, pixel_size_nm)
    for q in QUANTITIES:
        values[f"{q}_std"] = predict_std(coefficients[q], features[q])
    return values


def _featurenet(image, labels, probability, pixel_size_nm, threshold, model, contour, mask):
    from .featurenet import load_featurenet, predict_featurenet

    network, meta = model if isinstance(model, tuple) else load_featurenet(model)
    crops, scalars, side_nm, _ = instance_inputs(image, labels, probability, pixel_size_nm,
                                                 threshold=threshold, contour_table=contour,
                                                 mask_table=mask)
    mean, std = predict_featurenet(network, meta, crops, scalars, side_nm)
    out = contour[["particle_id", "feret_max_nm"]].copy()
    for k, q in enumerate(QUANTITIES):
        out[q] = mean[:, k]
        out[f"{q}_std"] = std[:, k]
    out["area_nm2"] = np.pi * out["diameter_nm"] ** 2 / 4.0
    return out


def estimate_sizes(image, labels, probability, pixel_size_nm, *, estimator="featurenet",
                   model=None, threshold=0.5, uncertainty=None,
                   mask_table=None) -> pd.DataFrame:
    """Size and shape of every particle with a calibrated 1-sigma uncertainty.

    Parameters
    ----------
    image : (H, W) ndarray
        The micrograph (used by FeatureNet only; may be None for the other estimators).
    labels : (H, W) ndarray of int
        Instance labels (0 background), e.g. ``AnalysisResult.labels``.
    probability : (H, W) ndarray of float
        Foreground probability of the same image (``AnalysisResult.probability``).
    pixel_size_nm : float
        Pixel size in nm per pixel.
    estimator : {"featurenet", "contour", "mask"}
        The default, ``"featurenet"``, was chosen by the rule written in
        ``etem_helpers/models/featurenet_default_report.md`` (best of the three on all three
        validation errors; ``analyze()`` + this call 0.95 s on a 1024 x 1024 micrograph).
        ``"mask"``: the contract's pixel-mask measurement
        (:func:`etem_helpers.measure.measure_particles`); ``"contour"``: the same definitions
        on the sub-pixel iso-contour ``probability = threshold``
        (:func:`etem_helpers.sizing.contour.contour_measurements`); ``"featurenet"``: the CNN
        of :mod:`etem_helpers.sizing.featurenet` over each particle's crop (``feret_max_nm``
        from the contour; ``area_nm2`` from its diameter).
    model : path-like or (network, meta), optional
        FeatureNet checkpoint (None: the shipped one). Ignored by the other estimators.
    threshold : float
        The foreground threshold that made ``labels`` (``AnalysisResult.info["threshold"]``).
    uncertainty : dict or path-like, optional
        Calibration of the mask/contour uncertainties
        (:func:`etem_helpers.sizing.uncertainty.load_uncertainty_model`); None: shipped one.
    mask_table : pandas.DataFrame, optional
        :func:`etem_helpers.measure.measure_particles` of ``labels``, if already computed.

    Returns
    -------
    pandas.DataFrame
        One row per particle id (sorted), columns :data:`SIZE_COLUMNS`: ``diameter_nm``
        (area-equivalent), ``aspect_ratio`` (moment ellipse, >= 1), ``roundness``
        (4 A / (pi major^2)), ``area_nm2``, ``feret_max_nm``, their 1-sigma uncertainties
        ``diameter_nm_std``, ``aspect_ratio_std``, ``roundness_std`` (calibrated on
        simulated validation data so that +-1.96 sigma covers the truth about 95 % of the
        time), and ``estimator``.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}.")
    labels = np.asarray(labels)
    if probability is None:
        raise ValueError("probability is required (AnalysisResult.probability): the contour "
                         "and the uncertainty are computed from it.")
    if not np.any(labels):
        return _empty()
    mask = measure_particles(labels, pixel_size_nm) if mask_table is None else mask_table
    contour = contour_measurements(labels, probability, pixel_size_nm, threshold=threshold,
                                   spread_delta=_SPREAD_DELTA, mask_table=mask)
    if estimator == "featurenet":
        if image is None:
            raise ValueError("estimator='featurenet' needs the image.")
        out = _featurenet(image, labels, probability, pixel_size_nm, threshold, model, contour,
                          mask)
    else:
        if not isinstance(uncertainty, dict):
            uncertainty = load_uncertainty_model(uncertainty)
        values = mask if estimator == "mask" else contour
        spread = contour[["particle_id", *(f"{q}_spread" for q in QUANTITIES)]]
        out = values[["particle_id", *QUANTITIES, "area_nm2", "feret_max_nm"]].copy()
        out = _with_std(out, spread, pixel_size_nm, uncertainty[estimator])
    out["estimator"] = estimator
    out["particle_id"] = out["particle_id"].astype(np.int32)
    return out[list(SIZE_COLUMNS)].reset_index(drop=True)
