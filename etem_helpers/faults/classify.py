"""Fault classifiers: simulated dataset, random forests, a small CNN, thresholds, saving.

Labels are the simulator's ``fault_visible`` (a twin or intrinsic fault whose effect on the
fringes can be seen in this projection). Every particle is cut with its TRUE instance mask,
features are computed only for particles whose lattice our detector calls resolved (the
classifier is only ever asked about those), and train / validation / test are split by
micrograph, never by particle.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from .features import (
    GROSCHNER_FEATURES,
    PHYSICS_FEATURES,
    fft_patch,
    groschner2021_features,
    physics_features,
)
from .lattice import (
    LatticeResult,
    LatticeSettings,
    analyze_lattice,
    find_bragg_spots,
    particle_spectrum,
)

__all__ = [
    "DatasetConfig",
    "ParticleDataset",
    "particle_records",
    "build_dataset",
    "split_by_micrograph",
    "train_forest",
    "choose_threshold",
    "balanced_accuracy",
    "forest_probability",
    "train_cnn",
    "predict_cnn",
]


@dataclass(frozen=True)
class DatasetConfig:
    """How the simulated fault dataset is drawn.

    Attributes
    ----------
    n_micrographs : int
        Number of HRTEM micrographs.
    image_size_px : int
        Side of each micrograph.
    seed : int
        Micrograph ``i`` uses ``sample_params(default_rng([seed, i]), "hrtem", ...)`` and
        simulation seed ``seed * 100003 + i``.
    val_fraction, test_fraction : float
        Shares of micrographs in validation and test.
    """

    n_micrographs: int = 300
    image_size_px: int = 512
    seed: int = 0
    val_fraction: float = 0.2
    test_fraction: float = 0.2


@dataclass
class ParticleDataset:
    """Per-particle table, feature matrices and FFT patches (rows aligned)."""

    table: pd.DataFrame
    groschner: np.ndarray
    physics: np.ndarray
    patches: np.ndarray

    def subset(self, rows) -> ParticleDataset:
        rows = np.asarray(rows)
        return ParticleDataset(self.table.iloc[rows].reset_index(drop=True),
                               self.groschner[rows], self.physics[rows], self.patches[rows])


def _particle_record(image, lab, pid: int, area_px: int, bbox, pixel_size_nm: float,
                     s: LatticeSettings) -> dict:
    rec = {"particle_id": pid, "lattice": None, "groschner": None, "physics": None,
           "patch": None}
    if area_px < s.min_area_px:  # too small for a lattice: skip the transform
        rec["lattice"] = LatticeResult(False, float("nan"), "")
        return rec
    spec = particle_spectrum(image, lab, pid, s, bbox=bbox)
    lat = analyze_lattice(image, lab, pid, pixel_size_nm, s, spectrum=spec)
    rec["lattice"] = lat
    if lat.lattice_resolved:
        spots = lat.spots or find_bragg_spots(spec, pixel_size_nm, s)
        m = s.margin_px
        core = spec.crop[m:-m or None, m:-m or None] if min(spec.crop.shape) > 2 * m + 2 \
            else spec.crop
        rec["groschner"] = groschner2021_features(core + 0.0)
        rec["physics"] = physics_features(spec, spots, pixel_size_nm)
        rec["patch"] = fft_patch(spec, spots)
    return rec


def particle_records(image, labels, pixel_size_nm: float, particle_ids,
                     settings: LatticeSettings | None = None, *, n_threads: int = 1):
    """Lattice result, both feature vectors and the FFT patch of each particle.

    Parameters
    ----------
    image, labels : numpy.ndarray
        Micrograph and instance labels.
    pixel_size_nm : float
    particle_ids : iterable of int
    settings : LatticeSettings, optional
    n_threads : int
        Particles analysed in parallel threads (NumPy / SciPy release the GIL in the
        transforms); the results do not depend on it.

    Returns
    -------
    list of dict
        Keys ``particle_id``, ``lattice`` (LatticeResult), ``groschner``, ``physics``,
        ``patch`` (the last three None when the lattice is not resolved), in the order of
        ``particle_ids``.
    """
    from scipy import ndimage

    s = settings or LatticeSettings()
    lab = np.asarray(labels)
    ids = [int(pid) for pid in particle_ids]
    boxes = ndimage.find_objects(lab.astype(np.int64, copy=False), max_label=max(ids, default=0))
    areas = np.bincount(lab.ravel().astype(np.int64), minlength=max(ids, default=0) + 1)
    for pid in ids:
        if pid <= 0 or pid >= len(areas) or areas[pid] == 0:
            raise ValueError(f"particle_id={pid} is not in labels.")
    args = [(image, lab, pid, int(areas[pid]), boxes[pid - 1], pixel_size_nm, s) for pid in ids]
    if n_threads <= 1 or len(ids) < 2:
        return [_particle_record(*a) for a in args]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=int(n_threads)) as pool:
        return list(pool.map(lambda a: _particle_record(*a), args))


def _micrograph_rows(index: int, config: DatasetConfig):
    from ..simulate import sample_params, simulate_micrograph

    params = sample_params(np.random.default_rng([config.seed, index]), "hrtem",
                           config.image_size_px)
    sim = simulate_micrograph(params, seed=config.seed * 100003 + index)
    table = sim.particles
    records = particle_records(sim.image, sim.labels, params.pixel_size_nm,
                               table["particle_id"].to_numpy())
    rows, feats = [], []
    for rec, (_, truth) in zip(records, table.iterrows(), strict=True):
        lat = rec["lattice"]
        rows.append({
            "micrograph": index, "particle_id": rec["particle_id"],
            "fault_visible": bool(truth["fault_visible"]), "has_fault": bool(truth["has_fault"]),
            "fault_type": truth["fault_type"], "kind": truth["kind"], "shape": truth["shape"],
            "on_zone": bool(truth["on_zone"]),
            "truth_resolved": bool(np.isfinite(truth["fault_probability"])),
            "diameter_nm": float(truth["diameter_nm"]), "material": params.material,
            "dose_e_per_a2": float(params.dose_e_per_a2), "pixel_size_nm": params.pixel_size_nm,
            "lattice_resolved": lat.lattice_resolved, "d_spacing_nm": lat.d_spacing_nm,
            "zone_axis": lat.zone_axis,
        })
        feats.append(rec)
    return rows, feats


def build_dataset(config: DatasetConfig, *, progress: bool = False) -> ParticleDataset:
    """Simulate HRTEM micrographs and collect every particle (true masks and labels).

    Parameters
    ----------
    config : DatasetConfig
    progress : bool
        Print one line per 50 micrographs.

    Returns
    -------
    ParticleDataset
        All particles; feature rows of particles whose lattice is not resolved are NaN
        (patches zero).
    """
    rows, feats = [], []
    for index in range(config.n_micrographs):
        r, f = _micrograph_rows(index, config)
        rows.extend(r)
        feats.extend(f)
        if progress and (index + 1) % 50 == 0:
            print(f"  {index + 1}/{config.n_micrographs} micrographs, {len(rows)} particles",
                  flush=True)
    n = len(rows)
    groschner = np.full((n, len(GROSCHNER_FEATURES)), np.nan)
    physics = np.full((n, len(PHYSICS_FEATURES)), np.nan)
    patches = np.zeros((n, 2, 48, 48), dtype=np.float32)
    for i, rec in enumerate(feats):
        if rec["groschner"] is not None:
            groschner[i], physics[i], patches[i] = rec["groschner"], rec["physics"], rec["patch"]
    table = pd.DataFrame(rows)
    table["split"] = split_by_micrograph(table["micrograph"].to_numpy(), config)
    return ParticleDataset(table, groschner, physics, patches)


def split_by_micrograph(micrograph, config: DatasetConfig) -> np.ndarray:
    """"train" / "val" / "test" per row, drawn per micrograph (seeded permutation).

    Parameters
    ----------
    micrograph : array_like of int
        Micrograph index of each row (0 .. n_micrographs - 1).
    config : DatasetConfig

    Returns
    -------
    numpy.ndarray of str
    """
    n = config.n_micrographs
    order = np.random.default_rng([config.seed, 7]).permutation(n)
    n_test = int(round(config.test_fraction * n))
    n_val = int(round(config.val_fraction * n))
    split = np.array(["train"] * n, dtype=object)
    split[order[:n_test]] = "test"
    split[order[n_test:n_test + n_val]] = "val"
    return split[np.asarray(micrograph)].astype(str)


def train_forest(x, y, *, seed: int = 0, n_estimators: int = 300, max_depth: int | None = 14,
                 min_samples_leaf: int = 2):
    """A class-balanced random forest (scikit-learn).

    Parameters
    ----------
    x : array_like, shape (n, f)
    y : array_like of bool, shape (n,)
    seed, n_estimators, max_depth, min_samples_leaf
        Forest settings (the depth limit keeps the saved model small).

    Returns
    -------
    sklearn.ensemble.RandomForestClassifier
    """
    from sklearn.ensemble import RandomForestClassifier

    forest = RandomForestClassifier(n_estimators=n_estimators, max_depth=max_depth,
                                    min_samples_leaf=min_samples_leaf,
                                    class_weight="balanced", random_state=seed, n_jobs=1)
    return forest.fit(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=bool))


def forest_probability(model, x) -> np.ndarray:
    """P(fault) from a fitted forest; works for empty inputs and single-class training sets."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) == 0:
        return np.zeros(0)
    proba = model.predict_proba(x)
    classes = list(model.classes_)
    if True in classes or 1 in classes:
        return np.asarray(proba[:, classes.index(True)], dtype=np.float64)
    return np.zeros(len(x))


