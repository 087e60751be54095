"""The particle sizes, in pixels, a segmentation network was trained on.

A U-Net's filters and receptive field are measured in pixels: it recognises particles of the
sizes *in pixels* it saw in training, whatever the pixel size in nm. The model card therefore
records the range of equivalent diameters in pixels of its training particles
(``ModelCard.diameter_range_px``), and :class:`etem_helpers.pipeline.Analyzer` uses it to
decide whether an image with an unusual pixel size needs resampling at all
(:func:`etem_helpers.preprocess.plan_by_particle_size`).

``python -m etem_helpers.segmentation.scale MODEL.pt`` adds the range to a checkpoint that was
trained before the card had it (the weights are not touched).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "DIAMETER_QUANTILES",
    "blob_diameters_px",
    "dataset_diameter_range_px",
    "diameter_range_px",
    "equivalent_diameters_px",
]

#: Quantiles of the training particles' diameters (px) stored as the model's size range.
DIAMETER_QUANTILES: tuple[float, float] = (0.05, 0.95)


def equivalent_diameters_px(labels: np.ndarray, *, exclude_border: bool = True) -> np.ndarray:
    """Equivalent-circle diameters (px) of the instances of a label map.

    Parameters
    ----------
    labels : (H, W) ndarray of int
        Instance labels, 0 = background.
    exclude_border : bool, optional
        Leave out instances touching the image edge (their size is cut). Default True.

    Returns
    -------
    numpy.ndarray
        ``2 sqrt(area / pi)`` per instance, in pixels, in label order.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be a 2-D label map, got shape {labels.shape}.")
    areas = np.bincount(labels.ravel().astype(np.int64))
    keep = areas > 0
    keep[0] = False
    if exclude_border:
        edge = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
        keep[np.unique(edge)] = False
    return 2.0 * np.sqrt(areas[keep] / np.pi)


def blob_diameters_px(image: np.ndarray, *, smooth_px: float = 2.0) -> np.ndarray:
    """Equivalent diameters (px) of dark blobs found without a network (Otsu threshold).

    A model-free look at the particle sizes in pixels of a bright-field image: Gaussian
    smoothing (``smooth_px``), Otsu's threshold, a 3 x 3 opening, connected components of
    at least 4 px not touching the border. Touching particles merge and noise leaves specks,
    so use a robust summary (:func:`etem_helpers.preprocess.resample.area_weighted_median`).

    Parameters
    ----------
    image : (H, W) ndarray
        The micrograph (particles darker than the support).
    smooth_px : float, optional
        Gaussian sigma in pixels before thresholding. Default 2 (at 1, the shot noise of
        finely sampled images left thousands of specks that outweighed the particles).

    Returns
    -------
    numpy.ndarray
        Diameters in pixels (empty for a constant image).
    """
    from scipy import ndimage as ndi
    from skimage.filters import threshold_otsu

    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 2:
        raise ValueError(f"image must be 2-D, got shape {image.shape}.")
    smooth = ndi.gaussian_filter(image, float(smooth_px))
    if not np.ptp(smooth) > 0:
        return np.zeros(0)
    mask = ndi.binary_opening(smooth < threshold_otsu(smooth), np.ones((3, 3), bool))
    labels, _ = ndi.label(mask)
    d = equivalent_diameters_px(labels)
    return d[d >= 2.0 * np.sqrt(4.0 / np.pi)]


def diameter_range_px(diameters_px, quantiles: Sequence[float] = DIAMETER_QUANTILES) -> tuple:
    """(low, high) quantiles of particle diameters in pixels.

    Parameters
    ----------
    diameters_px : array_like of float
        Diameters in pixels (at least one finite positive value).
    quantiles : (float, float), optional
        Lower and upper quantile. Default :data:`DIAMETER_QUANTILES`.

    Returns
    -------
    (float, float)
    """
    d = np.asarray(diameters_px, dtype=np.float64).ravel()
    d = d[np.isfinite(d) & (d > 0)]
    if d.size == 0:
        raise ValueError("diameters_px has no finite positive value; nothing to take a range of.")
    low, high = (float(q) for q in quantiles)
    if not 0.0 <= low < high <= 1.0:
        raise ValueError(f"quantiles={tuple(quantiles)!r} must satisfy 0 <= low < high <= 1.")
    return tuple(float(v) for v in np.quantile(d, [low, high]))


