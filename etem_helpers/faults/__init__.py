"""Stacking faults and twins per particle in HRTEM micrographs, and the lattice behind them.

Entry points:

* :func:`analyze_faults`: per particle ``lattice_resolved``, ``d_spacing_nm``, ``zone_axis``,
  ``fault_probability`` and ``has_fault`` (NaN / NA where the lattice is not resolved);
* :func:`load_classifier`: the shipped default classifier (or one saved by
  :func:`save_classifier`), loaded without executing code;
* :func:`check_calibration`: the pixel size implied by the fringes of a known material.

Submodules: ``lattice`` (windowed FFT, Bragg spots, zone axis), ``features`` (Groschner et al.
2021 baseline, physics features, GPA), ``classify`` (dataset, forests, CNN), ``calibration``,
``train`` (the reproducing command of the shipped model). Nothing runs at import.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .calibration import CalibrationCheck, check_calibration, material_spacings_nm, spacing_sd
from .classify import particle_records
from .lattice import LatticeSettings

__all__ = [
    "FaultClassifier",
    "analyze_faults",
    "load_classifier",
    "save_classifier",
    "check_calibration",
    "CalibrationCheck",
    "material_spacings_nm",
    "spacing_sd",
    "LatticeSettings",
    "DEFAULT_CLASSIFIER_PATH",
    "SKOPS_TRUSTED_TYPES",
]

DEFAULT_CLASSIFIER_PATH = Path(__file__).resolve().parent.parent / "models" / "faults_default.skops"

#: The only types a shipped ``.skops`` fault classifier may contain beyond skops' defaults.
SKOPS_TRUSTED_TYPES = (
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._tree.Tree",
    "numpy.ndarray",
    "numpy.dtype",
    "numpy.float64",
    "numpy.int64",
    "builtins.dict",
    "builtins.list",
    "builtins.tuple",
    "builtins.str",
    "builtins.float",
    "builtins.int",
    "builtins.bool",
)

_FEATURE_SETS = ("groschner2021", "physics", "physics+groschner2021", "fft_patch")


@dataclass
class FaultClassifier:
    """A fitted fault classifier with its decision threshold.

    Attributes
    ----------
    model : object
        A scikit-learn classifier with ``predict_proba`` (feature sets "groschner2021",
        "physics", "physics+groschner2021") or a torch module (feature set "fft_patch").
    feature_set : str
        Which per-particle input the model takes.
    threshold : float
        ``has_fault = fault_probability >= threshold`` (chosen on validation data).
    lattice : dict
        :class:`LatticeSettings` fields used to compute the features.
    info : dict
        Free-form provenance (training command, data, metrics).
    """

    model: object
    feature_set: str
    threshold: float
    lattice: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def settings(self) -> LatticeSettings:
        return LatticeSettings(**self.lattice)

    def predict_proba(self, records: list[dict]) -> np.ndarray:
        """Fault probability of records from :func:`classify.particle_records` (resolved only)."""
        if not records:
            return np.zeros(0)
        if self.feature_set == "fft_patch":
            from .classify import predict_cnn

            return predict_cnn(self.model, np.stack([r["patch"] for r in records]))
        from .classify import forest_probability

        return forest_probability(self.model, _feature_matrix(records, self.feature_set))


def _feature_matrix(records: list[dict], feature_set: str) -> np.ndarray:
    if feature_set == "groschner2021":
        return np.stack([r["groschner"] for r in records])
    if feature_set == "physics":
        return np.stack([r["physics"] for r in records])
    if feature_set == "physics+groschner2021":
        return np.stack([np.concatenate([r["physics"], r["groschner"]]) for r in records])
    raise ValueError(f"feature_set={feature_set!r} is not one of {_FEATURE_SETS}.")


def save_classifier(classifier: FaultClassifier, path) -> Path:
    """Save a forest classifier as ``.skops`` (or a CNN as a ``.pt`` state dict).

    Parameters
    ----------
    classifier : FaultClassifier
    path : str or Path
        ``*.skops`` for scikit-learn models, ``*.pt`` for the CNN.

    Returns
    -------
    Path
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"feature_set": classifier.feature_set, "threshold": float(classifier.threshold),
            "lattice": dict(classifier.lattice), "info": dict(classifier.info)}
    if path.suffix == ".skops":
        import zipfile

        import skops.io as sio

        sio.dump({"model": classifier.model, **meta}, path, compression=zipfile.ZIP_DEFLATED,
                 compresslevel=9)
    elif path.suffix == ".pt":
        import json

        import torch

        torch.save({"state_dict": classifier.model.state_dict(), "meta": json.dumps(meta),
                    "channels": int(classifier.info.get("channels", 16))}, path)
    else:
        raise ValueError(f"path={str(path)!r} must end in .skops (forest) or .pt (CNN).")
    return path


