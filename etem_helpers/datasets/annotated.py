"""A user's own annotated micrographs as a dataset folder (the simulator's format).

Images (any format :func:`etem_helpers.io.read_micrograph` reads) and their masks (PNG/TIFF:
binary masks, or instance label maps with one id per particle) are paired by file name and
written as ``images/*.mrc`` (calibrated), ``labels/*.tif``, ``manifest.csv`` and
``dataset.json``, so that training, evaluation and the notebooks read them exactly like
simulated data.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from etem_helpers._version import __version__
from etem_helpers.io import read_micrograph, validate_pixel_size, write_micrograph

__all__ = ["GENERATOR", "MASK_EXTENSIONS", "AnnotatedPair", "pair_files", "read_mask",
           "write_annotated_dataset"]

#: ``dataset.json`` generator tag of folders written here.
GENERATOR = "etem_helpers.datasets.write_annotated_dataset"
#: File endings read as masks.
MASK_EXTENSIONS = (".png", ".tif", ".tiff")


@dataclass(frozen=True)
class AnnotatedPair:
    """One micrograph file and the file of its hand-drawn mask."""

    image_path: Path
    mask_path: Path

    @property
    def name(self) -> str:
        return self.image_path.stem


def pair_files(images_dir: str | os.PathLike, masks_dir: str | os.PathLike) -> list[AnnotatedPair]:
    """Pair every image in ``images_dir`` with the mask of the same stem in ``masks_dir``.

    A mask may also be named ``<stem>_mask`` or ``<stem>_labels``. Images without a mask raise
    (nothing is silently left out); masks without an image are ignored.
    """
    images_dir, masks_dir = Path(images_dir), Path(masks_dir)
    for name, folder in (("--images", images_dir), ("--masks", masks_dir)):
        if not folder.is_dir():
            raise FileNotFoundError(f"{name} folder {folder} does not exist.")
    masks = {}
    for path in sorted(masks_dir.iterdir()):
        if path.suffix.lower() in MASK_EXTENSIONS:
            stem = path.stem
            for suffix in ("_mask", "_labels"):
                stem = stem.removesuffix(suffix)
            masks[stem] = path
    images = sorted(p for p in images_dir.iterdir() if p.is_file() and not p.name.startswith("."))
    if not images:
        raise FileNotFoundError(f"no files in the --images folder {images_dir}.")
    unpaired = [p.name for p in images if p.stem not in masks]
    if unpaired:
        raise FileNotFoundError(
            f"no mask in {masks_dir} for {unpaired[:5]}; name each mask like its image "
            f"(<stem>{MASK_EXTENSIONS[0]}, <stem>_mask.png or <stem>_labels.tif)."
        )
    return [AnnotatedPair(p, masks[p.stem]) for p in images]


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Instance labels (int32) from a mask file: binary masks become their 8-connected parts.

    A file with two values (0 and one other) is a binary mask; more values are instance ids.
    RGB(A) masks use their first channel.
    """
    from PIL import Image
    from scipy import ndimage

    path = Path(path)
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            mask = np.asarray(tifffile.imread(path))
        else:
            mask = np.asarray(Image.open(path))
    except Exception as error:  # PIL and tifffile raise many types for unreadable files
        raise ValueError(f"could not read the mask {path}: {error}") from error
    if mask.ndim == 3:
        mask = mask[..., 0]
    values = np.unique(mask)
    if values.size <= 2:
        labels, _ = ndimage.label(mask > values.min(), structure=np.ones((3, 3), dtype=bool))
        return labels.astype(np.int32)
    if not np.issubdtype(mask.dtype, np.integer) or mask.min() < 0:
        raise ValueError(f"{path} has {values.size} grey levels: not a binary mask nor "
                         "non-negative integer instance labels.")
    return mask.astype(np.int32)


def write_annotated_dataset(pairs: Sequence[AnnotatedPair], out_dir: str | os.PathLike, *,
                            pixel_size_nm: float | None = None) -> Path:
    """Write annotated micrographs as a dataset folder (``out_dir`` must not exist yet).

    Parameters
    ----------
    pairs : sequence of AnnotatedPair
        From :func:`pair_files`.
    out_dir : str or path-like
        New folder.
    pixel_size_nm : float, optional
        nm/px of every image; required when the files carry no calibration (never assumed),
        and overrides the files' calibration when given.

    Returns
    -------
    pathlib.Path
        ``out_dir``.
    """
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise FileExistsError(f"{out_dir} exists; choose a new folder for the dataset.")
    if pixel_size_nm is not None:
        pixel_size_nm = validate_pixel_size(pixel_size_nm, argument="pixel_size_nm")
    loaded = []
    for pair in pairs:  # read and check everything before writing anything
        micrograph = read_micrograph(pair.image_path, pixel_size_nm=pixel_size_nm)
        labels = read_mask(pair.mask_path)
        if labels.shape != micrograph.image.shape:
            raise ValueError(f"{pair.mask_path} is {labels.shape} but {pair.image_path} is "
                             f"{micrograph.image.shape}; a mask must match its image.")
        loaded.append((pair, micrograph, labels))
    import tifffile

    (out_dir / "images").mkdir(parents=True)
    (out_dir / "labels").mkdir()
    rows = []
    for pair, micrograph, labels in loaded:
        image_rel, labels_rel = f"images/{pair.name}.mrc", f"labels/{pair.name}.tif"
        write_micrograph(out_dir / image_rel, micrograph.image, micrograph.pixel_size_nm)
        tifffile.imwrite(out_dir / labels_rel, labels.astype(np.uint16 if labels.max() < 65536
                                                            else np.int32))
        rows.append({"micrograph_id": pair.name, "image_path": image_rel,
                     "labels_path": labels_rel, "pixel_size_nm": micrograph.pixel_size_nm,
                     "n_particles": int(len(np.unique(labels)) - 1), "regime": "annotated",
                     "source_image": str(pair.image_path), "source_mask": str(pair.mask_path)})
    pd.DataFrame(rows).to_csv(out_dir / "manifest.csv", index=False)
    info = {"generator": GENERATOR, "generator_version": __version__,
            "n_images": len(rows), "pixel_size_nm": pixel_size_nm}
    (out_dir / "dataset.json").write_text(json.dumps(info, indent=2) + "\n")
    return out_dir
