"""Tests for etem_helpers.simulate.optics and etem_helpers.simulate.support (carbon film)."""

import math
import time

import numpy as np
import pytest

from etem_helpers import spectra
from etem_helpers.simulate import detector, optics, support

# --------------------------------------------------------------------------- constants


@pytest.mark.parametrize(
    ("voltage_kv", "wavelength_nm", "sigma"),
    [(300, 1.969e-3, 6.53e-4), (200, 2.508e-3, 7.29e-4), (80, 4.176e-3, 1.01e-3)],
)
def test_wavelength_and_interaction_constant_match_physics_md(voltage_kv, wavelength_nm, sigma):
    assert optics.electron_wavelength_nm(voltage_kv) == pytest.approx(wavelength_nm, rel=5e-3)
    assert optics.interaction_constant(voltage_kv) == pytest.approx(sigma, rel=5e-3)


def test_scherzer_defocus_matches_physics_md():
    assert optics.scherzer_defocus_nm(1.2, 300) == pytest.approx(59.5, rel=5e-3)
    # corrected microscope, negative Cs: optimum is overfocus
    assert optics.scherzer_defocus_nm(-0.02, 300) < 0


@pytest.mark.parametrize("bad", [0, -300, float("nan")])
def test_wavelength_rejects_bad_voltage(bad):
    with pytest.raises(ValueError, match="voltage_kv"):
        optics.electron_wavelength_nm(bad)


def test_fourier_grid_frequencies():
    ky, kx = optics.fourier_grid((8, 10), 0.5)
    assert ky.shape == (8, 1) and kx.shape == (1, 10)
    assert kx[0, 1] == pytest.approx(1 / (10 * 0.5))
    assert ky.min() == pytest.approx(-1.0)  # Nyquist 1 / (2 p)
    _, kx_half = optics.fourier_grid((8, 10), 0.5, rfft=True)
    assert kx_half.shape == (1, 6)
    with pytest.raises(ValueError, match="pixel_size_nm"):
        optics.fourier_grid((8, 8), 0)


# --------------------------------------------------------------------------- envelopes


def test_temporal_envelope_value_by_hand():
    k = np.array([0.0, 5.0])
    env = optics.temporal_envelope(k, voltage_kv=300, focal_spread_nm=4.0)
    by_hand = math.exp(-0.5 * (math.pi * 1.9687e-3 * 4.0) ** 2 * 5.0**4)  # = 0.826
    assert env[0] == 1.0
    assert env[1] == pytest.approx(by_hand, rel=1e-3)


def test_envelopes_start_at_one_and_fall():
    k = np.linspace(0, 10, 200)
    e_t = optics.temporal_envelope(k, voltage_kv=200, focal_spread_nm=3.0)
    e_s = optics.spatial_envelope(k, voltage_kv=200, cs_mm=1.2, defocus_nm=-50.0,
                                  convergence_mrad=0.3)
    e_i = optics.info_limit_envelope(k, info_limit_nm=0.12)
    for env in (e_t, e_s, e_i):
        assert env[0] == 1.0
        assert np.all(np.diff(env) <= 0)
        assert env[-1] < 0.9
    assert np.all(optics.info_limit_envelope(k, info_limit_nm=None) == 1.0)


def test_info_limit_envelope_is_e_minus_2_at_the_limit():
    env = optics.info_limit_envelope(np.array([1 / 0.12]), info_limit_nm=0.12)
    assert env[0] == pytest.approx(math.exp(-2), rel=1e-9)


def test_spatial_envelope_is_one_where_chi_is_stationary():
    # underfocus: dchi/dk = 0 at k^2 = df / (Cs lambda^2), where partial coherence does not damp
    lam = optics.electron_wavelength_nm(300)
    k_stat = math.sqrt(200.0 / (1.2e6 * lam**2))
    env = optics.spatial_envelope(np.array([k_stat / 2, k_stat]), voltage_kv=300, cs_mm=1.2,
                                  defocus_nm=200.0, convergence_mrad=0.5)
    assert env[1] == pytest.approx(1.0, abs=1e-9)
    assert env[0] < 0.9


# --------------------------------------------------------------------------- chi and H