def load_classifier(path="default") -> FaultClassifier:
    """Load a fault classifier without executing code from the file.

    ``.skops`` files are loaded by :func:`skops.io.load` with the explicit trusted-type list
    :data:`SKOPS_TRUSTED_TYPES` (a file holding any type that skops does not trust by default
    and that is not on the list is refused before loading), and the model must be a
    ``RandomForestClassifier``; ``.pt`` files by ``torch.load(..., weights_only=True)``.

    Parameters
    ----------
    path : str or Path
        ``"default"`` for the shipped model (``etem_helpers/models/faults_default.skops``, or
        ``faults_default.pt`` when the decision rule chose the CNN).

    Returns
    -------
    FaultClassifier

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file; a file with untrusted types.
    """
    if str(path) == "default":
        path = DEFAULT_CLASSIFIER_PATH
        if not path.is_file() and path.with_suffix(".pt").is_file():
            path = path.with_suffix(".pt")  # the decision rule may ship the CNN
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"fault classifier {str(path)!r} does not exist; train one with "
                                "`python -m etem_helpers.faults.train --help`.")
    if path.suffix == ".skops":
        import skops.io as sio

        untrusted = [t for t in sio.get_untrusted_types(file=path)
                     if t not in SKOPS_TRUSTED_TYPES]
        if untrusted:
            raise ValueError(f"{str(path)!r} holds types outside SKOPS_TRUSTED_TYPES: "
                             f"{untrusted}; refusing to load it.")
        bundle = sio.load(path, trusted=list(SKOPS_TRUSTED_TYPES))
        from sklearn.ensemble import RandomForestClassifier

        if not isinstance(bundle.get("model"), RandomForestClassifier):
            raise ValueError(f"{str(path)!r} does not hold a RandomForestClassifier (found "
                             f"{type(bundle.get('model')).__name__}); refusing to use it.")
        return FaultClassifier(bundle["model"], bundle["feature_set"], float(bundle["threshold"]),
                               dict(bundle["lattice"]), dict(bundle["info"]))
    if path.suffix == ".pt":
        import json

        import torch

        from .classify import _cnn

        bundle = torch.load(path, map_location="cpu", weights_only=True)
        meta = json.loads(bundle["meta"])
        model = _cnn(int(bundle["channels"]))
        model.load_state_dict(bundle["state_dict"])
        return FaultClassifier(model.eval(), meta["feature_set"], float(meta["threshold"]),
                               meta["lattice"], meta["info"])
    raise ValueError(f"path={str(path)!r} must end in .skops or .pt.")


def analyze_faults(image, labels, pixel_size_nm: float, *, classifier=None,
                   settings: LatticeSettings | None = None,
                   n_threads: int | None = None) -> pd.DataFrame:
    """Lattice and fault columns for every particle of a micrograph.

    Parameters
    ----------
    image : numpy.ndarray
        2-D micrograph (raw counts or normalised; each particle is centred and windowed).
    labels : numpy.ndarray
        int instance labels of the same shape (0 background, one id per particle).
    pixel_size_nm : float
        Pixel size in nm.
    classifier : FaultClassifier, str, Path or None
        None or "default": the shipped classifier; a path: :func:`load_classifier`; False:
        lattice columns only (fault columns NaN / NA).
    settings : LatticeSettings, optional
        Defaults to the classifier's (the settings its features were computed with).
    n_threads : int, optional
        Threads over particles; default ``min(4, os.cpu_count())``. Results do not depend
        on it.

    Returns
    -------
    pandas.DataFrame
        One row per particle id in ``labels`` (sorted), columns ``particle_id``,
        ``lattice_resolved`` (bool), ``d_spacing_nm`` (NaN where not resolved),
        ``zone_axis`` ("[110]" or ""), ``fault_probability`` (NaN where not resolved) and
        ``has_fault`` (nullable boolean, NA where not resolved).
    """
    img = np.asarray(image)
    lab = np.asarray(labels)
    if img.ndim != 2 or lab.shape != img.shape:
        raise ValueError(f"image must be 2-D and labels the same shape; got {img.shape} and "
                         f"{lab.shape}.")
    if not np.isfinite(pixel_size_nm) or pixel_size_nm <= 0:
        raise ValueError(f"pixel_size_nm must be a positive number, got {pixel_size_nm!r}.")
    if classifier is None or (isinstance(classifier, str) and classifier == "default"):
        classifier = load_classifier("default")
    elif isinstance(classifier, (str, Path)):
        classifier = load_classifier(classifier)
    if settings is None:
        settings = classifier.settings() if classifier else LatticeSettings()
    ids = np.unique(lab)
    ids = ids[ids > 0]
    if not settings.resolvable_at(pixel_size_nm):  # low magnification: no fringes to find
        return _unresolved_table(ids)
    if n_threads is None:
        import os

        n_threads = min(4, os.cpu_count() or 1)
    records = particle_records(img, lab, float(pixel_size_nm), ids, settings,
                               n_threads=n_threads)
    resolved = np.array([r["lattice"].lattice_resolved for r in records], dtype=bool)
    probability = np.full(len(records), np.nan)
    if classifier and resolved.any():
        probability[resolved] = classifier.predict_proba(
            [r for r, ok in zip(records, resolved, strict=True) if ok])
    has_fault = pd.array([pd.NA] * len(records), dtype="boolean")
    if classifier:
        has_fault[resolved] = probability[resolved] >= classifier.threshold
    return pd.DataFrame({
        "particle_id": ids.astype(np.int64),
        "lattice_resolved": resolved,
        "d_spacing_nm": np.array([r["lattice"].d_spacing_nm for r in records], dtype=float),
        "zone_axis": [r["lattice"].zone_axis for r in records],
        "fault_probability": probability,
        "has_fault": has_fault,
    })


def _unresolved_table(ids: np.ndarray) -> pd.DataFrame:
    """The table of :func:`analyze_faults` when no particle's lattice can be resolved."""
    return pd.DataFrame({
        "particle_id": ids.astype(np.int64),
        "lattice_resolved": np.zeros(ids.size, dtype=bool),
        "d_spacing_nm": np.full(ids.size, np.nan),
        "zone_axis": [""] * ids.size,
        "fault_probability": np.full(ids.size, np.nan),
        "has_fault": pd.array([pd.NA] * ids.size, dtype="boolean"),
    })


def lattice_settings_dict(settings: LatticeSettings) -> dict:
    """Fields of a :class:`LatticeSettings` as a dict (stored with a classifier)."""
    return asdict(settings)
