"""Training data for the U-Net: aligned augmentations and the torch Dataset of tiles."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage

from etem_helpers.datasets.folders import read_labels, read_manifest
from etem_helpers.io import as_path, read_micrograph
from etem_helpers.preprocess.normalize import normalize_image
from etem_helpers.preprocess.resample import resample_to_pixel_size
from etem_helpers.preprocess.tiles import _check_tile_args, _pad_to_tile, tile_positions
from etem_helpers.segmentation.instances import labels_to_targets

try:  # the Dataset subclasses torch's Dataset when torch is there (it is a dependency)
    from torch.utils.data import Dataset as _TorchDataset
except ImportError:  # pragma: no cover - torch is a hard dependency of the package
    _TorchDataset = object  # type: ignore[assignment,misc]


# --------------------------------------------------------------------------------------
# Augmentation
# --------------------------------------------------------------------------------------
def _geometric(
    image: np.ndarray, labels: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One of the 8 symmetries of the square, identical for image and labels."""
    k = int(rng.integers(4))
    flip = bool(rng.integers(2))
    image, labels = np.rot90(image, k), np.rot90(labels, k)
    if flip:
        image, labels = image[:, ::-1], labels[:, ::-1]
    return np.ascontiguousarray(image), np.ascontiguousarray(labels)


def _intensity(
    image: np.ndarray,
    rng: np.random.Generator,
    *,
    blur_probability: float = 0.3,
    max_blur_sigma_px: float = 1.2,
) -> np.ndarray:
    """Image-only changes on a [0, 1]-normalised image: contrast, gamma, blur, dose noise."""
    out = image.astype(np.float32, copy=True)
    if rng.random() < 0.8:  # contrast and brightness
        contrast = rng.uniform(0.7, 1.3)
        mean = float(out.mean())
        out = (out - mean) * contrast + mean + rng.uniform(-0.1, 0.1)
    if rng.random() < 0.5:  # gamma (monotonic)
        out = np.clip(out, 0.0, 1.0) ** rng.uniform(0.7, 1.5)
    if rng.random() < blur_probability:  # defocus / drift / vibration blur
        out = ndimage.gaussian_filter(out, sigma=rng.uniform(0.3, max_blur_sigma_px))
    if rng.random() < 0.5:  # lower dose: Poisson noise on 20–500 counts at intensity 1
        counts_at_one = rng.uniform(20.0, 500.0)
        out = rng.poisson(np.clip(out, 0.0, None) * counts_at_one) / counts_at_one
    return np.asarray(out, dtype=np.float32)


def augment_pair(
    image: np.ndarray,
    labels: np.ndarray,
    *,
    rng: np.random.Generator,
    geometric: bool = True,
    intensity: bool = True,
    blur_probability: float = 0.3,
    max_blur_sigma_px: float = 1.2,
) -> tuple[np.ndarray, np.ndarray]:
    """Randomly augment an image crop and its label map, keeping them aligned.

    Geometric changes (90° rotations and flips: exact, no interpolation) are applied to the
    image and the *label map* identically, before targets are computed from the labels.
    Intensity changes (contrast/brightness, gamma, Gaussian blur, Poisson noise at a random
    lower dose) touch the image only.

    Parameters
    ----------
    image : numpy.ndarray
        (t, t) image normalised to about [0, 1].
    labels : numpy.ndarray
        (t, t) instance label map.
    rng : numpy.random.Generator
        Source of randomness (e.g. ``numpy.random.default_rng(seed)``).
    geometric, intensity : bool
        Which kinds of augmentation to apply.
    blur_probability : float
        Probability (0–1) of a Gaussian blur (intensity augmentation). The labels are not
        blurred, so the network learns where the edge of a blurred particle lies.
    max_blur_sigma_px : float
        The blur's standard deviation is drawn uniformly from 0.3 px to this (pixels, >= 0.3).

    Returns
    -------
    image : numpy.ndarray
        float32 (t, t).
    labels : numpy.ndarray
        (t, t), same dtype and label values as the input.
    """
    if image.shape != labels.shape:
        raise ValueError(
            f"image {image.shape} and labels {labels.shape} must have the same shape."
        )
    if not 0.0 <= blur_probability <= 1.0:
        raise ValueError(f"blur_probability={blur_probability!r} must be in [0, 1].")
    if not max_blur_sigma_px >= 0.3:
        raise ValueError(f"max_blur_sigma_px={max_blur_sigma_px!r} must be >= 0.3 (pixels).")
    if geometric:
        image, labels = _geometric(image, labels, rng)
    if intensity:
        image = _intensity(
            image, rng, blur_probability=blur_probability, max_blur_sigma_px=max_blur_sigma_px
        )
    return np.asarray(image, dtype=np.float32), labels


