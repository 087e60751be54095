"""Tests of the feature-space realism measures (etem_helpers.gan.feature_space), smoke size."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg, ndimage

from etem_helpers.gan.feature_space import (
    bootstrap_interval,
    classifier_auc,
    compare_in_feature_space,
    encode,
    frechet_distance,
    kernel_distance,
    load_feature_encoder,
    random_crops,
    save_feature_encoder,
    train_feature_encoder,
)


def _gauss(n, d, shift=0.0, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d)) + shift


def _textures(n_images, *, blur_px, seed, size=96):
    """Noise textures, optionally blurred (sharp: a 0.6 px grain)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_images):
        image = ndimage.gaussian_filter(rng.standard_normal((size, size)), 0.6)
        if blur_px:
            image = ndimage.gaussian_filter(image, blur_px)
        out.append(image)
    return out


@pytest.fixture(scope="module")
def small_encoder():
    crops = random_crops(_textures(4, blur_px=0, seed=1), crop_px=32, n_per_image=24, seed=0)
    return train_feature_encoder(crops, epochs=2, seed=3, batch_size=32), crops


# ---------------------------------------------------------------------------------- crops
def test_random_crops_shape_range_and_gain_invariance():
    images = _textures(2, blur_px=0, seed=0, size=80)
    crops, index = random_crops(images, crop_px=32, n_per_image=5, seed=4,
                                return_image_index=True)
    assert crops.shape == (10, 32, 32) and crops.dtype == np.float32
    assert crops.min() >= 0.0 and crops.max() <= 1.0
    assert index.tolist() == [0] * 5 + [1] * 5
    scaled = random_crops([3.0 * im + 7.0 for im in images], crop_px=32, n_per_image=5, seed=4)
    np.testing.assert_allclose(scaled, crops, atol=1e-6)
    assert not np.array_equal(random_crops(images, crop_px=32, n_per_image=5, seed=5), crops)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"crop_px": 8}, "crop_px"), ({"n_per_image": 0}, "n_per_image"),
     ({"crop_px": 128}, r"images\[0\]")],
)
def test_random_crops_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        random_crops([np.random.default_rng(0).random((64, 64))], **kwargs)
    with pytest.raises(ValueError, match="images"):
        random_crops([])


# ---------------------------------------------------------------------------------- distances
def test_frechet_distance_identical_and_shifted_gaussians():
    a = _gauss(400, 4)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    shift = np.array([1.0, 2.0, 0.0])
    big_a, big_b = _gauss(20000, 3, seed=1), _gauss(20000, 3, shift, seed=2)
    assert frechet_distance(big_a, big_b) == pytest.approx(float(shift @ shift), abs=0.1)


def test_frechet_distance_matches_sqrtm_formula_for_general_covariances():
    rng = np.random.default_rng(5)
    a = _gauss(300, 5, seed=6) @ rng.standard_normal((5, 5))
    b = _gauss(250, 5, seed=7) @ rng.standard_normal((5, 5)) + 0.3
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = (np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(cov_a + cov_b)
                - 2 * np.trace(linalg.sqrtm(cov_a @ cov_b).real))
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    # fewer rows than features: singular covariances must not give NaN or a negative distance
    assert np.isfinite(frechet_distance(a[:3], b[:4])) and frechet_distance(a[:3], b[:4]) >= 0


def test_kernel_distance_same_vs_shifted():
    a, same, shifted = _gauss(400, 8, seed=1), _gauss(400, 8, seed=2), _gauss(400, 8, 0.5, seed=3)
    kid_same = kernel_distance(a, same, n_subsets=10, subset_size=200)
    kid_shifted = kernel_distance(a, shifted, n_subsets=10, subset_size=200)
    assert abs(kid_same) < 0.05
    assert kid_shifted > 0.5 and kid_shifted > 10 * abs(kid_same)
    assert kernel_distance(a, same, n_subsets=3, subset_size=50, seed=1) == kernel_distance(
        a, same, n_subsets=3, subset_size=50, seed=1)


