"""Tests for etem_helpers.pipeline (Analyzer, analyze, model cache, normalisation, blocks).

Unit tests use a TINY random checkpoint written to a temporary folder, or a pointwise
"dark pixels are particles" network passed as a (network, ModelCard) tuple, whose answer is
known; only the last test uses the shipped model (skipped when it is not installed).
"""

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import ndimage as ndi

import etem_helpers
from etem_helpers.io import (
    EmptyImageError,
    InvalidPixelSizeError,
    InvalidPixelValuesError,
    NotAnImageError,
    write_micrograph,
)
from etem_helpers.measure import measure_particles
from etem_helpers.pipeline import analyzer as analyzer_module
from etem_helpers.pipeline.analyzer import Analyzer, analyze, clear_model_cache, load_model
from etem_helpers.preprocess import Normalization, normalize_image, plan_resampling
from etem_helpers.segmentation import (
    CheckpointError,
    ModelCard,
    build_unet,
    fuse_for_inference,
    load_checkpoint,
    save_checkpoint,
    split_instances,
    split_instances_blocked,
)

NORMALIZATION = Normalization(method="percentile", low_percentile=0.5, high_percentile=99.5)
RANGE_NM = (0.3, 0.8)


class DarkPixelNet(torch.nn.Module):
    """Pointwise network: foreground logit 40 (0.5 - x), boundary logit -20.

    On a percentile-normalised image, pixels darker than mid-grey are particles, with no
    dependence on the neighbourhood, so tiling cannot change the answer.
    """

    def forward(self, x):
        return torch.cat([40.0 * (0.5 - x), torch.full_like(x, -20.0)], dim=1)


def dark_card(range_nm=RANGE_NM, **changes):
    return ModelCard(
        preset="tiny", normalization=NORMALIZATION, pixel_size_nm=0.5,
        pixel_size_range_nm=range_nm, tile_px=64, **changes,
    )


def dark_model(range_nm=RANGE_NM):
    return DarkPixelNet(), dark_card(range_nm)


