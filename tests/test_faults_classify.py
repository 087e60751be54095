"""Fault classifiers: splits, thresholds, safe saving and loading (smoke size)."""

import numpy as np
import pytest

from etem_helpers import faults
from etem_helpers.faults.classify import (
    CNNConfig,
    DatasetConfig,
    balanced_accuracy,
    build_dataset,
    choose_threshold,
    predict_cnn,
    split_by_micrograph,
    train_cnn,
    train_forest,
)


def test_split_is_by_micrograph_and_deterministic():
    cfg = DatasetConfig(n_micrographs=20, seed=3)
    micrograph = np.repeat(np.arange(20), 5)
    split = split_by_micrograph(micrograph, cfg)
    assert np.array_equal(split, split_by_micrograph(micrograph, cfg))
    for m in range(20):
        assert len(set(split[micrograph == m])) == 1
    counts = {s: len(set(micrograph[split == s])) for s in ("train", "val", "test")}
    assert counts == {"train": 12, "val": 4, "test": 4}


def test_threshold_maximises_balanced_accuracy_on_validation():
    y = np.array([0, 0, 0, 0, 0, 0, 1, 1], bool)
    p = np.array([0.1, 0.2, 0.3, 0.35, 0.4, 0.7, 0.45, 0.9])
    t = choose_threshold(p, y)
    assert balanced_accuracy(y, p >= t) == pytest.approx(1 - 1 / 12)
    assert balanced_accuracy([True, False], [True, True]) == pytest.approx(0.5)


def _toy_forest(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    y = x[:, 0] > 0
    forest = train_forest(x, y, n_estimators=5, max_depth=3)
    clf = faults.FaultClassifier(forest, "groschner2021", 0.4, {"snr_min": 20.0}, {"note": "toy"})
    return faults.save_classifier(clf, tmp_path / "toy.skops"), forest, x


def test_skops_roundtrip_loads_with_trusted_types_only(tmp_path):
    path, forest, x = _toy_forest(tmp_path)
    loaded = faults.load_classifier(path)
    assert loaded.threshold == 0.4 and loaded.feature_set == "groschner2021"
    assert np.allclose(loaded.model.predict_proba(x), forest.predict_proba(x))
    assert loaded.settings().snr_min == 20.0


def test_skops_file_with_an_untrusted_type_is_refused(tmp_path):
    import datetime

    import skops.io as sio
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    _, forest, _ = _toy_forest(tmp_path)
    meta = {"feature_set": "groschner2021", "threshold": 0.5, "lattice": {}}
    path = tmp_path / "bad.skops"
    sio.dump({"model": forest, "info": {"when": datetime.date(2026, 1, 1)}, **meta}, path)
    assert "datetime.date" in sio.get_untrusted_types(file=path)
    with pytest.raises(ValueError, match="SKOPS_TRUSTED_TYPES"):
        faults.load_classifier(path)
    # a type skops trusts by default but that is no forest is refused too
    sio.dump({"model": Pipeline([("scale", StandardScaler()), ("rf", forest)]), "info": {},
              **meta}, path)
    with pytest.raises(ValueError, match="RandomForestClassifier"):
        faults.load_classifier(path)
    with pytest.raises(FileNotFoundError, match="train"):
        faults.load_classifier(tmp_path / "missing.skops")


def test_cnn_saves_as_state_dict_and_loads_with_weights_only(tmp_path):
    import torch

    rng = np.random.default_rng(1)
    patches = rng.normal(size=(16, 2, 48, 48)).astype(np.float32)
    y = np.arange(16) % 2 == 0
    patches[y, 0] += 1.0
    model = train_cnn(patches, y, CNNConfig(epochs=1, channels=4))
    clf = faults.FaultClassifier(model, "fft_patch", 0.5, {}, {"channels": 4})
    path = faults.save_classifier(clf, tmp_path / "cnn.pt")
    torch.load(path, weights_only=True)  # plain tensors and strings only
    loaded = faults.load_classifier(path)
    assert np.allclose(predict_cnn(loaded.model, patches), predict_cnn(model, patches), atol=1e-6)


def test_shipped_default_loads_and_is_small():
    clf = faults.load_classifier("default")
    assert 0.0 < clf.threshold < 1.0
    assert faults.DEFAULT_CLASSIFIER_PATH.stat().st_size < 8e6


def test_dataset_builder_is_deterministic_and_labels_come_from_the_simulator():
    cfg = DatasetConfig(n_micrographs=2, image_size_px=128, seed=1)
    a, b = build_dataset(cfg), build_dataset(cfg)
    assert a.table.equals(b.table)
    assert np.array_equal(a.physics, b.physics, equal_nan=True)
    resolved = a.table["lattice_resolved"].to_numpy(bool)
    assert np.isnan(a.physics[~resolved]).all() and np.isfinite(a.physics[resolved]).all()
    assert set(a.table["split"]) <= {"train", "val", "test"}
