"""Dataset folders written by the simulator: manifest, particle table, images with their labels.

Layout (written by :func:`etem_helpers.simulate.generate_dataset`)::

    out_dir/images/sim_00000.mrc    float32, calibrated
    out_dir/labels/sim_00000.tif    uint16 instance labels, 0 = background
    out_dir/particles.csv           micrograph_id, contract particle columns, kind, faults
    out_dir/manifest.csv            one row per micrograph (paths relative to out_dir)
    out_dir/dataset.json            how it was made (generator, revision, arguments)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from etem_helpers.io import as_path, read_micrograph

__all__ = ["iter_samples", "read_labels", "read_manifest", "read_particles"]


# --------------------------------------------------------------------------------------
# Reading a dataset directory
# --------------------------------------------------------------------------------------
def _dataset_file(dataset_dir: str | Path, name: str) -> Path:
    path = as_path(dataset_dir, argument="dataset_dir") / name
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found. Expected a dataset directory written by "
            "etem_helpers.simulate (images/, labels/, manifest.csv, particles.csv)."
        )
    return path


def read_manifest(dataset_dir: str | Path) -> pd.DataFrame:
    """Read ``manifest.csv`` of a dataset directory (``micrograph_id`` as str).

    Parameters
    ----------
    dataset_dir : str or pathlib.Path
        Dataset directory.
    """
    return pd.read_csv(_dataset_file(dataset_dir, "manifest.csv"), dtype={"micrograph_id": str})


def read_particles(dataset_dir: str | Path) -> pd.DataFrame:
    """Read ``particles.csv`` of a dataset directory (``micrograph_id`` as str).

    Parameters
    ----------
    dataset_dir : str or pathlib.Path
        Dataset directory.
    """
    return pd.read_csv(
        _dataset_file(dataset_dir, "particles.csv"), dtype={"micrograph_id": str}
    )



def read_labels(path: str | Path) -> np.ndarray:
    """An instance label map written by the simulator (uint16 TIFF) as int32."""
    import tifffile

    return np.asarray(tifffile.imread(path)).astype(np.int32)


def iter_samples(
    dataset_dir: str | Path, ids: Sequence[str] | None = None
) -> Iterator[tuple[str, np.ndarray, np.ndarray, float]]:
    """Yield ``(micrograph_id, image, true labels, pixel_size_nm)`` of a dataset folder.

    Parameters
    ----------
    dataset_dir : str or pathlib.Path
        Dataset directory.
    ids : sequence of str, optional
        Micrographs to read, in this order (e.g. the test split); None: all.
    """
    dataset_dir = Path(dataset_dir)
    manifest = read_manifest(dataset_dir).set_index("micrograph_id")
    for micrograph_id in manifest.index if ids is None else ids:
        row = manifest.loc[micrograph_id]
        image = read_micrograph(dataset_dir / row["image_path"]).image
        labels = read_labels(dataset_dir / row["labels_path"])
        yield micrograph_id, np.asarray(image, dtype=np.float32), labels, float(row["pixel_size_nm"])