def test_transfer_function_phase_is_minus_chi_and_aperture_cuts():
    shape, p = (64, 64), 0.05
    kw = dict(voltage_kv=300, defocus_nm=60.0, cs_mm=1.2)
    h = optics.transfer_function(shape, p, aperture_mrad=20.0, **kw)
    assert h.dtype == np.complex64 and h.shape == shape
    assert h[0, 0] == 1
    ky, kx = optics.fourier_grid(shape, p)
    chi = optics.aberration_chi(ky, kx, **kw)
    k = np.hypot(ky, kx)
    k_ap = 20e-3 / optics.electron_wavelength_nm(300)
    inside = k <= k_ap
    assert np.allclose(h[inside], np.exp(-1j * chi)[inside], atol=1e-5)
    assert np.all(h[~inside] == 0)
    assert np.abs(h).max() <= 1 + 1e-6


def test_astigmatism_changes_defocus_along_its_axis():
    k = 3.0
    kw = dict(voltage_kv=300, cs_mm=1.2)
    angle = 30.0
    ky_a, kx_a = k * math.sin(math.radians(angle)), k * math.cos(math.radians(angle))
    ky_p, kx_p = k * math.sin(math.radians(angle + 90)), k * math.cos(math.radians(angle + 90))
    chi_a = optics.aberration_chi(ky_a, kx_a, defocus_nm=50.0, astigmatism_nm=5.0,
                                  astigmatism_angle_deg=angle, **kw)
    chi_p = optics.aberration_chi(ky_p, kx_p, defocus_nm=50.0, astigmatism_nm=5.0,
                                  astigmatism_angle_deg=angle, **kw)
    assert chi_a == pytest.approx(optics.aberration_chi(0.0, k, defocus_nm=55.0, **kw))
    assert chi_p == pytest.approx(optics.aberration_chi(0.0, k, defocus_nm=45.0, **kw))


@pytest.mark.parametrize(("defocus_sign", "darker"), [(1, True), (-1, False)])
def test_weak_phase_atom_is_dark_at_scherzer_and_bright_in_overfocus(defocus_sign, darker):
    p = 0.02
    yy, xx = np.mgrid[:128, :128]
    phase = 0.05 * np.exp(-((yy - 64) ** 2 + (xx - 64) ** 2) / (2 * (0.04 / p) ** 2))
    df = defocus_sign * optics.scherzer_defocus_nm(1.2, 300)
    image = optics.image_intensity(np.exp(1j * phase), p, voltage_kv=300, defocus_nm=df,
                                   cs_mm=1.2, aperture_mrad=12.0)
    assert bool(image[64, 64] < 1.0) is darker
    curve = optics.ctf_curve(np.array([1.5]), voltage_kv=300, defocus_nm=df, cs_mm=1.2)
    assert bool(curve["ctf"][0] > 0) is darker
    assert curve["ctf"][0] == pytest.approx(-curve["sin_chi"][0] * curve["envelope"][0])


@pytest.mark.parametrize(("defocus_nm", "cs_mm"), [(200.0, 1.2), (-150.0, 1.2), (10.0, -0.02),
                                                   (-80.0, 0.0)])
def test_ctf_zeros_are_all_the_sign_changes_of_sin_chi(defocus_nm, cs_mm):
    k_max = 8.0
    zeros = optics.ctf_zeros_per_nm(voltage_kv=300, defocus_nm=defocus_nm, cs_mm=cs_mm,
                                    k_max_per_nm=k_max)
    kw = dict(voltage_kv=300, defocus_nm=defocus_nm, cs_mm=cs_mm)
    chi = optics.aberration_chi(0.0, zeros, **kw)
    assert np.allclose(np.sin(chi), 0, atol=1e-8)
    k = np.linspace(1e-3, k_max, 400_001)
    s = np.sin(optics.aberration_chi(0.0, k, **kw))
    assert len(zeros) == np.count_nonzero(np.sign(s[1:]) != np.sign(s[:-1]))
    assert np.all(np.diff(zeros) > 0) and zeros[0] > 0 and zeros[-1] <= k_max


# --------------------------------------------------------------------------- image formation


def test_vacuum_images_to_one_and_pure_phase_keeps_mean_intensity():
    kw = dict(voltage_kv=300, defocus_nm=100.0, cs_mm=1.2)
    vac = optics.image_intensity(np.ones((32, 32)), 0.05, **kw)
    assert vac.dtype == np.float32
    assert np.allclose(vac, 1.0, atol=1e-6)
    rng = np.random.default_rng(0)
    psi = np.exp(1j * rng.normal(0, 0.3, (64, 64)))
    img = optics.image_intensity(psi, 0.05, **kw)  # unitary H: Parseval
    assert img.mean() == pytest.approx(1.0, abs=1e-5)
    h = optics.transfer_function((64, 64), 0.05, **kw)
    assert np.array_equal(optics.image_intensity(psi, 0.05, transfer=h), img)
    with pytest.raises(TypeError, match="not both"):
        optics.image_intensity(psi, 0.05, transfer=h, defocus_nm=3.0)


