"""Tests of the scoring functions of benchmarks/eval_segmentation.py (no model, no network)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ev():
    path = REPOSITORY_ROOT / "benchmarks" / "eval_segmentation.py"
    spec = importlib.util.spec_from_file_location("eval_segmentation", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _disks(shape, centres, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, dtype=np.int32)
    for i, (cy, cx) in enumerate(centres, start=1):
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = i
    return labels


def test_perfect_prediction_scores_one(ev):
    truth = _disks((64, 64), [(16, 16), (40, 44)], 7)
    record = ev.score_image(truth.copy(), truth, pixel_size_nm=0.5)
    assert record["tp"] == 2 and record["fp"] == 0 and record["fn"] == 0
    assert record["dice"] == 1.0 and record["f1"] == 1.0
    summary = ev.aggregate_scores([record])
    assert summary["pixel_dice"] == 1.0 and summary["f1"] == 1.0
    assert summary["diameter_mae_nm"] == 0.0


def test_missed_and_spurious_particles_are_counted(ev):
    truth = _disks((64, 64), [(16, 16), (40, 44)], 7)
    pred = _disks((64, 64), [(16, 16), (50, 10)], 7)  # one hit, one miss, one false alarm
    record = ev.score_image(pred, truth, pixel_size_nm=1.0)
    assert (record["tp"], record["fp"], record["fn"]) == (1, 1, 1)
    assert record["f1"] == pytest.approx(0.5)
    assert record["pixel_tp"] == int((truth == 1).sum())
    assert record["dice"] == pytest.approx(0.5)


def test_diameter_error_scales_with_pixel_size(ev):
    truth = _disks((64, 64), [(32, 32)], 10)
    pred = _disks((64, 64), [(32, 32)], 11)  # matched (IoU ~0.83), slightly too large
    mae = [
        ev.aggregate_scores([ev.score_image(pred, truth, pixel_size_nm=p)])["diameter_mae_nm"]
        for p in (0.5, 1.0)
    ]
    assert mae[0] > 0
    assert mae[1] == pytest.approx(2 * mae[0])


def test_aggregate_pools_counts_not_image_means(ev):
    truth_a = _disks((64, 64), [(16, 16), (40, 44), (16, 48)], 6)
    truth_b = _disks((64, 64), [(32, 32)], 6)
    good = ev.score_image(truth_a.copy(), truth_a, pixel_size_nm=1.0)  # 3 TP
    bad = ev.score_image(np.zeros_like(truth_b), truth_b, pixel_size_nm=1.0)  # 1 FN
    summary = ev.aggregate_scores([{**good, "seconds": 1.0}, {**bad, "seconds": 3.0}])
    assert (summary["tp"], summary["fn"]) == (3, 1)
    assert summary["f1"] == pytest.approx(6 / 7)  # pooled, not (1 + 0) / 2
    assert summary["mean_image_f1"] == pytest.approx(0.5)
    assert summary["recall"] == pytest.approx(0.75) and summary["precision"] == 1.0
    assert summary["seconds_per_image"] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="empty"):
        ev.aggregate_scores([])


def test_mask_to_instances_and_shape_check(ev):
    mask = _disks((40, 40), [(10, 10), (30, 30)], 5) > 0
    labels = ev.mask_to_instances(mask)
    assert labels.dtype == np.int32 and labels.max() == 2
    assert np.array_equal(labels > 0, mask)
    with pytest.raises(ValueError, match="shape"):
        ev.score_image(labels, labels[:-1], pixel_size_nm=1.0)


def test_baselines_run_through_evaluate_images_and_table(ev):
    truth = _disks((96, 96), [(30, 30), (64, 60)], 10)
    rng = np.random.default_rng(0)
    image = (1.0 - 0.6 * (truth > 0) + 0.05 * rng.standard_normal(truth.shape)).astype(
        np.float32
    )
    methods = ev.make_methods(None, names=["otsu_watershed"])
    records = ev.evaluate_images([("a", image, truth, 0.5)], methods)
    summary = ev.aggregate_scores(records["otsu_watershed"])
    assert summary["pixel_dice"] > 0.9 and summary["f1"] == 1.0
    table = ev.format_table({"otsu_watershed": summary}, title="T")
    assert table.splitlines()[0] == "T" and "| otsu_watershed | 1 |" in table
    assert json.dumps(ev._jsonable({"x": float("nan"), "n": np.int64(3)})) == '{"x": null, "n": 3}'
    with pytest.raises(ValueError, match="model"):
        ev.make_methods(None, names=["unet"])


def test_visible_f1_ignores_a_particle_hidden_in_noise(ev):
    truth = _disks((96, 96), [(30, 30), (64, 60)], 10)
    rng = np.random.default_rng(1)
    image = 1.0 + 0.05 * rng.standard_normal(truth.shape)
    image[truth == 1] -= 0.6  # visible; particle 2 has no contrast at all
    found_one = np.where(truth == 1, 1, 0)
    methods = {"oracle": lambda img, px: found_one}
    plain = ev.aggregate_scores(ev.evaluate_images([("a", image, truth, 0.5)], methods)["oracle"])
    assert "visible_f1" not in plain and plain["fn"] == 1
    records = ev.evaluate_images([("a", image, truth, 0.5)], methods, visibility=True)
    summary = ev.aggregate_scores(records["oracle"])
    assert summary["visible_f1"] == 1.0 and summary["n_invisible"] == 1 and summary["f1"] < 1.0
    assert "| F1 vis. |" in ev.format_table({"oracle": summary})
    bins = summary["recall_by_snr"]
    assert bins[">= 10"] == {"n": 1, "recall": 1.0}  # contrast 0.6 over noise 0.05
    assert bins["< 3"] == {"n": 1, "recall": 0.0}  # the particle without contrast
    assert sum(b["n"] for b in bins.values()) == 2
    table = ev.format_recall_by_snr({"oracle": summary})
    assert "| oracle | 0.00 (1) |" in table and "1.00 (1)" in table
    assert ev.format_recall_by_snr({"oracle": plain}) == ""


def test_recall_by_snr_bins_and_unmeasurable(ev):
    bins = ev.recall_by_snr([(2.0, False), (4.9, True), (5.0, True), (5.0, False), (12.0, True),
                (float("nan"), True)])
    assert bins["< 3"] == {"n": 1, "recall": 0.0}
    assert bins["3-5"] == {"n": 1, "recall": 1.0}
    assert bins["5-7"] == {"n": 2, "recall": 0.5}
    assert bins["7-10"]["n"] == 0 and np.isnan(bins["7-10"]["recall"])
    assert bins["n/a"] == {"n": 1, "recall": 1.0}
