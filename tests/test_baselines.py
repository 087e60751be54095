"""Tests for etem_helpers.pipeline.baselines and etem_helpers.pipeline.result (AnalysisResult)."""

import numpy as np
import pandas as pd
import pytest
from skimage.draw import disk

from etem_helpers.measure import PARTICLE_COLUMNS, measure_particles
from etem_helpers.metrics import instance_scores, match_instances
from etem_helpers.pipeline.baselines import adaptive_threshold_watershed, otsu_watershed
from etem_helpers.pipeline.result import AnalysisResult

PIXEL_SIZE_NM = 0.5
# (row, col, radius_px); the last two disks overlap by one pixel (touching pair).
DISKS = [
    (40, 40, 10),
    (40, 120, 12),
    (120, 50, 9),
    (200, 200, 11),
    (60, 200, 8),
    (200, 60, 10),
    (150, 150, 10),
    (150, 169, 10),
]
TOUCHING_IDS = (7, 8)


def _synthetic(seed, *, shape=(256, 256), noise=0.1, gradient=0.0):
    """Dark disks (0.55) on a bright noisy support (1.0), optional illumination ramp."""
    rng = np.random.default_rng(seed)
    true = np.zeros(shape, dtype=np.int32)
    for label_id, (row, col, radius) in enumerate(DISKS, start=1):
        rr, cc = disk((row, col), radius, shape=shape)
        true[rr, cc] = label_id
    ramp = gradient * np.linspace(-1.0, 1.0, shape[1])[None, :]
    image = np.where(true > 0, 0.55, 1.0) + ramp + rng.normal(0.0, noise, size=shape)
    return image.astype(np.float32), true


@pytest.mark.parametrize("method", [otsu_watershed, adaptive_threshold_watershed])
@pytest.mark.parametrize("seed", [0, 1])
def test_finds_dark_disks_and_splits_touching_pair(method, seed):
    image, true = _synthetic(seed)
    result = method(image, PIXEL_SIZE_NM)
    assert isinstance(result, AnalysisResult)
    scores = instance_scores(result.labels, true)
    assert scores["f1"] >= 0.9
    match = match_instances(result.labels, true)
    matched_true = set(match.true_ids.tolist())
    assert set(TOUCHING_IDS) <= matched_true
    pair_preds = {p for p, t in zip(match.pred_ids, match.true_ids, strict=True) if t in TOUCHING_IDS}
    assert len(pair_preds) == 2


def test_without_splitting_touching_pair_merges():
    image, true = _synthetic(0)
    result = otsu_watershed(image, PIXEL_SIZE_NM, split_touching=False)
    match = match_instances(result.labels, true)
    # The merged blob matches at most one of the two touching disks.
    assert len(set(TOUCHING_IDS) & set(match.true_ids.tolist())) <= 1
    assert result.n_particles == len(DISKS) - 1


def test_result_contents_consistent():
    image, true = _synthetic(0)
    result = otsu_watershed(image, PIXEL_SIZE_NM)
    assert result.labels.dtype == np.int32 and result.labels.shape == image.shape
    assert result.probability.dtype == np.float32
    assert 0.0 <= result.probability.min() and result.probability.max() <= 1.0
    assert result.pixel_size_nm == PIXEL_SIZE_NM
    assert result.method == "otsu_watershed"
    assert tuple(result.particles.columns[: len(PARTICLE_COLUMNS)]) == PARTICLE_COLUMNS
    pd.testing.assert_frame_equal(
        result.particles,
        measure_particles(result.labels, PIXEL_SIZE_NM, probability=result.probability),
    )
    # Particles are confidently above threshold, background is not.
    assert result.particles["confidence"].min() > 0.8
    assert float(result.probability[true == 0].mean()) < 0.2
    # Diameters are close to the true ones (disks of radius 8-12 px at 0.5 nm/px).
    true_table = measure_particles(true, PIXEL_SIZE_NM)
    assert result.particles["diameter_nm"].median() == pytest.approx(
        true_table["diameter_nm"].median(), rel=0.1
    )


