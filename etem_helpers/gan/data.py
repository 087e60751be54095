"""Training pairs for the GAN: (conditioning planes, real image) crops of annotated micrographs.

What a user has is a few hand-annotated real micrographs. Each gives many crop pairs: a
random window (biased towards windows with particles in them), one of the 8 flips/rotations
of the square (particles have no preferred orientation on the support), the mask turned into
conditioning planes (:func:`etem_helpers.gan.conditioning.condition_planes`) and the image in
GAN units (robust-normalised to [-1, 1] over the *whole* micrograph, so that a crop keeps the
grey levels it has in its image).

Crop ``i`` of epoch ``e`` is drawn from ``SeedSequence((seed, e, i))``: the same for any
number of data-loader workers.

Nothing runs at import.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from etem_helpers.gan.conditioning import condition_planes, to_signed_unit

try:  # a torch Dataset when torch is there; plain object otherwise (imports stay light)
    from torch.utils.data import Dataset as _TorchDataset
except ImportError:  # pragma: no cover
    _TorchDataset = object

__all__ = ["PairedCrops", "TrainingImage", "training_images"]


@dataclass(frozen=True)
class TrainingImage:
    """One annotated micrograph, ready for cropping.

    Attributes
    ----------
    name : str
        Where it came from (shown in errors and reports).
    image : numpy.ndarray
        float32, GAN units ([-1, 1]).
    labels : numpy.ndarray
        int32 instance labels (0 = background).
    pixel_size_nm : float
        nm/px.
    simulated : numpy.ndarray or None
        The simulator's image of the same labels (GAN units), for models conditioned on it.
    """

    name: str
    image: np.ndarray
    labels: np.ndarray
    pixel_size_nm: float
    simulated: np.ndarray | None = None


def training_images(
    samples: Sequence[tuple[str, np.ndarray, np.ndarray, float]],
) -> list[TrainingImage]:
    """Annotated micrographs ``(name, image, labels, pixel_size_nm)`` as :class:`TrainingImage`.

    ``labels`` may be a binary mask (its 8-connected blobs become the instances, as in
    :func:`etem_helpers.datasets.real.sintering_samples`) or instance labels.
    """
    from scipy import ndimage

    out = []
    for k, sample in enumerate(samples):
        if len(sample) != 4:
            raise ValueError(
                f"samples[{k}] must be (name, image, labels, pixel_size_nm), got {len(sample)} "
                "items."
            )
        name, image, labels, pixel_size_nm = sample
        image = np.asarray(image)
        labels = np.asarray(labels)
        if image.ndim != 2 or labels.shape != image.shape:
            raise ValueError(
                f"{name}: image {image.shape} and labels {labels.shape} must be 2-D and the same "
                "shape."
            )
        if labels.dtype == bool or labels.max(initial=0) <= 1:
            labels, _ = ndimage.label(labels > 0, structure=np.ones((3, 3), dtype=bool))
        out.append(TrainingImage(str(name), to_signed_unit(image), labels.astype(np.int32),
                                 float(pixel_size_nm)))
    if not out:
        raise ValueError("samples is empty; pass at least one annotated micrograph.")
    return out


def _dihedral(array: np.ndarray, k: int) -> np.ndarray:
    """One of the 8 symmetries of the square (k = 0..7) applied to the last two axes."""
    out = np.rot90(array, k % 4, axes=(-2, -1))
    if k >= 4:
        out = out[..., ::-1]
    return np.ascontiguousarray(out)


class PairedCrops(_TorchDataset):
    """Random (conditioning, image) crop pairs of annotated micrographs.

    Parameters
    ----------
    images : sequence of TrainingImage
        From :func:`training_images`.
    crop_px : int
        Crop side (a multiple of 16, at most the smallest image side).
    crops_per_epoch : int
        Length of the dataset.
    seed : int
        Crop ``i`` of epoch ``e`` comes from ``SeedSequence((seed, e, i))``.
    augment : bool
        Apply a random flip/rotation.
    min_foreground : float
        Redraw a window (up to 10 times) whose particle fraction is below this.
    with_simulation : bool
        Add the ``simulated`` plane (every image must then carry ``simulated``).
    """

    def __init__(self, images: Sequence[TrainingImage], *, crop_px: int = 128,
                 crops_per_epoch: int = 256, seed: int = 0, augment: bool = True,
                 min_foreground: float = 0.05, with_simulation: bool = False):
        self.images = list(images)
        if not self.images:
            raise ValueError("images is empty; pass at least one TrainingImage.")
        smallest = min(min(im.image.shape) for im in self.images)
        if isinstance(crop_px, bool) or not isinstance(crop_px, int) or crop_px % 16 \
                or not 16 <= crop_px <= smallest:
            raise ValueError(
                f"crop_px must be a multiple of 16 between 16 and the smallest image side "
                f"({smallest} px), got {crop_px!r}."
            )
        if isinstance(crops_per_epoch, bool) or not isinstance(crops_per_epoch, int) \
                or crops_per_epoch < 1:
            raise ValueError(f"crops_per_epoch must be a positive integer, got {crops_per_epoch!r}.")
        if with_simulation and any(im.simulated is None for im in self.images):
            raise ValueError("with_simulation=True needs TrainingImage.simulated on every image.")
        self.crop_px = crop_px
        self.crops_per_epoch = crops_per_epoch
        self.seed = int(seed)
        self.augment = bool(augment)
        self.min_foreground = float(min_foreground)
        self.with_simulation = bool(with_simulation)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw a new set of crops (call once per epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.crops_per_epoch

    def pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Crop ``index`` of the current epoch as NumPy arrays ``(C, H, W)``, ``(1, H, W)``."""
        rng = np.random.default_rng(np.random.SeedSequence((self.seed, self.epoch, int(index))))
        item = self.images[int(rng.integers(len(self.images)))]
        n = self.crop_px
        height, width = item.image.shape
        for _ in range(10):
            y0 = int(rng.integers(0, height - n + 1))
            x0 = int(rng.integers(0, width - n + 1))
            window = (slice(y0, y0 + n), slice(x0, x0 + n))
            if (item.labels[window] > 0).mean() >= self.min_foreground:
                break
        simulated = item.simulated[window] if self.with_simulation else None
        cond = condition_planes(item.labels[window], item.pixel_size_nm, rng=rng,
                                simulated=simulated)
        target = item.image[window][None]
        if self.augment:
            k = int(rng.integers(8))
            cond, target = _dihedral(cond, k), _dihedral(target, k)
        return cond.astype(np.float32), target.astype(np.float32)

    def __getitem__(self, index: int):
        import torch

        cond, target = self.pair(index)
        return torch.from_numpy(cond), torch.from_numpy(target)
