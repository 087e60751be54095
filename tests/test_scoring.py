"""metrics.evaluate and friends: the one scoring path of the benchmark, notebooks and tuning."""

from __future__ import annotations

import numpy as np
import pytest

from etem_helpers.metrics import evaluate, pool_scores, recall_by_snr, score_image
from etem_helpers.metrics.tables import format_recall_by_snr, format_table
from etem_helpers.pipeline import otsu_watershed


def _disks(shape, centres, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, dtype=np.int32)
    for i, (cy, cx) in enumerate(centres, start=1):
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = i
    return labels


def test_perfect_prediction_scores_one():
    truth = _disks((64, 64), [(16, 16), (40, 44)], 7)
    record = score_image(truth.copy(), truth, pixel_size_nm=0.5)
    assert record["tp"] == 2 and record["fp"] == 0 and record["fn"] == 0
    assert record["dice"] == 1.0 and record["f1"] == 1.0
    summary = pool_scores([record])
    assert summary["pixel_dice"] == 1.0 and summary["f1"] == 1.0
    assert summary["diameter_mae_nm"] == 0.0


def test_missed_and_spurious_particles_are_counted():
    truth = _disks((64, 64), [(16, 16), (40, 44)], 7)
    pred = _disks((64, 64), [(16, 16), (50, 10)], 7)  # one hit, one miss, one false alarm
    record = score_image(pred, truth, pixel_size_nm=1.0)
    assert (record["tp"], record["fp"], record["fn"]) == (1, 1, 1)
    assert record["f1"] == pytest.approx(0.5)
    assert record["pixel_tp"] == int((truth == 1).sum())
    assert record["dice"] == pytest.approx(0.5)


def test_diameter_error_scales_with_pixel_size():
    truth = _disks((64, 64), [(32, 32)], 10)
    pred = _disks((64, 64), [(32, 32)], 11)  # matched (IoU ~0.83), slightly too large
    mae = [
        pool_scores([score_image(pred, truth, pixel_size_nm=p)])["diameter_mae_nm"]
        for p in (0.5, 1.0)
    ]
    assert mae[0] > 0
    assert mae[1] == pytest.approx(2 * mae[0])


def test_aggregate_pools_counts_not_image_means():
    truth_a = _disks((64, 64), [(16, 16), (40, 44), (16, 48)], 6)
    truth_b = _disks((64, 64), [(32, 32)], 6)
    good = score_image(truth_a.copy(), truth_a, pixel_size_nm=1.0)  # 3 TP
    bad = score_image(np.zeros_like(truth_b), truth_b, pixel_size_nm=1.0)  # 1 FN
    summary = pool_scores([{**good, "seconds": 1.0}, {**bad, "seconds": 3.0}])
    assert (summary["tp"], summary["fn"]) == (3, 1)
    assert summary["f1"] == pytest.approx(6 / 7)  # pooled, not (1 + 0) / 2
    assert summary["mean_image_f1"] == pytest.approx(0.5)
    assert summary["recall"] == pytest.approx(0.75) and summary["precision"] == 1.0
    assert summary["seconds_per_image"] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="empty"):
        pool_scores([])


def test_label_maps_of_different_shapes_are_refused():
    labels = _disks((40, 40), [(10, 10), (30, 30)], 5)
    with pytest.raises(ValueError, match="shape"):
        score_image(labels, labels[:-1], pixel_size_nm=1.0)


def test_baselines_run_through_evaluate_images_and_table():
    truth = _disks((96, 96), [(30, 30), (64, 60)], 10)
    rng = np.random.default_rng(0)
    image = (1.0 - 0.6 * (truth > 0) + 0.05 * rng.standard_normal(truth.shape)).astype(
        np.float32
    )
    methods = {"otsu_watershed": lambda im, px: otsu_watershed(im, px).labels}
    evaluation = evaluate([("a", image, truth, 0.5)], methods)
    summary = evaluation.pooled()["otsu_watershed"]
    assert evaluation.per_image()[["method", "name", "tp"]].values.tolist() == [
        ["otsu_watershed", "a", 2]]
    assert summary["pixel_dice"] > 0.9 and summary["f1"] == 1.0
    table = format_table({"otsu_watershed": summary}, title="T")
    assert table.splitlines()[0] == "T" and "| otsu_watershed | 1 |" in table
    assert "| otsu_watershed | 1 |" in format_table(evaluation.pooled())


def test_visible_f1_ignores_a_particle_hidden_in_noise():
    truth = _disks((96, 96), [(30, 30), (64, 60)], 10)
    rng = np.random.default_rng(1)
    image = 1.0 + 0.05 * rng.standard_normal(truth.shape)
    image[truth == 1] -= 0.6  # visible; particle 2 has no contrast at all
    found_one = np.where(truth == 1, 1, 0)
    methods = {"oracle": lambda img, px: found_one}
    plain = evaluate([("a", image, truth, 0.5)], methods).pooled()["oracle"]
    assert "visible_f1" not in plain and plain["fn"] == 1
    summary = evaluate([("a", image, truth, 0.5)], methods, visibility=True).pooled()["oracle"]
    assert summary["visible_f1"] == 1.0 and summary["n_invisible"] == 1 and summary["f1"] < 1.0
    assert "| F1 vis. |" in format_table({"oracle": summary})
    bins = summary["recall_by_snr"]
    assert bins[">= 10"] == {"n": 1, "recall": 1.0}  # contrast 0.6 over noise 0.05
    assert bins["< 3"] == {"n": 1, "recall": 0.0}  # the particle without contrast
    assert sum(b["n"] for b in bins.values()) == 2
    table = format_recall_by_snr({"oracle": summary})
    assert "| oracle | 0.00 (1) |" in table and "1.00 (1)" in table
    assert format_recall_by_snr({"oracle": plain}) == ""


def test_recall_by_snr_bins_and_unmeasurable():
    bins = recall_by_snr([(2.0, False), (4.9, True), (5.0, True), (5.0, False), (12.0, True),
                (float("nan"), True)])
    assert bins["< 3"] == {"n": 1, "recall": 0.0}
    assert bins["3-5"] == {"n": 1, "recall": 1.0}
    assert bins["5-7"] == {"n": 2, "recall": 0.5}
    assert bins["7-10"]["n"] == 0 and np.isnan(bins["7-10"]["recall"])
    assert bins["n/a"] == {"n": 1, "recall": 1.0}