def test_bright_particles_option():
    image, true = _synthetic(0)
    inverted = 2.0 - image  # bright particles on a dark background
    result = otsu_watershed(inverted, PIXEL_SIZE_NM, dark_particles=False)
    assert instance_scores(result.labels, true)["f1"] >= 0.9
    wrong = otsu_watershed(inverted, PIXEL_SIZE_NM, dark_particles=True)
    assert instance_scores(wrong.labels, true)["f1"] < 0.5


def test_adaptive_copes_with_illumination_gradient():
    image, true = _synthetic(0, gradient=0.4)
    # The ramp spans more than the particle contrast: one global threshold fails.
    settings = {"min_diameter_nm": 3.0}
    adaptive = adaptive_threshold_watershed(image, PIXEL_SIZE_NM, block_size_nm=40.0, **settings)
    assert instance_scores(adaptive.labels, true)["f1"] >= 0.9
    otsu = otsu_watershed(image, PIXEL_SIZE_NM, **settings)
    assert instance_scores(otsu.labels, true)["f1"] < 0.5


def test_min_diameter_removes_small_particles():
    image, true = _synthetic(0)
    # Disk radii are 8-12 px = 8-12 nm diameter; keep only >= 10.5 nm.
    result = otsu_watershed(image, PIXEL_SIZE_NM, min_diameter_nm=10.5)
    assert result.n_particles < len(DISKS)
    assert (result.particles["diameter_nm"] >= 10.5).all()


@pytest.mark.parametrize("method", [otsu_watershed, adaptive_threshold_watershed])
def test_constant_image_gives_no_particles(method):
    result = method(np.full((64, 64), 7.0), PIXEL_SIZE_NM)
    assert result.n_particles == 0
    assert len(result.particles) == 0
    assert not result.labels.any()
    assert result.summary()["n_particles"] == 0


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"image": np.zeros((40, 40, 3)), "pixel_size_nm": 0.5}, ValueError, "RGB"),
        ({"image": np.zeros((40,)), "pixel_size_nm": 0.5}, ValueError, "2-D"),
        ({"image": np.full((40, 40), np.nan), "pixel_size_nm": 0.5}, ValueError, "NaN"),
        ({"image": np.zeros((40, 40), bool), "pixel_size_nm": 0.5}, TypeError, "real numbers"),
        ({"image": np.zeros((8, 8)), "pixel_size_nm": 0.5}, ValueError, "8 x 8"),
        ({"image": np.zeros((40, 40)), "pixel_size_nm": None}, ValueError, "pixel_size_nm"),
        ({"image": np.zeros((40, 40)), "pixel_size_nm": -1.0}, ValueError, "pixel_size_nm"),
        ({"image": np.zeros((40, 40)), "pixel_size_nm": 0.5, "smooth_sigma_nm": -1}, ValueError,
         "smooth_sigma_nm"),
        ({"image": np.zeros((40, 40)), "pixel_size_nm": 0.5, "min_diameter_nm": "big"},
         ValueError, "min_diameter_nm"),
    ],
)
def test_bad_inputs(kwargs, error, match):
    with pytest.raises(error, match=match):
        otsu_watershed(**kwargs)
    with pytest.raises(error, match=match):
        adaptive_threshold_watershed(**kwargs)


# --- AnalysisResult ---------------------------------------------------------------------


def _small_result(**overrides):
    labels = np.zeros((20, 20), dtype=np.int32)
    labels[2:6, 2:6] = 1
    labels[10:16, 10:13] = 2
    labels[0:3, 17:20] = 3
    fields = {
        "labels": labels,
        "particles": measure_particles(labels, 0.25),
        "probability": (labels > 0).astype(np.float32),
        "pixel_size_nm": 0.25,
        "pixel_size_source": "argument",
        "method": "test",
    }
    fields.update(overrides)
    return AnalysisResult(**fields)


