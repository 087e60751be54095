"""Tests for etem_helpers.simulate.detector (motion, gas, shot noise, MTF)."""

import numpy as np
import pytest

from etem_helpers import spectra
from etem_helpers.simulate import detector


@pytest.mark.parametrize(("level", "dose_e_per_a2"), [(1.0, 20.0), (0.6, 2000.0)])
def test_shot_noise_is_poisson_with_the_right_mean(level, dose_e_per_a2):
    """physics.md signature 7: variance / mean = 1 in flat regions, mean = I D p^2."""
    p = 0.05  # 0.5 Å pixel -> 0.25 Å^2
    image = np.full((256, 256), level, dtype=np.float32)
    counts = detector.shot_noise(image, dose_e_per_a2=dose_e_per_a2, pixel_size_nm=p,
                                 rng=np.random.default_rng(0))
    assert counts.dtype == np.float32
    expected_mean = level * dose_e_per_a2 * 0.25
    assert counts.mean() == pytest.approx(expected_mean, rel=0.02)
    assert counts.var() / counts.mean() == pytest.approx(1.0, rel=0.10)
    assert np.all(counts == np.round(counts))


def test_shot_noise_is_seeded_and_validates():
    image = np.ones((16, 16))
    a = detector.shot_noise(image, dose_e_per_a2=10, pixel_size_nm=0.1,
                            rng=np.random.default_rng(3))
    b = detector.shot_noise(image, dose_e_per_a2=10, pixel_size_nm=0.1,
                            rng=np.random.default_rng(3))
    assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="dose_e_per_a2"):
        detector.shot_noise(image, dose_e_per_a2=0, pixel_size_nm=0.1,
                            rng=np.random.default_rng(3))
    negative = detector.shot_noise(-np.ones((4, 4)), dose_e_per_a2=10, pixel_size_nm=0.1,
                                   rng=np.random.default_rng(3))
    assert not negative.any()  # clipped to zero expected counts


def test_mtf_curve_values():
    # 20 pixels: a frequency sample at q = 2 * 7 / 20 = 0.7 = 2 c3 (halfway point)
    mtf = detector.detector_mtf((20, 20), c1=0.95, c2=0.005, c3=0.35, c4=2.5)
    assert mtf.shape == (20, 20) and mtf.dtype == np.float32
    assert mtf[0, 0] == pytest.approx(0.95)
    assert mtf[0, 7] == pytest.approx((0.95 + 0.005) / 2, rel=1e-5)
    assert mtf[7, 0] == pytest.approx(mtf[0, 7])
    row = mtf[0, :11]
    assert np.all(np.diff(row) < 0)
    steep = detector.detector_mtf((20, 20), c1=0.95, c2=0.005, c3=0.35, c4=20)
    assert steep[0, 10] == pytest.approx(0.005, abs=1e-3)  # ~c2 at high q


def test_mtf_turns_a_flat_noise_floor_into_the_mtf_shape():
    """physics.md signature 2: after the detector the noise power follows MTF(q)."""
    p = 0.1
    flat = np.ones((256, 256), dtype=np.float32)
    counts = detector.shot_noise(flat, dose_e_per_a2=10.0, pixel_size_nm=p,
                                 rng=np.random.default_rng(1))
    mtf = detector.detector_mtf(counts.shape)
    blurred = detector.apply_detector_mtf(counts, mtf)
    assert blurred.mean() == pytest.approx(counts.mean(), rel=1e-5)
    k, before = spectra.radial_profile(spectra.power_spectrum(counts, window=None), p)
    _, after = spectra.radial_profile(spectra.power_spectrum(blurred, window=None), p)
    _, mtf_profile = spectra.radial_profile(np.fft.fftshift(mtf), p)
    sel = k > 0.3
    # noise floor was flat: ratio of high-q to low-q power ~ 1 before, ~ MTF ratio after
    assert before[sel][-20:].mean() / before[sel][:20].mean() == pytest.approx(1.0, rel=0.1)
    ratio = after[sel] / before[sel]
    np.testing.assert_allclose(_smooth(ratio), _smooth(mtf_profile[sel]), rtol=0.12)
    assert after[sel][-20:].mean() < 0.5 * after[sel][:20].mean()
    half = detector.apply_detector_mtf(counts, mtf[:, : 256 // 2 + 1])
    np.testing.assert_allclose(half, blurred, rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="detector_mtf"):
        detector.apply_detector_mtf(counts, mtf[:100])


def _smooth(x, n=9):
    return np.convolve(x, np.ones(n) / n, mode="valid")


@pytest.mark.parametrize("gas_fraction", [0.0, 0.1, 0.3])
def test_gas_scattering_lowers_contrast_by_one_minus_f(gas_fraction):
    rng = np.random.default_rng(0)
    image = 1.0 + 0.2 * rng.standard_normal((64, 64))
    out = detector.apply_gas_scattering(image, gas_fraction=gas_fraction)
    assert out.mean() == pytest.approx(image.mean(), rel=1e-6)
    contrast_in = image.std() / image.mean()
    assert out.std() / out.mean() == pytest.approx((1 - gas_fraction) * contrast_in, rel=1e-5)
    with pytest.raises(ValueError, match="gas_fraction"):
        detector.apply_gas_scattering(image, gas_fraction=1.5)


def _moments(image):
    w = image / image.sum()
    yy, xx = np.indices(image.shape)
    cy, cx = (w * yy).sum(), (w * xx).sum()
    return ((w * (yy - cy) ** 2).sum(), (w * (xx - cx) ** 2).sum(),
            (w * (yy - cy) * (xx - cx)).sum())


@pytest.mark.parametrize("angle_deg", [0.0, 90.0, 45.0])
def test_drift_spreads_a_point_along_the_drift_direction_only(angle_deg):
    p, drift_nm = 0.05, 1.0  # 20 px of drift
    point = np.zeros((128, 128), dtype=np.float32)
    point[64, 64] = 1.0
    out = detector.apply_motion_blur(point, p, drift_nm=drift_nm, drift_angle_deg=angle_deg)
    assert out.sum() == pytest.approx(1.0, rel=1e-4)
    var_y, var_x, cov = _moments(out)
    box_var = (drift_nm / p) ** 2 / 12  # variance of a uniform streak, px^2
    a = np.radians(angle_deg)
    var_along = var_x * np.cos(a) ** 2 + var_y * np.sin(a) ** 2 + 2 * cov * np.sin(a) * np.cos(a)
    var_across = var_x * np.sin(a) ** 2 + var_y * np.cos(a) ** 2 - 2 * cov * np.sin(a) * np.cos(a)
    assert var_along == pytest.approx(box_var, rel=0.15)
    assert var_across < 0.05 * box_var


def test_jitter_is_an_isotropic_gaussian():
    p, jitter_nm = 0.05, 0.1  # 2 px
    point = np.zeros((64, 64), dtype=np.float32)
    point[32, 32] = 1.0
    out = detector.apply_motion_blur(point, p, jitter_nm=jitter_nm)
    var_y, var_x, cov = _moments(out)
    assert var_y == pytest.approx(4.0, rel=0.05)
    assert var_x == pytest.approx(4.0, rel=0.05)
    assert abs(cov) < 0.05
    assert np.array_equal(detector.apply_motion_blur(point, p), point)
    with pytest.raises(ValueError, match="drift_nm"):
        detector.apply_motion_blur(point, p, drift_nm=-1.0)