def balanced_accuracy(y_true, y_pred) -> float:
    """Mean of sensitivity and specificity (NaN terms dropped)."""
    t = np.asarray(y_true, dtype=bool)
    p = np.asarray(y_pred, dtype=bool)
    rates = [np.mean(p[t]) if t.any() else np.nan, np.mean(~p[~t]) if (~t).any() else np.nan]
    return float(np.nanmean(rates))


def choose_threshold(probability, y_true) -> float:
    """The probability threshold with the best balanced accuracy (ties: closest to 0.5).

    Parameters
    ----------
    probability : array_like
        Validation probabilities.
    y_true : array_like of bool

    Returns
    -------
    float
    """
    p = np.asarray(probability, dtype=np.float64)
    if p.size == 0:
        return 0.5
    candidates = np.unique(np.concatenate([[0.5], np.round(p, 4)]))
    scores = np.array([balanced_accuracy(y_true, p >= t) for t in candidates])
    best = np.flatnonzero(scores >= scores.max() - 1e-12)
    return float(candidates[best[np.argmin(np.abs(candidates[best] - 0.5))]])


@dataclass(frozen=True)
class CNNConfig:
    """Small CNN on the 2 x 48 x 48 patch (FFT and lattice image, see ``fft_patch``)."""

    epochs: int = 25
    batch_size: int = 64
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    channels: int = 16
    seed: int = 0