def disks_image(shape=(160, 200), *, n=12, seed=0, radius_px=(5.0, 11.0)):
    """Dark disks (1..n, some touching the border) on a bright noisy background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    truth = np.zeros(shape, dtype=np.int32)
    for i in range(1, n + 1):
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        r = rng.uniform(*radius_px)
        truth[((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r) & (truth == 0)] = i
    image = 100.0 - 60.0 * (truth > 0) + rng.normal(0.0, 3.0, shape)
    return image.astype(np.float32), truth


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "tiny.pt"
    save_checkpoint(path, build_unet("tiny", seed=0), dark_card())
    return path


@pytest.fixture(scope="module")
def image():
    return disks_image()[0]


def check_consistent(result, shape):
    """Contract invariants of an AnalysisResult."""
    assert result.labels.shape == shape and result.labels.dtype == np.int32
    assert result.probability.shape == shape and result.probability.dtype == np.float32
    assert result.probability.min() >= 0.0 and result.probability.max() <= 1.0
    n = result.n_particles
    np.testing.assert_array_equal(np.unique(result.labels), np.arange(n + 1))
    np.testing.assert_array_equal(result.particles["particle_id"], np.arange(1, n + 1))
    counts = np.bincount(result.labels.ravel(), minlength=n + 1)[1:]
    np.testing.assert_allclose(
        result.particles["area_nm2"], counts * result.pixel_size_nm**2, rtol=1e-9
    )
    # fault columns are decided exactly where the particle's lattice is resolved
    resolved = result.particles.get("lattice_resolved", pd.Series(False, index=result.particles.index))
    assert (result.particles["fault_probability"].notna() == resolved).all()
    assert (result.particles["has_fault"].notna() == resolved).all()


# ---------------------------------------------------------------- inputs and calibration


def test_path_input_uses_file_calibration_and_argument_overrides(tmp_path, tiny_checkpoint, image):
    path = write_micrograph(tmp_path / "m.mrc", image, pixel_size_nm=0.42)
    result = analyze(path, model=tiny_checkpoint, device="cpu")
    assert result.pixel_size_nm == pytest.approx(0.42, rel=1e-5)
    assert result.pixel_size_source.startswith("file:")
    assert result.info["file"]["format"] == "mrc"
    check_consistent(result, image.shape)

    override = analyze(str(path), 0.6, model=tiny_checkpoint, device="cpu")
    assert override.pixel_size_nm == 0.6 and override.pixel_size_source == "argument"
    from_bytes = analyze(bytes(path), model=tiny_checkpoint, device="cpu")  # a bytes path
    np.testing.assert_array_equal(from_bytes.labels, result.labels)


def test_stack_file_says_how_to_choose_a_frame(tmp_path, tiny_checkpoint):
    import mrcfile

    path = tmp_path / "stack.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.zeros((3, 40, 50), dtype=np.float32))
        mrc.voxel_size = 4.0  # angstrom
    with pytest.raises(NotAnImageError, match=r"read_micrograph\(path, frame=...\)"):
        analyze(path, model=tiny_checkpoint)


def test_array_without_pixel_size_is_refused(tiny_checkpoint, image):
    with pytest.raises(InvalidPixelSizeError, match="pixel_size_nm is required"):
        analyze(image, model=tiny_checkpoint)


@pytest.mark.parametrize("bad", [0, -0.5, float("nan"), float("inf"), "0.5", True])
def test_bad_pixel_size_names_the_argument(tiny_checkpoint, image, bad):
    with pytest.raises(InvalidPixelSizeError, match="pixel_size_nm="):
        analyze(image, bad, model=tiny_checkpoint)


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((40, 50, 3)), "RGB"),
        (np.zeros((5, 40, 50)), "choose a frame"),
        (np.zeros(100), "2-D"),
        (np.zeros((2, 3, 40, 50)), "2-D"),
    ],
)
def test_wrong_dimensions_say_what_to_do(tiny_checkpoint, array, message):
    with pytest.raises(NotAnImageError, match=message):
        analyze(array, 0.5, model=tiny_checkpoint)


def test_nan_and_inf_are_counted(tiny_checkpoint, image):
    bad = image.copy()
    bad[0, :3] = np.nan
    bad[5, 5] = np.inf
    with pytest.raises(InvalidPixelValuesError, match="3 NaN and 1 infinite"):
        analyze(bad, 0.5, model=tiny_checkpoint)


def test_empty_and_non_numeric_images_are_refused(tiny_checkpoint):
    with pytest.raises(EmptyImageError):
        analyze(np.zeros((0, 10)), 0.5, model=tiny_checkpoint)
    with pytest.raises(TypeError, match="real numbers"):
        analyze(np.zeros((10, 10), dtype=bool), 0.5, model=tiny_checkpoint)


def test_bad_arguments_are_refused(tiny_checkpoint, image):
    for kwargs, message in [
        ({"threshold": 1.0}, "threshold"),
        ({"threshold": 0}, "threshold"),
        ({"min_diameter_nm": -1.0}, "min_diameter_nm"),
        ({"tile_px": 64, "overlap_px": 64}, "overlap_px"),
    ]:
        with pytest.raises(ValueError, match=message):
            analyze(image, 0.5, model=tiny_checkpoint, **kwargs)


# ---------------------------------------------------------------- outputs


def test_constant_image_gives_zero_particles(tiny_checkpoint):
    result = analyze(np.full((70, 90), 7, dtype=np.uint16), 0.5, model=tiny_checkpoint)
    assert result.n_particles == 0
    assert not result.labels.any()
    check_consistent(result, (70, 90))
    assert result.info["constant_image"] is True


def test_image_smaller_than_a_tile_works(tiny_checkpoint):
    small = np.random.default_rng(3).random((33, 47))
    result = analyze(small, 0.5, model=tiny_checkpoint, device="cpu")
    check_consistent(result, small.shape)
    assert result.info["n_tiles"] == 1


def test_any_dtype_and_explicit_cpu_device(tiny_checkpoint, image):
    as_int = np.round(image).astype(np.int16)
    result = analyze(as_int, 0.5, model=tiny_checkpoint, device="cpu")
    assert result.info["device"] == "cpu"
    assert result.method == "unet:tiny"
    assert result.info["model_path"] == str(tiny_checkpoint.resolve())
    assert set(result.info["timing_s"]) >= {"read", "normalize", "predict", "split", "measure"}
    check_consistent(result, image.shape)


def test_deterministic(tiny_checkpoint, image):
    first = analyze(image, 0.5, model=tiny_checkpoint, device="cpu")
    clear_model_cache()  # a freshly loaded model gives the same answer
    second = analyze(image, 0.5, model=tiny_checkpoint, device="cpu")
    np.testing.assert_array_equal(first.labels, second.labels)
    np.testing.assert_array_equal(first.probability, second.probability)
    pd.testing.assert_frame_equal(first.particles, second.particles)


def test_finds_the_particles_of_a_known_pointwise_model():
    image, truth = disks_image()
    result = analyze(image, 0.5, model=dark_model())
    check_consistent(result, image.shape)
    assert result.method == "unet:tiny"  # the preset the card names
    # Every true particle (merged where disks overlap) is found with the right area.
    truth_mask = truth > 0
    assert (result.labels > 0).sum() == pytest.approx(truth_mask.sum(), rel=0.03)
    assert result.n_particles >= ndi.label(truth_mask)[1]
    assert (result.particles["confidence"] > 0.9).all()
    border = result.particles["touches_border"].to_numpy()
    ids = result.particles["particle_id"].to_numpy()
    edge = np.zeros(image.shape, bool)
    edge[[0, -1], :] = edge[:, [0, -1]] = True
    np.testing.assert_array_equal(border, np.isin(ids, np.unique(result.labels[edge])))


def test_tiling_does_not_change_a_pointwise_answer():
    image, _ = disks_image((150, 230), seed=4)
    whole = analyze(image, 0.5, model=dark_model(), tile_px=256)
    tiled = analyze(image, 0.5, model=dark_model(), tile_px=64, overlap_px=16)
    assert tiled.info["n_tiles"] > 1 and whole.info["n_tiles"] == 1
    np.testing.assert_allclose(tiled.probability, whole.probability, atol=1e-5)
    np.testing.assert_array_equal(tiled.labels, whole.labels)


def test_min_diameter_removes_small_particles():
    image, _ = disks_image(seed=2, n=20, radius_px=(2.0, 9.0))
    everything = analyze(image, 0.5, model=dark_model())
    large = analyze(image, 0.5, model=dark_model(), min_diameter_nm=6.0)
    assert large.n_particles < everything.n_particles
    assert (large.particles["diameter_nm"] >= 6.0 - 1e-9).all()


def test_stored_postprocess_settings_are_used_and_can_be_overridden():
    image, _ = disks_image(seed=2, n=20, radius_px=(2.0, 9.0))
    network, card = dark_model()
    plain = analyze(image, 0.5, model=(network, card))
    assert plain.info["threshold"] == 0.5 and plain.info["min_size_px"] == 10
    strict = card.replace(postprocess={"min_size_px": 150, "threshold": 0.7})
    stored = analyze(image, 0.5, model=(network, strict), min_snr=None)  # the area alone
    assert stored.info["threshold"] == 0.7 and stored.info["postprocess"]["min_size_px"] == 150
    assert 0 < stored.n_particles < plain.n_particles
    assert (np.bincount(stored.labels.ravel())[1:] >= 150).all()
    again = analyze(image, 0.5, model=(network, strict), min_diameter_nm=0.5, threshold=0.5)
    assert again.n_particles == plain.n_particles
    assert plain.info["precision"] in ("float32", "bfloat16")
    exact = analyze(image, 0.5, model=(network, card), precision="float32")
    assert exact.info["precision"] == "float32"
    with pytest.raises(ValueError, match="precision"):
        analyze(image, 0.5, model=(network, card), precision="double")
    unsure = analyze(image, 0.5, model=(network, card), min_confidence=1.0)
    assert unsure.n_particles == 0 and unsure.labels.max() == 0
    with pytest.raises(ValueError, match="min_confidence"):
        analyze(image, 0.5, model=(network, card), min_confidence=2.0)


# ---------------------------------------------------------------- pixel size range


def test_out_of_range_pixel_size_is_resampled_and_mapped_back():
    image, truth = disks_image((180, 220), seed=5, radius_px=(7.0, 12.0))
    inside = analyze(image, 0.15, model=dark_model(range_nm=(0.1, 0.8)))
    resampled = analyze(image, 0.15, model=dark_model(range_nm=(0.3, 0.8)))
    plan = resampled.info["resampling"]
    assert plan["resample"] and plan["target_pixel_size_nm"] == 0.3
    assert plan["resampled_shape"] == (90, 110)
    assert not inside.info["resampling"]["resample"]
    check_consistent(resampled, image.shape)
    assert resampled.pixel_size_nm == 0.15  # measured on the original grid
    # Same particles, sizes within a pixel or so of the direct answer.
    assert resampled.n_particles == inside.n_particles
    np.testing.assert_allclose(
        np.sort(resampled.particles["diameter_nm"]),
        np.sort(inside.particles["diameter_nm"]),
        atol=2 * 0.3,
    )
    coarse = analyze(image, 1.2, model=dark_model(range_nm=(0.3, 0.6)))
    assert coarse.info["resampling"]["factor"] == pytest.approx(2.0)
    check_consistent(coarse, image.shape)


def test_extreme_resampling_is_refused(tiny_checkpoint, image):
    with pytest.raises(ValueError, match="beyond"):
        analyze(image, 0.01, model=tiny_checkpoint)
    with pytest.raises(ValueError, match="fewer than 32"):
        analyze(image[:40, :40], 0.1, model=tiny_checkpoint)
    plan = plan_resampling((100, 100), 0.5, RANGE_NM)
    assert not plan["resample"]
    assert plan_resampling((100, 100), 2.0, RANGE_NM)["factor"] == pytest.approx(2.5)


# ---------------------------------------------------------------- models


def test_bad_model_path_raises_checkpoint_error(tmp_path, image):
    with pytest.raises(CheckpointError, match="nothing.pt"):
        analyze(image, 0.5, model=tmp_path / "nothing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="garbage.pt"):
        analyze(image, 0.5, model=garbage)
    with pytest.raises(TypeError, match="model"):
        analyze(image, 0.5, model=42)
    with pytest.raises(CheckpointError, match="pixel_size_range_nm"):
        analyze(image, 0.5, model=(DarkPixelNet(), {"normalization": NORMALIZATION.to_dict()}))


def test_missing_default_model_says_how_to_train_it(tmp_path, monkeypatch, image):
    monkeypatch.setattr(analyzer_module, "DEFAULT_MODEL_PATH", tmp_path / "default.pt")
    with pytest.raises(CheckpointError, match="etem train --config"):
        analyze(image, 0.5)


def test_models_are_cached_per_file_and_device(tiny_checkpoint):
    clear_model_cache()
    first, card = load_model(tiny_checkpoint, device="cpu")
    again, _ = load_model(str(tiny_checkpoint), device="cpu")
    assert again is first and card.preset == "tiny"
    clear_model_cache()
    fresh, _ = load_model(tiny_checkpoint, device="cpu")
    assert fresh is not first


def test_fused_network_gives_the_same_probabilities_without_batch_norms(tiny_checkpoint):
    plain, _ = load_checkpoint(tiny_checkpoint)
    fused, _ = load_model(tiny_checkpoint, device="cpu")
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    x = torch.rand(1, 1, 64, 96)
    with torch.inference_mode():
        np.testing.assert_allclose(fused(x).numpy(), plain(x).numpy(), atol=1e-4)

    class DataDependent(torch.nn.Module):  # torch.fx cannot trace a branch on values
        def forward(self, x):
            return x if x.sum() > 0 else -x

    odd = DataDependent()
    assert fuse_for_inference(odd) is odd


def test_package_exports_analyze_lazily():
    assert etem_helpers.analyze is analyze


# ---------------------------------------------------------------- building blocks


@pytest.mark.parametrize("method", ["percentile", "zscore"])
def test_stored_normalization_matches_normalize_image_exactly(method):
    rng = np.random.default_rng(8)
    for array in (
        rng.normal(10.0, 3.0, (300, 257)).astype(np.float32),
        rng.integers(0, 4000, (61, 70)).astype(np.uint16),
        np.where(rng.random((50, 40)) < 0.8, 5.0, rng.random((50, 40))),  # MAD = 0
        np.full((20, 30), 3.0),
    ):
        expected = normalize_image(array, method=method)
        stored = Normalization.from_dict(Normalization(method=method).to_dict())
        got = stored.apply(array)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, expected)
    with pytest.raises(ValueError, match="cannot reproduce"):
        Normalization.from_dict({"method": "percentile", "gamma": 2})
    card = dark_card().to_dict()
    card["normalization"] = {"method": "percentile", "gamma": 2}
    with pytest.raises(CheckpointError, match="cannot reproduce"):
        analyze(np.zeros((40, 40)), 0.5, model=(DarkPixelNet(), card))


def test_blocked_splitting_matches_whole_image_splitting():
    rng = np.random.default_rng(11)
    shape = (300, 340)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    distance = np.full(shape, np.inf)
    for _ in range(45):
        cy, cx, r = rng.uniform(0, shape[0]), rng.uniform(0, shape[1]), rng.uniform(4, 14)
        distance = np.minimum(distance, np.hypot(yy - cy, xx - cx) / r)
    foreground = (1.0 / (1.0 + np.exp(8.0 * (distance - 1.0)))).astype(np.float32)
    boundary = np.zeros(shape, dtype=np.float32)
    whole = split_instances(foreground, boundary)
    blocked = split_instances_blocked(foreground, boundary, block_px=64)
    assert whole.max() > 20
    np.testing.assert_array_equal(blocked, whole)
    assert not split_instances_blocked(np.zeros((80, 80), np.float32), block_px=64).any()


def test_large_label_maps_are_measured_block_by_block_with_the_same_table():
    """measure_particles on a map above 2048² (measured in blocks) equals the small-map answer."""
    _, truth = disks_image((230, 300), n=40, seed=12, radius_px=(3.0, 25.0))
    truth[truth == 7] = 0  # ids need not be consecutive
    probability = np.random.default_rng(1).random(truth.shape).astype(np.float32)
    small = measure_particles(truth, 0.37, probability=probability)
    big_shape = (2200, 2300)
    offset = (1930, 2000)  # straddling the 2048-px block edges, flush with the right edge
    window = (slice(offset[0], offset[0] + 230), slice(offset[1], offset[1] + 300))
    big = np.zeros(big_shape, dtype=np.int32)
    big[window] = truth
    big_probability = np.zeros(big_shape, dtype=np.float32)
    big_probability[window] = probability
    blocked = measure_particles(big, 0.37, probability=big_probability)
    assert len(small) > 30
    assert small["touches_border"].any()
    expected = small.copy()
    expected["centroid_y_px"] += offset[0]
    expected["centroid_x_px"] += offset[1]
    edge = np.zeros(big_shape, bool)
    edge[[0, -1], :] = edge[:, [0, -1]] = True
    expected["touches_border"] = np.isin(expected["particle_id"], np.unique(big[edge]))
    assert expected["touches_border"].any() and not expected["touches_border"].all()
    pd.testing.assert_frame_equal(blocked, expected, check_exact=False, rtol=1e-12)


# ---------------------------------------------------------------- the Analyzer


def test_analyze_equals_an_analyzer_call(tiny_checkpoint, image):
    settings = dict(tile_px=64, overlap_px=16)
    by_function = analyze(image, 0.5, model=tiny_checkpoint, device="cpu", **settings)
    by_object = Analyzer(tiny_checkpoint, device="cpu", **settings)(image, 0.5)
    np.testing.assert_array_equal(by_function.labels, by_object.labels)
    np.testing.assert_array_equal(by_function.probability, by_object.probability)
    pd.testing.assert_frame_equal(by_function.particles, by_object.particles)


def test_analyzer_is_reusable_across_images(tiny_checkpoint):
    analyzer = Analyzer(tiny_checkpoint, device="cpu")
    first_image, _ = disks_image(seed=0)
    second_image, _ = disks_image((120, 140), seed=1)
    first = analyzer(first_image, 0.5)
    second = analyzer(second_image, 0.45)
    again = analyzer(first_image, 0.5)  # nothing of the second image is left over
    assert second.labels.shape == (120, 140) and second.pixel_size_nm == 0.45
    check_consistent(second, (120, 140))
    np.testing.assert_array_equal(again.labels, first.labels)
    np.testing.assert_array_equal(again.probability, first.probability)


def test_analyzer_pickle_round_trip_gives_the_same_labels(tiny_checkpoint, image):
    analyzer = Analyzer(tiny_checkpoint, device="cpu", tile_px=64, overlap_px=16)
    expected = analyzer(image, 0.5)
    payload = pickle.dumps(analyzer)
    clear_model_cache()  # the copy loads the model again from its file
    copy = pickle.loads(payload)
    assert copy.settings == analyzer.settings and copy.card == analyzer.card
    result = copy(image, 0.5)
    np.testing.assert_array_equal(result.labels, expected.labels)
    np.testing.assert_array_equal(result.probability, expected.probability)
    # A model given as (network, card) travels with its weights.
    in_memory = Analyzer(dark_model(), device="cpu")
    clone = pickle.loads(pickle.dumps(in_memory))
    np.testing.assert_array_equal(clone(image, 0.5).labels, in_memory(image, 0.5).labels)


@pytest.mark.parametrize(
    "settings, name",
    [
        ({"threshold": 1.5}, "threshold"),
        ({"min_confidence": -0.1}, "min_confidence"),
        ({"min_diameter_nm": 0}, "min_diameter_nm"),
        ({"tile_px": -64}, "tile_px"),
        ({"overlap_px": 2.5}, "overlap_px"),
        ({"batch_size": 0}, "batch_size"),
        ({"tile_px": 64, "overlap_px": 100}, "overlap_px"),
        ({"precision": "half"}, "precision"),
    ],
)
def test_analyzer_bad_settings_name_the_argument(settings, name):
    with pytest.raises(ValueError, match=name):
        Analyzer(dark_model(), device="cpu", **settings)


def test_analyzer_unknown_setting_is_named():
    with pytest.raises(TypeError, match="tile_size"):
        Analyzer(dark_model(), device="cpu", tile_size=64)


# ---------------------------------------------------------------- degenerate input (issue 9)


def _hot_pixel_frame():
    frame = np.zeros((512, 512), np.float32)
    frame[100, 100] = 1000.0
    return frame


def _bright_pixel_uint8_frame():
    frame = np.full((256, 300), 17, np.uint8)
    frame[50, 60] = 255
    return frame


def _saturated_frame_with_dark_rows():
    frame = np.full((512, 512), 65535, np.uint16)
    frame[[10, 200], :] = 0
    return frame


@pytest.mark.parametrize(
    "make", [_hot_pixel_frame, _bright_pixel_uint8_frame, _saturated_frame_with_dark_rows]
)
def test_frames_without_contrast_give_no_particles(make):
    """A blank frame with a hot pixel, a uint8 frame with one bright pixel, a saturated frame
    with a few dark rows: nothing to find (once: one particle covering the whole frame)."""
    frame = make()
    result = analyze(frame, 0.3, model=dark_model(range_nm=(0.1, 0.8)))
    assert result.n_particles == 0 and not result.labels.any()
    assert result.info["constant_image"] is True
    check_consistent(result, frame.shape)


@pytest.mark.parametrize(
    "make",
    [_hot_pixel_frame, _bright_pixel_uint8_frame, _saturated_frame_with_dark_rows,
     lambda: np.zeros((64, 64)), lambda: disks_image(seed=3)[0]],
)
def test_has_contrast_is_false_exactly_when_normalisation_gives_a_constant_image(make):
    """The class of degenerate frames: those the model's normalisation turns constant."""
    from etem_helpers.preprocess.validate import has_contrast

    frame = make()
    normalized = normalize_image(frame)
    assert has_contrast(frame) == bool(normalized.max() > normalized.min())