# --------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TileItem:
    """One dataset item: which micrograph, and the tile corner (None for random crops)."""

    micrograph_id: str
    y: int | None = None
    x: int | None = None



class SegmentationDataset(_TorchDataset):
    """Crops or tiles of simulated micrographs with aligned segmentation targets.

    Each micrograph is read once (``etem_helpers.io.read_micrograph`` for the image,
    tifffile for the labels), optionally resampled to ``target_pixel_size_nm``, normalised
    over the whole micrograph (as at inference), reflect-padded if smaller than a tile, and
    kept in memory (the course datasets are small).

    Parameters
    ----------
    dataset_dir : str or pathlib.Path
        Dataset directory (``manifest.csv``, ``images/``, ``labels/``).
    micrograph_ids : sequence or None
        Micrographs to use (e.g. ``split["train"]``); None uses all in the manifest.
    tile_px : int
        Side of the crops in pixels.
    mode : {"random", "grid"}
        ``"random"``: ``tiles_per_image`` random crops per micrograph (training).
        ``"grid"``: the regular tile grid of :func:`tile_positions` (validation, testing).
    tiles_per_image : int
        Random crops per micrograph per epoch (``mode="random"`` only).
    overlap_px : int
        Overlap of the grid tiles in pixels (``mode="grid"`` only).
    target_pixel_size_nm : float or None
        Resample every micrograph to this pixel size (nm/px); None keeps each file's own.
    target : {"instances", "foreground"}
        ``"instances"``: (2, t, t) from ``etem_helpers.segmentation.labels_to_targets``
        (foreground, touching boundary). ``"foreground"``: (1, t, t) labels > 0.
    augment : bool
        Apply random flips and 90° rotations (image and labels alike).
    intensity_augment : bool
        With ``augment``, also apply contrast, gamma, blur and dose noise to the image.
    blur_probability, max_blur_sigma_px : float
        The blur of the intensity augmentation (see :func:`augment_pair`).
    normalize : {"percentile", "zscore"}
        Method passed to :func:`normalize_image`.
    seed : int
        Item ``i`` uses ``numpy.random.default_rng([seed, epoch, i])``: identical results for
        any number of DataLoader workers; call :meth:`set_epoch` to draw new crops each epoch.

    Attributes
    ----------
    items : list of TileItem
        ``items[i].micrograph_id`` is the micrograph of item ``i`` (for leakage checks).
    micrograph_ids : list of str
        Micrographs in this dataset.
    pixel_sizes_nm : dict
        Pixel size (nm/px) used for each micrograph after resampling (filled when read).
    """

    def __init__(
        self,
        dataset_dir: str | Path,
        micrograph_ids: Sequence[Any] | None = None,
        *,
        tile_px: int = 256,
        mode: str = "random",
        tiles_per_image: int = 8,
        overlap_px: int = 32,
        target_pixel_size_nm: float | None = None,
        target: str = "instances",
        augment: bool = False,
        intensity_augment: bool = True,
        blur_probability: float = 0.3,
        max_blur_sigma_px: float = 1.2,
        normalize: str = "percentile",
        seed: int = 0,
    ) -> None:
        if mode not in ("random", "grid"):
            raise ValueError(f"mode={mode!r} is not known; use 'random' or 'grid'.")
        if target not in ("instances", "foreground"):
            raise ValueError(f"target={target!r} is not known; use 'instances' or 'foreground'.")
        if mode == "random" and (int(tiles_per_image) != tiles_per_image or tiles_per_image < 1):
            raise ValueError(f"tiles_per_image must be a positive integer, got {tiles_per_image}.")
        _check_tile_args(tile_px, overlap_px)
        self.dataset_dir = as_path(dataset_dir, argument="dataset_dir")
        self.tile_px = int(tile_px)
        self.mode = mode
        self.tiles_per_image = int(tiles_per_image)
        self.overlap_px = int(overlap_px)
        self.target_pixel_size_nm = target_pixel_size_nm
        self.target = target
        self.augment = bool(augment)
        self.intensity_augment = bool(intensity_augment)
        self.blur = {"blur_probability": float(blur_probability),
                     "max_blur_sigma_px": float(max_blur_sigma_px)}
        self.normalize = normalize
        self.seed = int(seed)
        self.epoch = 0
        self.pixel_sizes_nm: dict[str, float] = {}
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

        manifest = read_manifest(self.dataset_dir)
        duplicated = manifest["micrograph_id"][manifest["micrograph_id"].duplicated()]
        if len(duplicated):
            raise ValueError(
                f"{self.dataset_dir / 'manifest.csv'} lists micrograph ids more than once: "
                f"{sorted(set(duplicated))[:10]}; each micrograph needs a unique id."
            )
        manifest = manifest.set_index("micrograph_id", drop=False)
        if micrograph_ids is None:
            ids = list(manifest.index)
        else:
            ids = [str(mid) for mid in micrograph_ids]
            missing = sorted(set(ids) - set(manifest.index))
            if missing:
                raise ValueError(
                    f"micrograph_ids not in {self.dataset_dir / 'manifest.csv'}: "
                    f"{missing[:10]}{' ...' if len(missing) > 10 else ''}."
                )
        if not ids:
            raise ValueError("No micrographs selected; micrograph_ids is empty.")
        self._manifest = manifest
        self.micrograph_ids = ids

        self.items: list[TileItem] = []
        for mid in ids:
            if mode == "random":
                self.items.extend(TileItem(mid) for _ in range(self.tiles_per_image))
            else:
                image, _ = self._load(mid)
                for y, x in tile_positions(
                    image.shape, tile_px=self.tile_px, overlap_px=self.overlap_px
                ):
                    self.items.append(TileItem(mid, int(y), int(x)))

    def __len__(self) -> int:
        return len(self.items)

    def set_epoch(self, epoch: int) -> None:
        """Change the random crops and augmentations (deterministically) for a new epoch."""
        self.epoch = int(epoch)

    def _load(self, micrograph_id: str) -> tuple[np.ndarray, np.ndarray]:
        """Read, resample, normalise and pad one micrograph (cached)."""
        if micrograph_id in self._cache:
            return self._cache[micrograph_id]

        row = self._manifest.loc[micrograph_id]
        image_path = self.dataset_dir / str(row["image_path"])
        labels_path = self.dataset_dir / str(row["labels_path"])
        image, pixel_size_nm, _ = read_micrograph(image_path, require_calibration=False)
        image = np.asarray(image)
        labels = read_labels(labels_path)
        if image.shape != labels.shape:
            raise ValueError(
                f"{image_path} has shape {image.shape} but {labels_path} has {labels.shape}; "
                "images and label maps must match."
            )
        if pixel_size_nm is None and "pixel_size_nm" in row and pd.notna(row["pixel_size_nm"]):
            pixel_size_nm = float(row["pixel_size_nm"])
        if self.target_pixel_size_nm is not None:
            if pixel_size_nm is None:
                raise ValueError(
                    f"{image_path} has no pixel size (header and manifest), so it cannot be "
                    "resampled to target_pixel_size_nm; fix the file or pass "
                    "target_pixel_size_nm=None."
                )
            image, new_size = resample_to_pixel_size(
                image, pixel_size_nm, self.target_pixel_size_nm
            )
            labels, _ = resample_to_pixel_size(
                labels, pixel_size_nm, self.target_pixel_size_nm, is_label=True
            )
            pixel_size_nm = new_size
        if pixel_size_nm is not None:
            self.pixel_sizes_nm[micrograph_id] = float(pixel_size_nm)
        image = normalize_image(image, method=self.normalize)
        # Pad image and labels the same way (reflect) so that they stay aligned.
        image = _pad_to_tile(image, self.tile_px)
        labels = _pad_to_tile(labels, self.tile_px)
        self._cache[micrograph_id] = (image, labels)
        return image, labels

    def _targets(self, labels: np.ndarray) -> np.ndarray:
        if self.target == "foreground":
            return (labels > 0).astype(np.float32)[None]

        return np.asarray(labels_to_targets(labels), dtype=np.float32)

    def __getitem__(self, index: int):
        import torch

        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items.")
        index = index % len(self)
        item = self.items[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        image, labels = self._load(item.micrograph_id)
        t = self.tile_px
        if item.y is None:
            y = int(rng.integers(image.shape[0] - t + 1))
            x = int(rng.integers(image.shape[1] - t + 1))
        else:
            y, x = item.y, item.x
        image_crop = image[y : y + t, x : x + t]
        labels_crop = labels[y : y + t, x : x + t]
        if self.augment:
            image_crop, labels_crop = augment_pair(
                image_crop, labels_crop, rng=rng, intensity=self.intensity_augment, **self.blur
            )
        targets = self._targets(np.ascontiguousarray(labels_crop))
        image_tensor = torch.from_numpy(np.ascontiguousarray(image_crop, dtype=np.float32)[None])
        return image_tensor, torch.from_numpy(np.ascontiguousarray(targets))

