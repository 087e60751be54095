"""Tests for etem_helpers.segmentation.instances (targets for touching particles and their splitting)."""

import numpy as np
import pytest

from etem_helpers.segmentation.instances import labels_to_targets, split_instances


def _disk(shape, center, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - center[0]) ** 2 + (xx - center[1]) ** 2 <= radius**2


def _paint(shape, disks):
    """Label map with one id per disk, later disks painted over earlier ones."""
    labels = np.zeros(shape, dtype=np.int32)
    for i, (center, radius) in enumerate(disks, start=1):
        labels[_disk(shape, center, radius)] = i
    return labels


def _iou(a, b):
    return np.logical_and(a, b).sum() / np.logical_or(a, b).sum()


def _best_iou_per_truth(truth, pred):
    return [
        max((_iou(truth == t, pred == p) for p in range(1, pred.max() + 1)), default=0.0)
        for t in range(1, truth.max() + 1)
    ]


TWO_TOUCHING = [((32, 22), 12), ((32, 45), 12)]  # centres 23 px apart, radii 12: overlap 1 px


def test_targets_boundary_only_at_contact():
    labels = _paint((64, 70), TWO_TOUCHING)
    targets = labels_to_targets(labels, boundary_width_px=2)
    assert targets.dtype == np.float32 and targets.shape == (2, 64, 70)
    np.testing.assert_array_equal(targets[0], labels > 0)
    boundary = targets[1] > 0
    assert boundary.any()
    # Boundary is a subset of foreground and lies near the contact column (x ~ 33-34).
    assert not (boundary & (labels == 0)).any()
    ys, xs = np.nonzero(boundary)
    assert xs.min() >= 33 - 3 and xs.max() <= 34 + 3
    # Both particles contribute boundary pixels.
    assert set(np.unique(labels[boundary])) == {1, 2}
    # Each boundary pixel really is within 2 px of the other particle.
    from scipy import ndimage as ndi

    for own, other in ((1, 2), (2, 1)):
        dist_to_other = ndi.distance_transform_edt(labels != other)
        assert np.all(dist_to_other[boundary & (labels == own)] <= 2.0)
        # ... and every pixel of `own` that close to `other` is marked.
        close = (labels == own) & (dist_to_other <= 2.0)
        assert np.all(boundary[close])


def test_targets_isolated_particle_has_no_boundary():
    labels = _paint((48, 48), [((24, 24), 10)])
    targets = labels_to_targets(labels)
    assert targets[1].sum() == 0
    assert targets[0].sum() == (labels > 0).sum()


def test_targets_particle_at_image_edge_has_no_boundary():
    labels = _paint((40, 40), [((0, 20), 8), ((39, 39), 6)])
    assert labels_to_targets(labels)[1].sum() == 0


def test_targets_wider_band_marks_more_pixels():
    labels = _paint((64, 70), TWO_TOUCHING)
    narrow = labels_to_targets(labels, boundary_width_px=1)[1].sum()
    wide = labels_to_targets(labels, boundary_width_px=3)[1].sum()
    assert 0 < narrow < wide


def test_targets_reject_bad_input():
    with pytest.raises(ValueError, match="2-D"):
        labels_to_targets(np.zeros((2, 8, 8), dtype=int))
    with pytest.raises(TypeError, match="integer"):
        labels_to_targets(np.zeros((8, 8), dtype=float))
    with pytest.raises(ValueError, match="boundary_width_px"):
        labels_to_targets(np.zeros((8, 8), dtype=int), boundary_width_px=0)


def test_split_ideal_targets_recovers_two_touching_disks():
    labels = _paint((64, 70), TWO_TOUCHING)
    targets = labels_to_targets(labels)
    # Without the boundary map they would be one connected blob.
    from scipy import ndimage as ndi

    assert ndi.label(labels > 0)[1] == 1
    pred = split_instances(targets[0], targets[1])
    assert pred.dtype == np.int32 and pred.shape == labels.shape
    assert pred.max() == 2
    assert min(_best_iou_per_truth(labels, pred)) > 0.9


