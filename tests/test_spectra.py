"""Tests for etem_helpers.spectra."""

import numpy as np
import pytest

from etem_helpers import spectra


@pytest.mark.parametrize("window", ["hann", None])
def test_white_noise_power_level_equals_its_variance(window):
    rng = np.random.default_rng(0)
    image = 5.0 + 2.0 * rng.standard_normal((256, 256))
    power = spectra.power_spectrum(image, window=window)
    assert power.dtype == np.float64 and power.shape == image.shape
    assert power.mean() == pytest.approx(4.0, rel=0.05)


def test_sinusoid_peaks_at_its_frequency_and_radial_profile_finds_it():
    p, n = 0.05, 256
    f_per_nm = 51 / (n * p)  # about 4 1/nm (Au {111} is 4.25), on the Fourier grid along x
    yy, xx = np.indices((n, n))
    angle = np.radians(30)
    image = np.cos(2 * np.pi * f_per_nm * p * (xx * np.cos(angle) + yy * np.sin(angle)))
    power = spectra.power_spectrum(image)
    iy, ix = np.unravel_index(np.argmax(power), power.shape)
    k_peak = np.hypot(iy - n // 2, ix - n // 2) / (n * p)
    assert k_peak == pytest.approx(f_per_nm, rel=0.02)
    k, prof = spectra.radial_profile(power, p)
    assert len(k) == n // 2
    assert k[np.nanargmax(prof)] == pytest.approx(f_per_nm, rel=0.02)
    assert np.nanmax(k) < 0.5 / p


def test_radial_profile_of_an_isotropic_function():
    p = 0.1
    n = 128
    ky = np.fft.fftshift(np.fft.fftfreq(n, d=p))[:, None]
    kx = np.fft.fftshift(np.fft.fftfreq(n, d=p))[None, :]
    power = np.exp(-np.hypot(ky, kx))
    k, prof = spectra.radial_profile(power, p, n_bins=32)
    assert len(k) == 32
    np.testing.assert_allclose(prof[1:], np.exp(-k[1:]), rtol=0.02)
    with pytest.raises(ValueError, match="pixel_size_nm"):
        spectra.radial_profile(power, 0.0)


def test_find_minima_on_a_noisy_thon_like_profile():
    k = np.linspace(0.01, 5, 500)
    true_zeros = np.sqrt(np.arange(1, 8))
    profile = np.sin(np.pi * k**2) ** 2 * np.exp(-k) + 1e-3
    rng = np.random.default_rng(0)
    noisy = profile * np.exp(0.05 * rng.standard_normal(k.size))
    found = spectra.find_minima(k, noisy, k_min=0.5, k_max=2.8, smooth_bins=2,
                                min_prominence=0.5)
    expected = true_zeros[(true_zeros >= 0.5) & (true_zeros <= 2.8)]
    assert len(found) == len(expected)
    np.testing.assert_allclose(found, expected, rtol=0.01)


def test_power_spectrum_rejects_bad_input():
    with pytest.raises(ValueError, match="window"):
        spectra.power_spectrum(np.zeros((8, 8)), window="triangle")
    with pytest.raises(ValueError, match="2-D"):
        spectra.power_spectrum(np.zeros(8))