def dataset_diameter_range_px(
    dataset_dir: str | os.PathLike,
    micrograph_ids: Sequence[str] | None = None,
    *,
    target_pixel_size_nm: float | None = None,
    quantiles: Sequence[float] = DIAMETER_QUANTILES,
) -> tuple[float, float]:
    """Diameter range (px) of the particles of a training dataset, as the network saw them.

    Parameters
    ----------
    dataset_dir : str or path-like
        A dataset folder (``manifest.csv`` with ``labels_path`` and ``pixel_size_nm``, as
        written by :func:`etem_helpers.simulate.generate_dataset` or
        :func:`etem_helpers.datasets.write_annotated_dataset`).
    micrograph_ids : sequence of str, optional
        The training split; None: every micrograph.
    target_pixel_size_nm : float, optional
        The pixel size the images were resampled to for training (``target_pixel_size_nm``
        of the training config); None: each image's own pixel size.
    quantiles : (float, float), optional
        See :func:`diameter_range_px`.

    Returns
    -------
    (float, float)
        Quantiles of the equivalent diameters of the labelled instances not cut by the
        border, in pixels of the grid the network was trained on.
    """
    from etem_helpers.datasets.folders import read_labels, read_manifest

    manifest = read_manifest(dataset_dir).set_index("micrograph_id")
    ids = list(manifest.index) if micrograph_ids is None else [str(m) for m in micrograph_ids]
    unknown = sorted(set(ids) - set(manifest.index))
    if unknown:
        raise ValueError(f"micrograph_ids {unknown[:3]} are not in {dataset_dir}.")
    diameters = []
    for mid in ids:
        row = manifest.loc[mid]
        d = equivalent_diameters_px(read_labels(Path(dataset_dir) / row["labels_path"]))
        if target_pixel_size_nm is not None:
            d = d * float(row["pixel_size_nm"]) / float(target_pixel_size_nm)
        diameters.append(d)
    return diameter_range_px(np.concatenate(diameters) if diameters else [], quantiles)


def add_diameter_range(model_path: str | os.PathLike) -> tuple[float, float]:
    """Write ``diameter_range_px`` into a checkpoint's card from its own training data.

    The training dataset is re-created from the card's config when its folder is missing
    (same generator, same seed: the same particles). Only the card entry changes; the
    weights are copied as stored.

    Returns
    -------
    (float, float)
        The range written.
    """
    import torch

    from etem_helpers.datasets.ensure import ensure_dataset
    from etem_helpers.io.files import replace_atomically

    from .checkpoint import _read_checkpoint_dict

    path = Path(model_path)
    checkpoint = _read_checkpoint_dict(path, "cpu")
    config = checkpoint.get("config") or {}
    simulate, split = config.get("simulate"), (config.get("split") or {}).get("train")
    if not simulate or not split:
        raise ValueError(f"{path}'s card has no simulated training data (config['simulate'] "
                         "and config['split']['train']); its size range cannot be recovered.")
    settings = {k: v for k, v in simulate.items() if k not in ("n_images", "out_dir")}
    dataset = ensure_dataset(config.get("dataset_dir") or simulate["out_dir"],
                             int(simulate["n_images"]), seed=int(config["seed"]),
                             **settings).path
    value = dataset_diameter_range_px(dataset, split,
                                      target_pixel_size_nm=config.get("target_pixel_size_nm"))
    checkpoint["diameter_range_px"] = list(value)
    with replace_atomically(path) as tmp:
        torch.save(checkpoint, tmp)
    return value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=add_diameter_range.__doc__.splitlines()[0])
    parser.add_argument("model", help="checkpoint (.pt) written by etem train")
    args = parser.parse_args(argv)
    low, high = add_diameter_range(args.model)
    print(f"{args.model}: diameter_range_px = [{low:.1f}, {high:.1f}] px")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
