"""Dataset folders written by the simulator: manifest, particle table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from etem_helpers.io import as_path


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

