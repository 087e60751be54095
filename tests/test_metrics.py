"""Tests for etem_helpers.metrics with hand-made label maps of known answer."""

import numpy as np
import pytest
from skimage.draw import disk

from etem_helpers.measure import measure_particles
from etem_helpers.metrics import (
    dice_coefficient,
    instance_scores,
    iou_score,
    match_instances,
    matched_errors,
    summarize_errors,
)


def _disks(centers_radii, shape=(100, 100), ids=None):
    labels = np.zeros(shape, dtype=np.int32)
    ids = ids if ids is not None else range(1, len(centers_radii) + 1)
    for label_id, (center, radius) in zip(ids, centers_radii, strict=True):
        rr, cc = disk(center, radius, shape=shape)
        labels[rr, cc] = label_id
    return labels


def test_dice_and_iou_known_values():
    true = np.zeros((10, 10), dtype=bool)
    pred = np.zeros((10, 10), dtype=bool)
    true[0:4, 0:5] = True  # 20 px
    pred[2:6, 0:5] = True  # 20 px, overlap 10 px
    assert dice_coefficient(pred, true) == pytest.approx(2 * 10 / 40)
    assert iou_score(pred, true) == pytest.approx(10 / 30)
    assert dice_coefficient(true, true) == 1.0
    assert iou_score(pred, ~pred) == 0.0


def test_dice_iou_empty_masks_are_perfect():
    empty = np.zeros((5, 5), dtype=np.uint8)
    assert dice_coefficient(empty, empty) == 1.0
    assert iou_score(empty, empty) == 1.0
    full = np.ones((5, 5), dtype=np.uint8)
    assert dice_coefficient(full, empty) == 0.0


def test_mask_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        dice_coefficient(np.zeros((3, 3)), np.zeros((3, 4)))


def test_shifted_disks_match_with_known_iou():
    true = _disks([((30, 30), 10), ((70, 70), 10)])
    pred = _disks([((70, 72), 10), ((30, 30), 10)], ids=[5, 9])  # ids swapped/renamed
    match = match_instances(pred, true)
    assert match.true_ids.tolist() == [1, 2]
    assert match.pred_ids.tolist() == [9, 5]
    assert match.ious[0] == pytest.approx(1.0)
    expected_iou = iou_score(pred == 5, true == 2)
    assert 0.5 < expected_iou < 1.0
    assert match.ious[1] == pytest.approx(expected_iou)
    assert match.unmatched_pred_ids.size == 0 and match.unmatched_true_ids.size == 0


def test_split_particle_gives_one_tp_one_fp():
    true = np.zeros((40, 40), dtype=np.int32)
    true[10:30, 10:30] = 1  # 400 px
    pred = np.zeros_like(true)
    pred[10:30, 10:24] = 3  # 280 px -> IoU 0.7
    pred[10:30, 24:30] = 4  # 120 px -> IoU 0.3
    match = match_instances(pred, true)
    assert match.pred_ids.tolist() == [3]
    assert match.ious.tolist() == pytest.approx([0.7])
    assert match.unmatched_pred_ids.tolist() == [4]
    scores = instance_scores(pred, true)
    assert (scores["tp"], scores["fp"], scores["fn"]) == (1, 1, 0)
    assert scores["precision"] == pytest.approx(0.5)
    assert scores["recall"] == pytest.approx(1.0)
    assert scores["f1"] == pytest.approx(2 / 3)
    assert scores["mean_matched_iou"] == pytest.approx(0.7)


def test_missed_and_false_positive():
    true = _disks([((20, 20), 8), ((60, 60), 8), ((20, 80), 6)])
    pred = _disks([((20, 20), 8), ((60, 60), 8), ((85, 15), 5)])
    scores = instance_scores(pred, true)
    assert (scores["tp"], scores["fp"], scores["fn"]) == (2, 1, 1)
    assert scores["precision"] == pytest.approx(2 / 3)
    assert scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(2 / 3)
    match = match_instances(pred, true)
    assert match.unmatched_true_ids.tolist() == [3]
    assert match.unmatched_pred_ids.tolist() == [3]


