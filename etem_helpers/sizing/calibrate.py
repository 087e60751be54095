"""Calibrate the mask / contour uncertainties on simulated validation micrographs.

Usage::

    python -m etem_helpers.sizing.calibrate --out etem_helpers/models/sizing_uncertainty.json

simulates the validation micrographs of the FeatureNet config (seed 14002, 80 images, the
U-Net run on each), matches the U-Net's particles to the true ones (IoU >= 0.5), and fits the
variance model of :mod:`etem_helpers.sizing.uncertainty` per estimator and quantity.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from etem_helpers.measure import measure_particles
from etem_helpers.metrics import match_instances

from .contour import contour_measurements
from .data import SizingImage, simulate_sizing_image
from .uncertainty import QUANTITIES, fit_variance_model, threshold_spread, uncertainty_features

__all__ = ["matched_measurements", "fit_uncertainty", "main"]


def matched_measurements(sample: SizingImage, labels=None) -> pd.DataFrame:
    """Mask and contour measurements of the matched particles of one micrograph, with truth.

    Parameters
    ----------
    sample : SizingImage
        A simulated micrograph with the U-Net's output.
    labels : ndarray, optional
        Predicted labels to measure (default: ``sample.pred_labels``).

    Returns
    -------
    pandas.DataFrame
        One row per matched pair: ``pred_id``, ``true_id``, ``iou``, ``true_<q>``,
        ``mask_<q>``, ``contour_<q>``, ``<q>_spread``, ``true_kind``,
        ``true_touches_border``, ``pixel_size_nm``, ``regime``.
    """
    labels = sample.pred_labels if labels is None else labels
    match = match_instances(labels, sample.true_labels)
    if match.n_matched == 0:
        return pd.DataFrame()
    px = sample.pixel_size_nm
    tables = {
        "mask": measure_particles(labels, px),
        "contour": contour_measurements(labels, sample.probability, px,
                                        threshold=sample.threshold),
    }
    spread = threshold_spread(labels, sample.probability, px, threshold=sample.threshold)
    truth = sample.true_table.set_index("particle_id").loc[match.true_ids]
    out = pd.DataFrame({"pred_id": match.pred_ids, "true_id": match.true_ids,
                        "iou": match.ious})
    for q in QUANTITIES:
        out[f"true_{q}"] = truth[q].to_numpy()
        for name, table in tables.items():
            out[f"{name}_{q}"] = table.set_index("particle_id").loc[match.pred_ids, q].to_numpy()
        out[f"{q}_spread"] = spread.set_index("particle_id").loc[match.pred_ids,
                                                                 f"{q}_spread"].to_numpy()
    out["true_kind"] = truth["kind"].to_numpy()
    out["true_touches_border"] = truth["touches_border"].to_numpy(dtype=bool)
    out["pixel_size_nm"] = px
    out["regime"] = sample.regime
    return out


def _features(records: pd.DataFrame, estimator: str) -> dict:
    values = pd.DataFrame({q: records[f"{estimator}_{q}"].to_numpy() for q in QUANTITIES})
    spread = records[[f"{q}_spread" for q in QUANTITIES]]
    return uncertainty_features(values, spread, records["pixel_size_nm"].to_numpy())


def fit_uncertainty(records: pd.DataFrame, estimators=("mask", "contour")) -> dict:
    """Fit ``{estimator: {quantity: coefficients}}`` on matched validation records."""
    model = {}
    for estimator in estimators:
        features = _features(records, estimator)
        model[estimator] = {
            q: fit_variance_model(features[q],
                                  records[f"{estimator}_{q}"] - records[f"true_{q}"])
            for q in QUANTITIES
        }
    return model


def main(argv=None) -> int:
    """Command line; see the module docstring."""
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=14002)
    parser.add_argument("--n-images", type=int, default=80)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    parts = [matched_measurements(simulate_sizing_image(i, seed=args.seed))
             for i in range(args.n_images)]
    records = pd.concat([p for p in parts if len(p)], ignore_index=True)
    model = fit_uncertainty(records)
    model["_meta"] = {"seed": args.seed, "n_images": args.n_images,
                      "n_particles": int(len(records)),
                      "command": "python -m etem_helpers.sizing.calibrate --out " + str(args.out)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(model, indent=1))
    print(json.dumps(model, indent=1))
    for name in ("mask", "contour"):
        err = {q: float(np.sqrt(np.mean((records[f"{name}_{q}"] - records[f"true_{q}"]) ** 2)))
               for q in QUANTITIES}
        print(name, "val RMSE", err)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
