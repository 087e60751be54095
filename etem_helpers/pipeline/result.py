"""The result type returned by :func:`etem_helpers.analyze` and the classical baselines."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from etem_helpers.io import as_path, replace_atomically, validate_pixel_size
from etem_helpers.measure import PARTICLE_COLUMNS

__all__ = ["AnalysisResult"]


@dataclass
class AnalysisResult:
    """Particles found in one micrograph.

    Attributes
    ----------
    labels : (H, W) ndarray of int32
        Instance label map: 0 background, one positive id per particle.
    particles : pandas.DataFrame
        One row per id in ``labels`` with at least the contract columns
        (:data:`etem_helpers.measure.PARTICLE_COLUMNS`); extra columns are allowed.
    probability : (H, W) ndarray of float32
        Foreground probability in [0, 1] (for the baselines a heuristic score, see
        their docstrings).
    pixel_size_nm : float
        Calibration used, nm per pixel.
    pixel_size_source : str
        Where the calibration came from (e.g. ``"argument"``, ``"file:MRC header"``).
    method : str
        Which method produced the result (e.g. ``"unet:light"``, ``"otsu_watershed"``).
    info : dict
        Free-form details (parameters, thresholds, timings).

    Notes
    -----
    ``__post_init__`` checks the shapes and dtypes; integer labels and real
    probabilities of another dtype are converted to int32 / float32 when that
    loses nothing, everything else raises with a message naming the field.
    """

    labels: np.ndarray
    particles: pd.DataFrame
    probability: np.ndarray
    pixel_size_nm: float
    pixel_size_source: str
    method: str = "unknown"
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        labels = np.asarray(self.labels)
        if labels.ndim != 2:
            raise ValueError(f"AnalysisResult.labels must be 2-D, got shape {labels.shape}.")
        if labels.dtype == bool or not np.issubdtype(labels.dtype, np.integer):
            raise TypeError(
                f"AnalysisResult.labels must be an integer label map, got dtype {labels.dtype}; "
                "label a boolean mask with skimage.measure.label first."
            )
        if labels.size and (labels.min() < 0 or labels.max() > np.iinfo(np.int32).max):
            raise ValueError(
                "AnalysisResult.labels must hold ids in 0..2**31-1; relabel with "
                "skimage.segmentation.relabel_sequential."
            )
        self.labels = labels.astype(np.int32, copy=False)

        probability = np.asarray(self.probability)
        if probability.shape != labels.shape:
            raise ValueError(
                f"AnalysisResult.probability has shape {probability.shape} but labels has "
                f"shape {labels.shape}; they must describe the same image."
            )
        if not np.issubdtype(probability.dtype, np.floating):
            raise TypeError(
                f"AnalysisResult.probability must be a float array in [0, 1], got dtype "
                f"{probability.dtype}."
            )
        self.probability = probability.astype(np.float32, copy=False)

        self.pixel_size_nm = validate_pixel_size(
            self.pixel_size_nm, argument="AnalysisResult.pixel_size_nm"
        )

        for name in ("pixel_size_source", "method"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise TypeError(f"AnalysisResult.{name} must be a non-empty str, got {value!r}.")
        if not isinstance(self.info, dict):
            raise TypeError(f"AnalysisResult.info must be a dict, got {type(self.info).__name__}.")

        if not isinstance(self.particles, pd.DataFrame):
            raise TypeError(
                "AnalysisResult.particles must be a pandas.DataFrame from "
                f"etem_helpers.measure.measure_particles, got {type(self.particles).__name__}."
            )
        missing = [c for c in PARTICLE_COLUMNS if c not in self.particles.columns]
        if missing:
            raise ValueError(
                f"AnalysisResult.particles lacks the contract columns {missing}; build it "
                "with etem_helpers.measure.measure_particles."
            )
        flat = self.labels.ravel()
        if flat.size and flat.max() <= 4 * flat.size:
            label_ids = np.flatnonzero(np.bincount(flat))  # fast path for compact ids
        else:
            label_ids = np.unique(flat)
        label_ids = label_ids[label_ids != 0]
        table_ids = np.sort(self.particles["particle_id"].to_numpy())
        if not np.array_equal(label_ids, table_ids):
            raise ValueError(
                f"AnalysisResult.particles has {table_ids.size} rows but labels holds "
                f"{label_ids.size} particle ids, or the ids differ; the table must have one "
                "row per nonzero id in labels (re-measure with measure_particles)."
            )

    @property
    def n_particles(self) -> int:
        """Number of particles (rows of ``particles``)."""
        return len(self.particles)

    def summary(self) -> dict:
        """Key numbers of the result as a plain dict (JSON-serialisable).

        Returns
        -------
        dict
            ``n_particles``, ``n_touching_border``, ``mean_diameter_nm``,
            ``median_diameter_nm``, ``std_diameter_nm`` (sample std, ddof=1),
            ``mean_aspect_ratio``, ``mean_roundness``, ``area_fraction`` (share of
            pixels inside a particle), ``n_with_fault`` (rows where ``has_fault`` is
            True), ``pixel_size_nm``, ``pixel_size_source``, ``method``. Statistics
            over zero particles are NaN (std needs two).
        """
        table = self.particles
        diameter = table["diameter_nm"].to_numpy(dtype=np.float64)
        n = int(diameter.size)
        nan = float("nan")
        has_fault = table["has_fault"].astype("boolean")
        return {
            "n_particles": n,
            "n_touching_border": int(table["touches_border"].astype(bool).sum()),
            "mean_diameter_nm": float(diameter.mean()) if n else nan,
            "median_diameter_nm": float(np.median(diameter)) if n else nan,
            "std_diameter_nm": float(diameter.std(ddof=1)) if n > 1 else nan,
            "mean_aspect_ratio": float(table["aspect_ratio"].mean()) if n else nan,
            "mean_roundness": float(table["roundness"].mean()) if n else nan,
            "area_fraction": float(np.count_nonzero(self.labels) / max(self.labels.size, 1)),
            "n_with_fault": int(has_fault.fillna(False).sum()),
            "pixel_size_nm": self.pixel_size_nm,
            "pixel_size_source": self.pixel_size_source,
            "method": self.method,
        }

    def to_csv(self, path, *, overwrite=False) -> Path:
        """Write the particle table to a CSV file.

        Parameters
        ----------
        path : str or bytes or pathlib.Path
            Destination file (e.g. ``"particles.csv"``); its folder must exist.
        overwrite : bool, optional
            Replace an existing file. Default False: an existing file is an error.

        Returns
        -------
        pathlib.Path
            The path written.

        Raises
        ------
        FileExistsError
            If ``path`` exists and ``overwrite`` is False.
        FileNotFoundError
            If the folder of ``path`` does not exist.
        IsADirectoryError
            If ``path`` is empty or a folder.
        TypeError
            If ``path`` is not a path.
        """
        if isinstance(path, str | bytes) and not path.strip():
            raise IsADirectoryError(
                "path is empty; give a file name for the particle table, e.g. 'particles.csv'."
            )
        path = as_path(path)
        if path.is_dir():
            raise IsADirectoryError(
                f"{path} is a folder; give a file name inside it, e.g. {path / 'particles.csv'}."
            )
        if path.exists() and not overwrite:
            raise FileExistsError(
                f"{path} already exists; pass overwrite=True to replace it or choose another name."
            )
        if not path.parent.is_dir():
            raise FileNotFoundError(
                f"The folder {path.parent} does not exist; create it before writing {path.name}."
            )
        with replace_atomically(path) as tmp:  # an existing file survives a failed write
            self.particles.to_csv(tmp, index=False)
        return path