def _cnn(channels: int):
    import torch.nn as nn

    c = channels
    return nn.Sequential(
        nn.Conv2d(2, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c, 2 * c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(2 * c, 4 * c, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(4 * c, 1),
    )


def train_cnn(patches, y, config: CNNConfig | None = None):
    """Train the small CNN on CPU (flips and 180-degree rotations as augmentation).

    Parameters
    ----------
    patches : array_like, shape (n, 2, 48, 48)
    y : array_like of bool
    config : CNNConfig, optional

    Returns
    -------
    torch.nn.Module
        In eval mode.
    """
    import torch

    cfg = config or CNNConfig()
    torch.manual_seed(cfg.seed)
    gen = np.random.default_rng(cfg.seed)
    x = torch.from_numpy(np.asarray(patches, dtype=np.float32))
    t = torch.from_numpy(np.asarray(y, dtype=np.float32))
    model = _cnn(cfg.channels)
    pos = float(t.sum())
    weight = torch.tensor((len(t) - pos) / max(pos, 1.0))
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=weight)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate,
                            weight_decay=cfg.weight_decay)
    model.train()
    for _ in range(cfg.epochs):
        order = gen.permutation(len(t))
        for start in range(0, len(t), cfg.batch_size):
            idx = torch.from_numpy(order[start:start + cfg.batch_size])
            xb = x[idx]
            if gen.random() < 0.5:
                xb = torch.flip(xb, dims=[2])  # mirror about the strongest-spot axis
            if gen.random() < 0.5:
                xb = torch.flip(xb, dims=[2, 3])  # Friedel symmetry
            opt.zero_grad()
            loss = loss_fn(model(xb).squeeze(1), t[idx])
            loss.backward()
            opt.step()
    return model.eval()


def predict_cnn(model, patches) -> np.ndarray:
    """Fault probability of each patch from a CNN made by :func:`train_cnn`."""
    import torch

    if len(patches) == 0:
        return np.zeros(0)
    with torch.no_grad():
        x = torch.from_numpy(np.asarray(patches, dtype=np.float32))
        return torch.sigmoid(model(x).squeeze(1)).numpy().astype(np.float64)


def config_dict(config) -> dict:
    """A dataclass config as a plain dict (for JSON)."""
    return asdict(config)
