"""Post-processing: filtering instances and tuning split/filter settings on validation data."""

import numpy as np
import pytest

from etem_helpers.segmentation.instances import filter_instances
from etem_helpers.segmentation.postprocess import (
    DEFAULT_POSTPROCESS,
    postprocess_settings,
    probabilities_to_instances,
    score_postprocess,
    tune_postprocess,
)


def _scene(seed, shape=(96, 96)):
    """True disks predicted with confidence 0.95, plus faint spurious blobs at 0.6."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    truth = np.zeros(shape, np.int32)
    fg = np.full(shape, 0.02, np.float32)
    for i in range(1, 5):
        cy, cx, r = rng.uniform(15, shape[0] - 15), rng.uniform(15, shape[1] - 15), 6.0
        disk = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r) & (truth == 0)
        truth[disk] = i
    fg[truth > 0] = 0.95
    for _ in range(4):  # spurious blobs away from the particles
        while True:
            cy, cx = rng.uniform(5, shape[0] - 5), rng.uniform(5, shape[1] - 5)
            blob = (yy - cy) ** 2 + (xx - cx) ** 2 <= 9.0
            grown = (yy - cy) ** 2 + (xx - cx) ** 2 <= 64.0
            if not (grown & (truth > 0)).any():
                fg[blob] = 0.6
                break
    boundary = np.zeros(shape, np.float32)
    return np.stack([fg, boundary]), truth


def test_filter_removes_small_and_unsure_instances_and_keeps_order():
    labels = np.array([[1, 1, 0, 2, 2, 2, 0, 3]])
    prob = np.array([[0.9, 0.9, 0.0, 0.5, 0.6, 0.7, 0.0, 0.99]])
    np.testing.assert_array_equal(
        filter_instances(labels, prob, min_confidence=0.8), [[1, 1, 0, 0, 0, 0, 0, 2]]
    )
    np.testing.assert_array_equal(
        filter_instances(labels, min_size_px=2), [[1, 1, 0, 2, 2, 2, 0, 0]]
    )
    assert filter_instances(np.zeros((3, 3), int)).dtype == np.int32


def test_filter_rejects_bad_input():
    labels = np.ones((4, 4), int)
    with pytest.raises(ValueError, match="foreground_prob"):
        filter_instances(labels, min_confidence=0.5)
    with pytest.raises(ValueError, match="shape"):
        filter_instances(labels, np.ones((3, 4)), min_confidence=0.5)
    with pytest.raises(ValueError, match="non-negative integer"):
        filter_instances(-labels)
    with pytest.raises(ValueError, match="min_confidence"):
        filter_instances(labels, np.ones((4, 4)), min_confidence=1.5)


def test_settings_precedence_and_unknown_keys():
    settings = postprocess_settings({"h_px": 4.0, "threshold": 0.6}, threshold=0.3, h_px=None)
    assert settings["h_px"] == 4.0 and settings["threshold"] == 0.3
    assert set(settings) == set(DEFAULT_POSTPROCESS)
    with pytest.raises(ValueError, match="thresold"):
        postprocess_settings({"thresold": 0.5})


def test_tuning_finds_a_confidence_cut_that_removes_spurious_blobs():
    pairs = [_scene(seed) for seed in range(3)]
    probs, truths = [p for p, _ in pairs], [t for _, t in pairs]
    default = score_postprocess(probs, truths, DEFAULT_POSTPROCESS)
    assert default["fp"] >= 6 and default["f1"] < 0.8  # the faint blobs count as particles
    best, trials = tune_postprocess(probs, truths, rounds=2)
    tuned = score_postprocess(probs, truths, best)
    assert tuned["f1"] == 1.0 and tuned["fp"] == 0
    assert 0.6 < best["min_confidence"] <= 0.95 or best["threshold"] >= 0.6
    assert trials[0]["f1"] == pytest.approx(default["f1"])
    assert max(t["f1"] for t in trials) == tuned["f1"]
    assert tune_postprocess(probs, truths, rounds=2)[0] == best  # deterministic
    labels = probabilities_to_instances(probs[0][0], probs[0][1], **best)
    assert labels.max() == truths[0].max()


def test_tuning_rejects_bad_arguments():
    prob, truth = _scene(0)
    with pytest.raises(ValueError, match="at least one"):
        tune_postprocess([], [])
    with pytest.raises(ValueError, match="rounds"):
        tune_postprocess([prob], [truth], rounds=0)
    with pytest.raises(ValueError, match="Unknown"):
        tune_postprocess([prob], [truth], grid={"speed": (1, 2)})
    with pytest.raises(ValueError, match="one of each"):
        score_postprocess([prob], [truth, truth], DEFAULT_POSTPROCESS)