def test_split_three_touching_in_a_row():
    labels = _paint((50, 100), [((25, 18), 11), ((25, 39), 11), ((25, 60), 11)])
    targets = labels_to_targets(labels)
    pred = split_instances(targets[0], targets[1])
    assert pred.max() == 3
    assert min(_best_iou_per_truth(labels, pred)) > 0.9
    # Ids are consecutive and ordered left to right (raster order of first pixel).
    assert set(np.unique(pred)) == {0, 1, 2, 3}


def test_split_survives_gaps_in_the_predicted_boundary():
    labels = _paint((64, 70), TWO_TOUCHING)
    targets = labels_to_targets(labels)
    boundary = targets[1].copy()
    boundary[32:, :] = 0.0  # the network found only the upper half of the contact band
    from scipy import ndimage as ndi

    assert ndi.label((targets[0] > 0) & (boundary < 0.5))[1] == 1  # cores still touch
    pred = split_instances(targets[0], boundary)
    assert pred.max() == 2
    assert min(_best_iou_per_truth(labels, pred)) > 0.85


def test_split_without_boundary_uses_distance_watershed():
    labels = _paint((64, 70), [((32, 22), 12), ((32, 43), 12)])
    pred = split_instances((labels > 0).astype(np.float32), None, min_distance_px=5)
    assert pred.max() == 2
    assert min(_best_iou_per_truth(labels, pred)) > 0.85


def test_split_does_not_cut_a_rod_without_boundary():
    rod = np.zeros((40, 120), dtype=np.float32)
    rod[15:25, 10:110] = 1.0
    pred = split_instances(rod, None, min_distance_px=3)
    assert pred.max() == 1


def test_split_h_px_decides_between_neck_and_bump():
    # Disks of radius 12, centres 18 px apart: the distance transform peaks at ~12 and the
    # neck at ~8, so the second peak rises ~4 px above the saddle.
    blob = (_paint((60, 80), [((30, 31), 12), ((30, 49), 12)]) > 0).astype(np.float32)
    assert split_instances(blob, None, h_px=2.0).max() == 2
    assert split_instances(blob, None, h_px=6.0).max() == 1


def test_split_empty_gives_zeros():
    empty = np.zeros((32, 40), dtype=np.float32)
    for boundary in (None, np.zeros_like(empty)):
        pred = split_instances(empty, boundary)
        assert pred.dtype == np.int32 and pred.shape == empty.shape
        assert not pred.any()


def test_split_single_disk_stays_one():
    labels = _paint((48, 48), [((24, 24), 12)])
    targets = labels_to_targets(labels)
    for boundary in (targets[1], None):
        pred = split_instances(targets[0], boundary)
        assert pred.max() == 1
        assert _iou(pred == 1, labels == 1) == 1.0


def test_split_removes_small_objects_and_relabels_consecutively():
    fg = np.zeros((40, 40), dtype=np.float32)
    fg[2:4, 2:4] = 1.0  # 4 px: removed
    fg[10:20, 10:20] = 1.0
    fg[25:35, 25:35] = 1.0
    pred = split_instances(fg, np.zeros_like(fg), min_size_px=10)
    np.testing.assert_array_equal(np.unique(pred), [0, 1, 2])
    assert (pred[10:20, 10:20] == 1).all() and (pred[25:35, 25:35] == 2).all()
    assert (pred[2:4, 2:4] == 0).all()


def test_split_is_deterministic_on_noisy_probabilities():
    rng = np.random.default_rng(0)
    labels = _paint((64, 70), TWO_TOUCHING)
    targets = labels_to_targets(labels)
    noisy = np.clip(targets + rng.normal(0, 0.2, targets.shape), 0, 1).astype(np.float32)
    first = split_instances(noisy[0], noisy[1])
    second = split_instances(noisy[0].copy(), noisy[1].copy())
    np.testing.assert_array_equal(first, second)


def test_split_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shape"):
        split_instances(np.zeros((8, 8)), np.zeros((8, 9)))