@pytest.mark.parametrize("defocus_nm", [200.0, 400.0, -150.0])
def test_thon_ring_minima_match_ctf_zeros(defocus_nm):
    """physics.md signature 1: minima of the carbon power spectrum at the zeros of sin chi."""
    p, n = 0.05, 1024
    rng = np.random.default_rng(3)
    phase = support.amorphous_carbon_phase((n, n), p, thickness_nm=10.0, voltage_kv=300,
                                           rng=rng)
    image = optics.image_intensity(np.exp(1j * phase), p, voltage_kv=300, defocus_nm=defocus_nm,
                                   cs_mm=1.2, focal_spread_nm=3.0, convergence_mrad=0.1)
    counts = detector.shot_noise(image, dose_e_per_a2=5000.0, pixel_size_nm=p, rng=rng)
    k, power = spectra.radial_profile(spectra.power_spectrum(counts), p)
    zeros = optics.ctf_zeros_per_nm(voltage_kv=300, defocus_nm=defocus_nm, cs_mm=1.2,
                                    k_max_per_nm=6.0)
    minima = spectra.find_minima(k, power, k_min=0.7 * zeros[0], k_max=6.0)
    assert len(minima) >= 3
    np.testing.assert_allclose(minima[:3], zeros[:3], rtol=0.03)


def test_fourier_crop_keeps_mean_and_low_frequencies_and_removes_high_ones():
    n, m = 256, 128
    x = np.arange(n)
    low = np.cos(2 * np.pi * 5 * x / n + 0.3)  # 5 cycles per field: kept
    high = np.cos(2 * np.pi * 100 * x / n)  # above the new Nyquist (64 cycles): removed
    image = 3.0 + low[None, :] + high[None, :] + 0.5 * low[:, None]
    out = optics.fourier_crop(image, (m, m))
    assert out.dtype == np.float32 and out.shape == (m, m)
    assert out.mean() == pytest.approx(3.0, abs=1e-5)
    xs = np.arange(m) * n / m
    expected_low = np.cos(2 * np.pi * 5 * xs / n + 0.3)
    expected = 3.0 + expected_low[None, :] + 0.5 * expected_low[:, None]
    np.testing.assert_allclose(out, expected, atol=1e-4)
    # odd output size also works and keeps the mean
    assert optics.fourier_crop(image, (101, 77)).mean() == pytest.approx(3.0, abs=1e-5)
    with pytest.raises(ValueError, match="only"):
        optics.fourier_crop(image, (512, 512))


# --------------------------------------------------------------------------- carbon support


@pytest.mark.parametrize(("thickness_nm", "std_rad"), [(2.0, 0.074), (5.0, 0.116), (10.0, 0.158)])
@pytest.mark.parametrize("method", ["atoms", "counts"])
def test_carbon_phase_statistics_match_physics_md(thickness_nm, std_rad, method):
    phase = support.amorphous_carbon_phase(
        (512, 512), 0.05, thickness_nm=thickness_nm, voltage_kv=300,
        rng=np.random.default_rng(1), undulation_rad=0.0, method=method,
    )
    assert phase.dtype == np.float32
    assert phase.std() == pytest.approx(std_rad, rel=0.15)
    assert phase.mean() / thickness_nm == pytest.approx(0.079, rel=0.15)


def test_carbon_atom_and_count_sampling_agree():
    """Bilinear atom splatting (compensated) and per-pixel counts give the same statistics."""
    stds = {}
    for method in ("atoms", "counts"):
        phase = support.amorphous_carbon_phase(
            (512, 512), 0.04, thickness_nm=4.0, voltage_kv=200, rng=np.random.default_rng(5),
            undulation_rad=0.0, method=method,
        )
        stds[method] = phase.std()
    assert stds["atoms"] == pytest.approx(stds["counts"], rel=0.03)