def test_result_summary_values():
    result = _small_result()
    summary = result.summary()
    diameters = result.particles["diameter_nm"].to_numpy()
    assert summary["n_particles"] == 3
    assert summary["n_touching_border"] == 1
    assert summary["mean_diameter_nm"] == pytest.approx(diameters.mean())
    assert summary["median_diameter_nm"] == pytest.approx(np.median(diameters))
    assert summary["area_fraction"] == pytest.approx((16 + 18 + 9) / 400)
    assert summary["n_with_fault"] == 0
    assert summary["pixel_size_nm"] == 0.25


def test_result_coerces_and_validates():
    labels = np.zeros((20, 20), dtype=np.uint8)
    labels[2:6, 2:6] = 1
    result = AnalysisResult(
        labels=labels,
        particles=measure_particles(labels, 1.0),
        probability=np.zeros((20, 20)),
        pixel_size_nm=1,
        pixel_size_source="argument",
    )
    assert result.labels.dtype == np.int32
    assert result.probability.dtype == np.float32
    with pytest.raises(ValueError, match="probability"):
        _small_result(probability=np.zeros((5, 5), dtype=np.float32))
    with pytest.raises(ValueError, match="pixel_size_nm"):
        _small_result(pixel_size_nm=0.0)
    with pytest.raises(TypeError, match="labels"):
        _small_result(labels=np.zeros((20, 20)))
    with pytest.raises(ValueError, match="one\\s+row per nonzero id"):
        _small_result(particles=_small_result().particles.iloc[:2])
    with pytest.raises(ValueError, match="contract columns"):
        _small_result(particles=_small_result().particles.drop(columns=["roundness"]))


def _degenerate_frames():
    hot = np.zeros((512, 512), np.float32)
    hot[100, 100] = 1000.0
    bright = np.full((256, 300), 17, np.uint8)
    bright[50, 60] = 255
    saturated = np.full((512, 512), 65535, np.uint16)
    saturated[[10, 200], :] = 0
    return [hot, bright, saturated]


@pytest.mark.parametrize("method", [otsu_watershed, adaptive_threshold_watershed])
@pytest.mark.parametrize("index", [0, 1, 2])
def test_frames_without_contrast_give_no_particles(method, index):
    """Hot pixel on a blank frame, one bright pixel (uint8), saturated frame with dark rows:
    no particles, as analyze() (issue 9)."""
    frame = _degenerate_frames()[index]
    result = method(frame, 0.3)
    assert result.n_particles == 0 and not result.labels.any()
    assert result.info["constant_image"] is True
    assert result.labels.shape == frame.shape


def test_baselines_read_a_file_with_its_calibration(tmp_path):
    from etem_helpers.io import write_micrograph

    image, _ = _synthetic(0)
    path = write_micrograph(tmp_path / "m.tif", image, PIXEL_SIZE_NM)
    from_file = otsu_watershed(path, None)
    from_array = otsu_watershed(image.astype(np.float32), PIXEL_SIZE_NM)
    assert from_file.pixel_size_source.startswith("file:")
    np.testing.assert_array_equal(from_file.labels, from_array.labels)


def test_result_to_csv_refuses_overwrite(tmp_path):
    result = _small_result()
    path = result.to_csv(tmp_path / "particles.csv")
    table = pd.read_csv(path)
    assert table["particle_id"].tolist() == [1, 2, 3]
    assert table["area_nm2"].tolist() == pytest.approx(result.particles["area_nm2"].tolist())
    with pytest.raises(FileExistsError, match="overwrite=True"):
        result.to_csv(path)
    result.to_csv(path, overwrite=True)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        result.to_csv(tmp_path / "missing" / "particles.csv")


def test_result_to_csv_names_folder_and_empty_paths(tmp_path):
    result = _small_result()
    with pytest.raises(IsADirectoryError, match=r"is a folder.*particles\.csv"):
        result.to_csv(tmp_path)
    with pytest.raises(IsADirectoryError, match="empty"):
        result.to_csv("")
    with pytest.raises(TypeError, match="must be a path"):
        result.to_csv(3)
    written = result.to_csv(bytes(tmp_path / "b.csv"))
    assert written == tmp_path / "b.csv" and written.read_text().startswith("particle_id")
