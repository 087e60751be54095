"""Simulated sizing data: micrographs with exact truth, the U-Net's output, particle crops.

One simulated micrograph gives, for every particle the U-Net found and matched to a true
particle (IoU >= 0.5), a FeatureNet input (crop + scalars) and the truth; the true instance
masks give a second crop of the same particle (so the network also learns from outlines that
are right). Everything is deterministic from ``(seed, index)``.

The FeatureNet input of one instance (:func:`instance_inputs`):

* a square crop centred on the instance, ``CROP_FACTOR`` times its largest extent, resampled
  to ``CROP_PX`` x ``CROP_PX`` (bilinear), with three channels: the image (standardised by
  the crop's median and MAD; particles darker than the support are made positive), the
  foreground probability, and the instance's own mask;
* scalars: ``log(crop side in image pixels / CROP_PX)`` (how coarsely the image samples the
  particle) and the contour estimates in crop units (``diameter / side``, ``aspect_ratio``,
  ``roundness``), so the network learns a correction to the contour measurement.

Targets are ``diameter_nm / side_nm``, ``aspect_ratio`` and ``roundness`` of the true
particle; the diameter is multiplied back by the crop side in nm, so absolute size is kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from etem_helpers.measure import measure_particles
from etem_helpers.metrics import match_instances
from etem_helpers.simulate import simulate_micrograph
from etem_helpers.simulate.dataset import image_params

from .contour import contour_measurements

__all__ = [
    "CROP_PX",
    "CROP_FACTOR",
    "N_SCALARS",
    "TARGETS",
    "SizingImage",
    "simulate_sizing_image",
    "instance_inputs",
    "training_examples",
]

CROP_PX = 48
CROP_FACTOR = 1.5
N_SCALARS = 4
TARGETS = ("diameter_nm", "aspect_ratio", "roundness")
_MIN_SIDE_PX = 12.0


@dataclass
class SizingImage:
    """One simulated micrograph with its truth and the U-Net's output.

    Attributes
    ----------
    image : ndarray
        The micrograph (float32).
    true_labels, pred_labels : ndarray
        True and predicted instance labels (int32).
    probability : ndarray
        U-Net foreground probability (float32).
    true_table : pandas.DataFrame
        Ground-truth table of the simulator (contract columns, ``kind``...).
    pixel_size_nm, threshold : float
        Calibration and the U-Net's foreground threshold.
    regime : str
        ``"hrtem"`` or ``"lowmag"``.
    """

    image: np.ndarray
    true_labels: np.ndarray
    pred_labels: np.ndarray
    probability: np.ndarray
    true_table: pd.DataFrame
    pixel_size_nm: float
    threshold: float
    regime: str


def simulate_sizing_image(index: int, *, seed: int, regime: str = "mixed",
                          image_size_px: int = 512, model="default") -> SizingImage:
    """Simulate micrograph ``index`` of a sizing set and run the U-Net on it.

    Parameters
    ----------
    index, seed : int
        Image index and set seed (parameters from
        :func:`etem_helpers.simulate.dataset.image_params`).
    regime : {"mixed", "hrtem", "lowmag"}
        Imaging regime of the drawn parameters.
    image_size_px : int
        Image side.
    model : str or (network, meta)
        U-Net passed to :func:`etem_helpers.analyze`.

    Returns
    -------
    SizingImage
    """
    from etem_helpers import analyze

    params, image_seed = image_params(index, seed=seed, regime=regime,
                                      image_size_px=image_size_px)
    sim = simulate_micrograph(params, image_seed)
    result = analyze(sim.image, params.pixel_size_nm, model=model, device="cpu",
                     size_estimator="mask", faults=False)
    return SizingImage(image=sim.image, true_labels=sim.labels, pred_labels=result.labels,
                       probability=result.probability, true_table=sim.particles,
                       pixel_size_nm=float(params.pixel_size_nm),
                       threshold=float(result.info["threshold"]), regime=params.regime)


def _standardise_crop(crop: np.ndarray, own: np.ndarray) -> np.ndarray:
    med = np.median(crop)
    mad = 1.4826 * np.median(np.abs(crop - med)) + 1e-6
    z = (crop - med) / mad
    if own.any() and z[own > 0.5].mean() < 0:  # dark particles on a bright support
        z = -z
    return np.clip(z, -6.0, 6.0) / 3.0


def instance_inputs(image, labels, probability, pixel_size_nm, *, threshold=0.5,
                    contour_table=None, mask_table=None):
    """FeatureNet inputs of every instance of a label map.

    Parameters
    ----------
    image : (H, W) ndarray
        The micrograph.
    labels : (H, W) ndarray of int
        Instance labels.
    probability : (H, W) ndarray
        Foreground probability.
    pixel_size_nm : float
        Pixel size in nm.
    threshold : float
        Iso-level for the contour estimate.
    contour_table : pandas.DataFrame, optional
        :func:`~etem_helpers.sizing.contour.contour_measurements` of these labels (computed
        if omitted).
    mask_table : pandas.DataFrame, optional
        :func:`~etem_helpers.measure.measure_particles` of ``labels`` (computed if omitted).

    Returns
    -------
    crops : (N, 3, CROP_PX, CROP_PX) float32 ndarray
    scalars : (N, N_SCALARS) float32 ndarray
    side_nm : (N,) ndarray
        Crop side in nm of each instance (the diameter target's unit).
    ids : (N,) ndarray of int
        Particle ids, in the order of :func:`measure_particles`.
    """
    image = np.asarray(image, dtype=np.float32)
    if mask_table is None:
        mask_table = measure_particles(labels, pixel_size_nm)
    if contour_table is None:
        contour_table = contour_measurements(labels, probability, pixel_size_nm,
                                             threshold=threshold)
    ids = mask_table["particle_id"].to_numpy()
    n = ids.size
    crops = np.zeros((n, 3, CROP_PX, CROP_PX), dtype=np.float32)
    scalars = np.zeros((n, N_SCALARS), dtype=np.float32)
    side_px = np.maximum(CROP_FACTOR * mask_table["feret_max_nm"].to_numpy() / pixel_size_nm,
                         _MIN_SIDE_PX)
    grid = (np.arange(CROP_PX) + 0.5) / CROP_PX - 0.5
    height, width = labels.shape
    probability = np.asarray(probability, dtype=np.float32)
    for k, pid in enumerate(ids):
        cy, cx = mask_table["centroid_y_px"].iat[k], mask_table["centroid_x_px"].iat[k]
        ys, xs = cy + side_px[k] * grid, cx + side_px[k] * grid
        # a window around the crop, so that the work does not grow with the image size
        r0 = int(np.clip(np.floor(ys[0]) - 1, 0, height - 1))
        r1 = int(np.clip(np.ceil(ys[-1]) + 2, r0 + 1, height))
        c0 = int(np.clip(np.floor(xs[0]) - 1, 0, width - 1))
        c1 = int(np.clip(np.ceil(xs[-1]) + 2, c0 + 1, width))
        coords = np.stack(np.meshgrid(ys - r0, xs - c0, indexing="ij"))
        # the window holds the whole crop except where the image ends, and there its edge is
        # the image's edge: the boundary modes act exactly as on the full image
        window = (slice(r0, r1), slice(c0, c1))
        own = ndi.map_coordinates((labels[window] == pid).astype(np.float32), coords, order=1,
                                  mode="constant")
        raw = ndi.map_coordinates(image[window], coords, order=1, mode="nearest")
        crops[k, 0] = _standardise_crop(raw, own)
        crops[k, 1] = ndi.map_coordinates(probability[window], coords, order=1,
                                          mode="constant")
        crops[k, 2] = own
    side_nm = side_px * pixel_size_nm
    scalars[:, 0] = np.log(side_px / CROP_PX)
    scalars[:, 1] = contour_table["diameter_nm"].to_numpy() / side_nm
    scalars[:, 2] = np.log(contour_table["aspect_ratio"].to_numpy())
    scalars[:, 3] = contour_table["roundness"].to_numpy()
    return crops, scalars, side_nm, ids


def _truth_targets(true_table: pd.DataFrame, true_ids, side_nm) -> np.ndarray:
    indexed = true_table.set_index("particle_id")
    rows = indexed.loc[np.asarray(true_ids)]
    return np.column_stack([
        rows["diameter_nm"].to_numpy() / side_nm,
        rows["aspect_ratio"].to_numpy(),
        rows["roundness"].to_numpy(),
    ]).astype(np.float32)


def training_examples(sample: SizingImage, *, sources=("pred", "true")) -> dict:
    """FeatureNet examples of one simulated micrograph.

    Parameters
    ----------
    sample : SizingImage
        From :func:`simulate_sizing_image`.
    sources : tuple of {"pred", "true"}
        ``"pred"``: the U-Net's instances matched to a true particle (IoU >= 0.5);
        ``"true"``: the true instance masks (with the U-Net's probability map).

    Returns
    -------
    dict
        ``crops``, ``scalars``, ``targets`` (diameter / side, aspect ratio, roundness),
        ``side_nm``, ``true_diameter_nm``, ``source`` (0 pred, 1 true), ``border`` (bool).
    """
    parts = []
    for source in sources:
        labels = sample.pred_labels if source == "pred" else sample.true_labels
        crops, scalars, side_nm, ids = instance_inputs(
            sample.image, labels, sample.probability, sample.pixel_size_nm,
            threshold=sample.threshold)
        if source == "pred":
            match = match_instances(labels, sample.true_labels)
            keep = np.searchsorted(ids, match.pred_ids)
            true_ids = match.true_ids
        else:
            keep = np.arange(ids.size)
            true_ids = ids
        if keep.size == 0:
            continue
        targets = _truth_targets(sample.true_table, true_ids, side_nm[keep])
        border = sample.true_table.set_index("particle_id").loc[true_ids, "touches_border"]
        parts.append({
            "crops": crops[keep], "scalars": scalars[keep], "targets": targets,
            "side_nm": side_nm[keep], "true_diameter_nm": targets[:, 0] * side_nm[keep],
            "source": np.full(keep.size, 0 if source == "pred" else 1, dtype=np.int8),
            "border": border.to_numpy(dtype=bool),
        })
    if not parts:
        return {}
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