def test_carbon_phase_is_seeded_and_scales_with_interaction_constant():
    kw = dict(thickness_nm=5.0, undulation_rad=0.0)
    a = support.amorphous_carbon_phase((128, 128), 0.05, voltage_kv=300,
                                       rng=np.random.default_rng(7), **kw)
    b = support.amorphous_carbon_phase((128, 128), 0.05, voltage_kv=300,
                                       rng=np.random.default_rng(7), **kw)
    c = support.amorphous_carbon_phase((128, 128), 0.05, voltage_kv=80,
                                       rng=np.random.default_rng(7), **kw)
    assert np.array_equal(a, b)
    ratio = optics.interaction_constant(80) / optics.interaction_constant(300)
    np.testing.assert_allclose(c, a * ratio, rtol=1e-4, atol=1e-6)
    assert not np.array_equal(
        a, support.amorphous_carbon_phase((128, 128), 0.05, voltage_kv=300,
                                          rng=np.random.default_rng(8), **kw))


def test_carbon_undulation_has_requested_rms_and_power_law():
    shape, p, beta = (256, 256), 0.05, 1.5
    rms = []
    slopes = []
    for seed in range(6):
        kw = dict(thickness_nm=3.0, voltage_kv=300, undulation_beta=beta)
        with_u = support.amorphous_carbon_phase(shape, p, rng=np.random.default_rng(seed),
                                                undulation_rad=0.05, **kw)
        without = support.amorphous_carbon_phase(shape, p, rng=np.random.default_rng(seed),
                                                 undulation_rad=0.0, **kw)
        und = with_u - without  # same atoms (drawn first), so this is the undulation alone
        rms.append(und.std())
        k, power = spectra.radial_profile(spectra.power_spectrum(und, window=None), p)
        sel = (k > 0.2) & (k < 4)
        slopes.append(np.polyfit(np.log(k[sel]), np.log(power[sel]), 1)[0])
    assert np.sqrt(np.mean(np.square(rms))) == pytest.approx(0.05, rel=0.25)
    assert np.mean(slopes) == pytest.approx(-2 * beta, abs=0.3)


def test_carbon_phase_low_magnification_uses_counts_and_is_fast():
    t0 = time.perf_counter()
    phase = support.amorphous_carbon_phase((512, 512), 1.0, thickness_nm=20.0, voltage_kv=300,
                                           rng=np.random.default_rng(0), undulation_rad=0.0)
    elapsed = time.perf_counter() - t0
    assert phase.mean() == pytest.approx(20 * 0.078, rel=0.01)
    # per-pixel Poisson: 2000 atoms per 1 nm^2 pixel, relative std 1/sqrt(2000)
    assert phase.std() / phase.mean() == pytest.approx(1 / math.sqrt(2000), rel=0.15)
    assert elapsed < 2.0


def test_carbon_phase_rejects_bad_arguments():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="thickness_nm"):
        support.amorphous_carbon_phase((8, 8), 0.05, thickness_nm=-1, voltage_kv=300, rng=rng)
    with pytest.raises(TypeError, match="rng"):
        support.amorphous_carbon_phase((8, 8), 0.05, thickness_nm=1, voltage_kv=300, rng=0)
    zero = support.amorphous_carbon_phase((8, 8), 0.05, thickness_nm=0, voltage_kv=300, rng=rng)
    assert not zero.any()


# --------------------------------------------------------------------------- timing (printed)


def test_timing_of_the_optics_steps_on_1024(capsys):
    shape, p = (1024, 1024), 0.025
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    phase = support.amorphous_carbon_phase(shape, p, thickness_nm=5.0, voltage_kv=300, rng=rng)
    t1 = time.perf_counter()
    h = optics.transfer_function(shape, p, voltage_kv=300, defocus_nm=60.0, cs_mm=1.2,
                                 focal_spread_nm=3.0, convergence_mrad=0.2, aperture_mrad=30.0,
                                 info_limit_nm=0.12)
    t2 = time.perf_counter()
    image = optics.image_intensity(np.exp(1j * phase), p, transfer=h)
    t3 = time.perf_counter()
    out = optics.fourier_crop(image, (512, 512))
    t4 = time.perf_counter()
    with capsys.disabled():
        print(f"\n[timing 1024^2] carbon {t1 - t0:.3f} s, transfer_function {t2 - t1:.3f} s, "
              f"image_intensity {t3 - t2:.3f} s, fourier_crop {t4 - t3:.3f} s")
    assert out.shape == (512, 512)
    assert t4 - t0 < 10.0  # loose: the machine is shared