def test_kernel_distance_matches_explicit_unbiased_mmd():
    a, b = _gauss(30, 4, seed=1), _gauss(25, 4, 0.3, seed=2)
    a, b = a[:25], b  # whole sets as the one subset: the estimate is exact, no randomness

    def k(x, y):
        return (x @ y / 4 + 1.0) ** 3

    m = 25
    xx = sum(k(a[i], a[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(b[i], b[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(a[i], b[j]) for i in range(m) for j in range(m)) / m**2
    assert kernel_distance(a, b, n_subsets=1, subset_size=m) == pytest.approx(xx + yy - 2 * xy)


def test_classifier_auc_chance_and_separable():
    auc, low, high = classifier_auc(_gauss(300, 4, seed=1), _gauss(300, 4, seed=2), n_boot=50)
    assert 0.4 < auc < 0.6 and low <= auc <= high
    auc, low, high = classifier_auc(_gauss(300, 4, seed=1), _gauss(300, 4, 3.0, seed=2),
                                    n_boot=50)
    assert auc > 0.98 and low > 0.95


def test_classifier_auc_groups_keep_images_in_one_fold():
    a, b = _gauss(60, 3, seed=1), _gauss(60, 3, 0.2, seed=2)
    groups = np.repeat(np.arange(6), 10)
    auc, low, high = classifier_auc(a, b, groups_a=groups, groups_b=groups, n_folds=3, n_boot=30)
    assert low <= auc <= high
    with pytest.raises(ValueError, match="groups_a and groups_b"):
        classifier_auc(a, b, groups_a=groups)
    with pytest.raises(ValueError, match="n_folds"):
        classifier_auc(a, b, groups_a=groups % 2, groups_b=groups % 2, n_folds=3)


def test_bootstrap_interval_contains_value_and_is_deterministic():
    a, b = _gauss(200, 3, seed=1), _gauss(200, 3, 1.0, seed=2)
    first = bootstrap_interval(frechet_distance, a, b, n_boot=60, seed=4)
    assert first == bootstrap_interval(frechet_distance, a, b, n_boot=60, seed=4)
    value, low, high = first
    assert value == frechet_distance(a, b)
    assert low <= value <= high and high > low
    assert bootstrap_interval(frechet_distance, a, b, n_boot=60, seed=5) != first


def test_image_level_bootstrap_is_wider_when_images_differ():
    rng = np.random.default_rng(0)
    offsets = np.repeat(rng.normal(0, 2.0, (10, 3)), 30, axis=0)
    a, b = _gauss(300, 3, seed=1) + offsets, _gauss(300, 3, seed=2)
    groups = np.repeat(np.arange(10), 30)
    _, lo_row, hi_row = bootstrap_interval(frechet_distance, a, b, n_boot=100)
    _, lo_img, hi_img = bootstrap_interval(frechet_distance, a, b, n_boot=100, groups_a=groups)
    assert hi_img - lo_img > 2 * (hi_row - lo_row)


@pytest.mark.parametrize(
    ("call", "name"),
    [(lambda a, b: frechet_distance(a, b[:, :2]), "feat_b"),
     (lambda a, b: frechet_distance(a[:1], b), "feat_a"),
     (lambda a, b: kernel_distance(a, b, n_subsets=0), "n_subsets"),
     (lambda a, b: kernel_distance(a, b, subset_size=1), "subset_size"),
     (lambda a, b: bootstrap_interval(frechet_distance, a, b, confidence=1.5), "confidence"),
     (lambda a, b: bootstrap_interval(frechet_distance, a, b, n_boot=0), "n_boot"),
     (lambda a, b: bootstrap_interval(frechet_distance, a, b, groups_a=[0, 1]), "groups_a"),
     (lambda a, b: classifier_auc(a, b, n_folds=1), "n_folds")],
)
def test_bad_arguments_name_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call(_gauss(20, 3, seed=1), _gauss(20, 3, seed=2))


# ---------------------------------------------------------------------------------- encoder
def test_encoder_training_is_deterministic_and_round_trips(small_encoder, tmp_path):
    encoder, crops = small_encoder
    features = encode(encoder, crops, batch_size=16)
    assert features.shape == (crops.shape[0], 64) and features.dtype == np.float64
    import torch

    torch.manual_seed(99)  # the global torch RNG must not matter, nor be changed
    state = torch.random.get_rng_state()
    again = train_feature_encoder(crops, epochs=2, seed=3, batch_size=32)
    assert torch.equal(torch.random.get_rng_state(), state)
    np.testing.assert_array_equal(encode(again, crops), features)
    other = train_feature_encoder(crops, epochs=2, seed=4, batch_size=32)
    assert not np.allclose(encode(other, crops), features)
    path = save_feature_encoder(tmp_path / "enc.pt", encoder)
    loaded = load_feature_encoder(path)
    np.testing.assert_array_equal(encode(loaded, crops), features)
    assert loaded.info["seed"] == 3 and len(loaded.info["loss_per_epoch"]) == 2


def test_encoder_bad_arguments_and_foreign_file(tmp_path):
    crops = np.zeros((4, 32, 32), dtype=np.float32)
    with pytest.raises(ValueError, match="epochs"):
        train_feature_encoder(crops, epochs=0)
    with pytest.raises(ValueError, match="batch_size"):
        train_feature_encoder(crops, epochs=1, batch_size=1)
    with pytest.raises(ValueError, match="crops"):
        train_feature_encoder(np.zeros((4, 32, 16)), epochs=1)
    import torch

    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="path"):
        load_feature_encoder(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError):
        load_feature_encoder(tmp_path / "missing.pt")


def test_trained_encoder_separates_blurred_from_sharp_textures(small_encoder):
    encoder, _ = small_encoder
    sharp, blurred, other_sharp = (
        encode(encoder, random_crops(_textures(4, blur_px=blur, seed=seed), crop_px=32,
                                     n_per_image=60, seed=seed))
        for blur, seed in ((0, 10), (2.0, 11), (0, 12)))
    auc, _, _ = classifier_auc(sharp, blurred, n_boot=20)
    assert auc > 0.8
    kid_blur = kernel_distance(sharp, blurred, n_subsets=5, subset_size=200)
    kid_same = kernel_distance(sharp, other_sharp, n_subsets=5, subset_size=200)
    assert kid_blur > 5 * abs(kid_same)
    assert frechet_distance(sharp, blurred) > 2 * frechet_distance(sharp, other_sharp)


def test_compare_in_feature_space_rows_and_floor(small_encoder):
    encoder, _ = small_encoder
    reference = random_crops(_textures(3, blur_px=0, seed=20), crop_px=32, n_per_image=20, seed=1)
    floor = random_crops(_textures(3, blur_px=0, seed=21), crop_px=32, n_per_image=20, seed=2)
    blurred = random_crops(_textures(3, blur_px=2.0, seed=22), crop_px=32, n_per_image=20, seed=3)
    frame = compare_in_feature_space(encoder, reference, {"blurred": blurred}, floor_crops=floor,
                                     n_boot=20, kid_subsets=3, kid_subset_size=40, kid_boot=5)
    assert frame["set"].tolist() == ["real floor", "blurred"]
    assert {"fd", "fd_low", "fd_high", "kid", "kid_low", "kid_high", "auc", "auc_low",
            "auc_high", "n_crops"} <= set(frame.columns)
    floor_row, blur_row = frame.iloc[0], frame.iloc[1]
    assert blur_row.fd > floor_row.fd and blur_row.auc > floor_row.auc
    groups = {name: np.repeat(np.arange(3), 20) for name in ("reference", "real floor",
                                                             "blurred")}
    grouped = compare_in_feature_space(encoder, reference, {"blurred": blurred},
                                       floor_crops=floor, n_boot=20, kid_subsets=3,
                                       kid_subset_size=40, kid_boot=5, groups=groups)
    assert grouped["fd"].tolist() == frame["fd"].tolist()  # same values, other intervals
    assert grouped.iloc[1].fd_high - grouped.iloc[1].fd_low != blur_row.fd_high - blur_row.fd_low
    with pytest.raises(ValueError, match="real floor"):
        compare_in_feature_space(encoder, reference, {"real floor": blurred}, floor_crops=floor)
    with pytest.raises(ValueError, match="groups"):
        compare_in_feature_space(encoder, reference, {"blurred": blurred}, floor_crops=floor,
                                 groups={"reference": np.zeros(60)})