def test_a_frame_with_real_structure_still_has_contrast():
    image, truth = disks_image(seed=3)
    result = analyze(image, 0.5, model=dark_model())
    assert result.info["constant_image"] is False and result.n_particles > 0


def test_overlap_larger_than_the_tile_names_overlap_px(image):
    with pytest.raises(ValueError, match="overlap_px=1000"):
        analyze(image, 0.3, model=dark_model(range_nm=(0.1, 0.8)), overlap_px=1000)


def test_tiny_image_is_refused_with_its_size():
    with pytest.raises(ValueError, match=r"8 x 8.*32"):
        analyze(np.random.default_rng(0).random((8, 8)), 0.5, model=dark_model())
    with pytest.raises(ValueError, match=r"20 x 400"):
        analyze(np.random.default_rng(0).random((20, 400)), 0.5, model=dark_model())


# ---------------------------------------------------------------- the shipped model


@pytest.mark.skipif(
    not analyzer_module.DEFAULT_MODEL_PATH.is_file(), reason="the default model is not installed"
)
def test_shipped_default_model_on_a_sample_micrograph():
    from pathlib import Path

    sample = Path(etem_helpers.__file__).resolve().parent.parent / "data" / "sample" / "images"
    paths = sorted(sample.glob("*.mrc"))
    if not paths:
        pytest.skip("the committed sample micrographs are not available")
    result = analyze(paths[0], device="cpu")
    check_consistent(result, result.labels.shape)
    assert result.method.startswith("unet:")
    assert result.info["model_path"] == str(analyzer_module.DEFAULT_MODEL_PATH)
    confidence = result.particles["confidence"]
    assert ((confidence >= 0) & (confidence <= 1)).all()