def test_hungarian_prefers_best_total_assignment():
    # With a low threshold prediction 1 overlaps both true particles and prefers
    # true 2; greedy matching would give 1 pair, the maximal assignment gives 2.
    true = np.zeros((10, 20), dtype=np.int32)
    true[:, 0:10] = 1
    true[:, 10:20] = 2
    pred = np.zeros_like(true)
    pred[:, 5:17] = 1  # IoU with true 1: 50/170; with true 2: 70/150
    pred[:, 17:20] = 2  # IoU with true 2: 30/100
    match = match_instances(pred, true, iou_threshold=0.25)
    assert dict(zip(match.pred_ids.tolist(), match.true_ids.tolist(), strict=True)) == {
        1: 1,
        2: 2,
    }
    assert match.ious.tolist() == pytest.approx([50 / 170, 30 / 100])


def test_threshold_controls_matching():
    true = np.zeros((20, 20), dtype=np.int32)
    true[0:10, 0:10] = 1
    pred = np.zeros_like(true)
    pred[0:10, 4:14] = 1  # IoU = 60 / 140
    assert instance_scores(pred, true, iou_threshold=0.5)["tp"] == 0
    assert instance_scores(pred, true, iou_threshold=0.4)["tp"] == 1


def test_empty_cases():
    empty = np.zeros((10, 10), dtype=np.int32)
    scores = instance_scores(empty, empty)
    assert (scores["tp"], scores["fp"], scores["fn"]) == (0, 0, 0)
    for key in ("precision", "recall", "f1", "mean_matched_iou"):
        assert scores[key] == 1.0
    some = empty.copy()
    some[2:5, 2:5] = 1
    missed = instance_scores(empty, some)
    assert (missed["fn"], missed["recall"], missed["precision"], missed["f1"]) == (1, 0, 0, 0)
    assert np.isnan(missed["mean_matched_iou"])
    spurious = instance_scores(some, empty)
    assert (spurious["fp"], spurious["precision"], spurious["f1"]) == (1, 0, 0)


def test_bad_label_inputs():
    with pytest.raises(TypeError, match="skimage.measure.label"):
        match_instances(np.zeros((4, 4), dtype=bool), np.zeros((4, 4), dtype=np.int32))
    with pytest.raises(ValueError, match="shape"):
        match_instances(np.zeros((4, 4), dtype=np.int32), np.zeros((4, 5), dtype=np.int32))
    with pytest.raises(ValueError, match="iou_threshold"):
        match_instances(
            np.zeros((4, 4), dtype=np.int32), np.zeros((4, 4), dtype=np.int32), iou_threshold=0
        )


def test_matched_errors_and_summary():
    pixel_size_nm = 0.5
    true = _disks([((25, 25), 10), ((70, 70), 12)])
    pred = _disks([((25, 25), 11), ((70, 70), 12)], ids=[4, 8])
    match = match_instances(pred, true)
    true_table = measure_particles(true, pixel_size_nm=pixel_size_nm)
    pred_table = measure_particles(pred, pixel_size_nm=pixel_size_nm)
    errors = matched_errors(pred_table, true_table, match)
    assert len(errors) == 2
    assert errors["true_id"].tolist() == [1, 2]
    assert errors["pred_id"].tolist() == [4, 8]
    first = errors.iloc[0]
    # One pixel larger radius -> diameter about 2 px = 1 nm larger.
    assert first["diameter_nm_error"] == pytest.approx(1.0, abs=0.15)
    assert errors.iloc[1]["diameter_nm_error"] == pytest.approx(0.0)
    summary = summarize_errors(errors)
    assert summary["n_matched"] == 2
    assert summary["diameter_mae_nm"] == pytest.approx(abs(first["diameter_nm_error"]) / 2)
    assert summary["diameter_rmse_nm"] == pytest.approx(abs(first["diameter_nm_error"]) / np.sqrt(2))
    assert summary["diameter_rmse_nm"] >= summary["diameter_mae_nm"]
    assert summary["aspect_ratio_rmse"] < 0.05
    assert summary["roundness_rmse"] < 0.05


