"""Figures shared by the notebooks and the command line (matplotlib imported only when drawn)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from etem_helpers.preprocess.normalize import normalize_image

__all__ = ["labels_overlay", "save_png"]

#: RGB colour (0–255) of particle outlines in :func:`labels_overlay`.
OUTLINE_RGB = (255, 200, 0)


def labels_overlay(image: np.ndarray, labels: np.ndarray, *, rgb=OUTLINE_RGB) -> np.ndarray:
    """The micrograph in grey with every particle's outline drawn in colour.

    Parameters
    ----------
    image : numpy.ndarray
        (H, W) micrograph, any real dtype (shown with percentile normalisation).
    labels : numpy.ndarray
        (H, W) instance labels (0 background), e.g. ``AnalysisResult.labels``.
    rgb : (int, int, int)
        Outline colour.

    Returns
    -------
    numpy.ndarray
        (H, W, 3) uint8 image.
    """
    from skimage.segmentation import find_boundaries

    image, labels = np.asarray(image), np.asarray(labels)
    if image.shape != labels.shape:
        raise ValueError(f"image {image.shape} and labels {labels.shape} differ in shape; pass "
                         "the labels of this image.")
    grey = (normalize_image(image) * 255).astype(np.uint8)
    out = np.repeat(grey[..., None], 3, axis=2)
    out[find_boundaries(labels, mode="inner")] = rgb
    return out


def save_png(rgb: np.ndarray, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write an (H, W, 3) uint8 image as PNG; an existing file is replaced only with ``overwrite``."""
    from PIL import Image

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True (--overwrite) to "
                              "replace it, or choose another folder.")
    Image.fromarray(np.asarray(rgb, dtype=np.uint8)).save(path, format="PNG")
    return path