def test_summarize_no_matches_is_nan():
    true = _disks([((25, 25), 10)])
    pred = np.zeros_like(true)
    match = match_instances(pred, true)
    errors = matched_errors(
        measure_particles(pred, pixel_size_nm=1.0), measure_particles(true, pixel_size_nm=1.0), match
    )
    summary = summarize_errors(errors)
    assert summary["n_matched"] == 0
    assert np.isnan(summary["diameter_rmse_nm"])


def test_matched_errors_rejects_wrong_tables():
    true = _disks([((25, 25), 10)])
    match = match_instances(true, true)
    other = measure_particles(_disks([((25, 25), 10)], ids=[7]), pixel_size_nm=1.0)
    with pytest.raises(ValueError, match="matched ids"):
        matched_errors(other, measure_particles(true, pixel_size_nm=1.0), match)


def _two_disks():
    yy, xx = np.mgrid[:128, :128]
    labels = np.zeros((128, 128), np.int32)
    labels[(yy - 40) ** 2 + (xx - 40) ** 2 <= 64] = 1
    labels[(yy - 90) ** 2 + (xx - 90) ** 2 <= 64] = 2
    image = np.random.default_rng(0).normal(0.0, 1.0, (128, 128))
    image[labels == 1] -= 5.0  # clearly visible
    image[labels == 2] -= 0.05  # hidden in the noise
    return image, labels


def test_particle_visibility_separates_visible_from_hidden_particles():
    from etem_helpers.metrics import ROSE_THRESHOLD, particle_visibility

    image, labels = _two_disks()
    table = particle_visibility(image, labels).set_index("particle_id")
    assert table.loc[1, "snr"] > 4 * ROSE_THRESHOLD
    assert table.loc[2, "snr"] < ROSE_THRESHOLD
    assert table.loc[1, "contrast"] == pytest.approx(-5.0, abs=0.3)
    scaled = particle_visibility(3.0 * image + 7.0, labels).set_index("particle_id")
    np.testing.assert_allclose(scaled["snr"], table["snr"], rtol=1e-9)
    assert particle_visibility(image, np.zeros_like(labels)).empty
    with pytest.raises(ValueError, match="same shape"):
        particle_visibility(image[:10], labels)


def test_visible_scores_ignore_hidden_particles_but_count_spurious_ones():
    from etem_helpers.metrics import visible_instance_scores

    _, truth = _two_disks()
    found_visible = np.where(truth == 1, 1, 0)
    assert instance_scores(found_visible, truth)["fn"] == 1
    scores = visible_instance_scores(found_visible, truth, [1])
    assert (scores["tp"], scores["fp"], scores["fn"], scores["f1"]) == (1, 0, 0, 1.0)
    assert scores["n_invisible"] == 1
    found_both = truth.copy()
    both = visible_instance_scores(found_both, truth, [1])
    assert (both["tp"], both["fp"], both["ignored"]) == (1, 0, 1)
    spurious = found_visible.copy()
    spurious[5:9, 100:104] = 2
    assert visible_instance_scores(spurious, truth, [1])["fp"] == 1
    missed = visible_instance_scores(np.zeros_like(truth), truth, [1, 2])
    assert (missed["fn"], missed["f1"]) == (2, 0.0)


def test_relative_size_errors_of_matched_pairs():
    import pandas as pd

    from etem_helpers.metrics import relative_size_errors

    errors = pd.DataFrame({"true_diameter_nm": [10.0, 20.0, 40.0],
                           "pred_diameter_nm": [11.0, 18.0, 40.0]})
    out = relative_size_errors(errors)
    assert out["diameter_error"] == pytest.approx((0.1 + 0.1 + 0.0) / 3)
    assert out["diameter_bias"] == pytest.approx((0.1 - 0.1 + 0.0) / 3)
    assert out["median_area_ratio"] == pytest.approx(1.0)  # ratios 1.21, 0.81, 1.0
    empty = relative_size_errors(errors.iloc[:0])
    assert all(np.isnan(v) for v in empty.values())


def test_jsonable_makes_results_plain_json():
    import json

    from etem_helpers.metrics.tables import jsonable

    value = {1: np.float32(1.5), "a": [np.int64(2), float("nan")], "b": (np.inf, "x")}
    assert json.loads(json.dumps(jsonable(value))) == {"1": 1.5, "a": [2, None], "b": [None, "x"]}
