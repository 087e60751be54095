"""Tests of the realism measures and of the low-magnification realism features of the simulator."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from etem_helpers.realism import (
    background_texture,
    compare_image_sets,
    edge_midpoint_offset_px,
    edge_width_px,
    intensity_histogram_distance,
    particle_contrast,
    particle_interior_texture,
    radial_power_spectrum,
    radial_spectrum_distance,
    robust_normalise,
)
from etem_helpers.simulate import SimulationParams, sample_params, simulate_micrograph
from etem_helpers.simulate.specimen import Particle, particle_thickness, render_labels


def _disks(shape=(128, 128), centres=((40, 40), (85, 80)), radius=14.0):
    yy, xx = np.indices(shape)
    mask = np.zeros(shape, dtype=bool)
    for cy, cx in centres:
        mask |= np.hypot(yy - cy, xx - cx) < radius
    return mask


def _scene(seed=0, *, blur_px=0.0, texture=0.0, noise=0.05):
    """Bright support (1.0) with dark disks (0.4), optional blur / interior texture / noise."""
    rng = np.random.default_rng(seed)
    mask = _disks()
    image = np.where(mask, 0.4, 1.0)
    if texture:
        image = image + np.where(mask, texture * ndimage.gaussian_filter(
            rng.standard_normal(mask.shape), 1.5) * 4.0, 0.0)
    if blur_px:
        image = ndimage.gaussian_filter(image, blur_px)
    return image + noise * rng.standard_normal(mask.shape), mask


# --- measures ---------------------------------------------------------------------------
def test_identical_sets_have_zero_distance_and_differences_are_positive():
    a = [_scene(s)[0] for s in range(3)]
    assert intensity_histogram_distance(a, a) == 0.0
    assert radial_spectrum_distance(a, a) == 0.0
    blurred = [_scene(s, blur_px=3.0)[0] for s in range(3)]
    assert radial_spectrum_distance(a, blurred) > 0.5  # blur removes high frequencies
    assert radial_spectrum_distance(a, a, average="log") == 0.0
    assert radial_spectrum_distance(a, blurred, average="log") > 0.5
    # one image per set: both averages agree; several: "log" is the mean of ln P per image
    assert radial_spectrum_distance(a[0], blurred[0], average="log") == pytest.approx(
        radial_spectrum_distance(a[0], blurred[0]))
    log_a = np.mean([np.log(radial_power_spectrum(im)[1]) for im in a], axis=0)
    log_b = np.mean([np.log(radial_power_spectrum(im)[1]) for im in blurred], axis=0)
    ok = np.isfinite(log_a) & np.isfinite(log_b)
    assert radial_spectrum_distance(a, blurred, average="log") == pytest.approx(
        np.mean(np.abs(log_a[ok] - log_b[ok])))
    with pytest.raises(ValueError, match="average"):
        radial_spectrum_distance(a, a, average="median")
    brighter_particles = [np.where(_disks(), 0.8, 1.0) + 0.05 * np.random.default_rng(s)
                          .standard_normal((128, 128)) for s in range(3)]
    assert intensity_histogram_distance(a, brighter_particles) > 0.05


def test_measures_ignore_gain_and_offset():
    image, mask = _scene(1, texture=0.05)
    scaled = 37.0 * image + 12.0
    assert intensity_histogram_distance([image], [scaled]) == pytest.approx(0.0, abs=1e-9)
    assert radial_spectrum_distance([image], [scaled]) == pytest.approx(0.0, abs=1e-9)
    assert particle_contrast(scaled, mask) == pytest.approx(particle_contrast(image, mask))
    assert edge_width_px(scaled, mask) == pytest.approx(edge_width_px(image, mask))
    t1, t2 = background_texture(image, mask), background_texture(scaled, mask)
    assert t2["std"] == pytest.approx(t1["std"])


def test_blurred_edges_are_wider():
    sharp = edge_width_px(*_scene(2, blur_px=0.5, noise=0.0))
    soft = edge_width_px(*_scene(2, blur_px=2.5, noise=0.0))
    assert sharp < 2.0
    # a Gaussian edge of sigma s has a 10-90 % width of 2.56 s
    assert soft == pytest.approx(2.56 * 2.5, rel=0.2)


def test_edge_midpoint_offset_says_where_the_outline_sits():
    image, mask = _scene(2, blur_px=2.5, noise=0.0)
    assert edge_midpoint_offset_px(image, mask) == pytest.approx(0.0, abs=0.5)
    grown = _disks(radius=17.0)  # outline at the foot of the edge
    assert edge_midpoint_offset_px(image, grown) == pytest.approx(-3.0, abs=0.7)
    shrunk = _disks(radius=12.0)  # outline drawn inside the edge
    assert edge_midpoint_offset_px(image, shrunk) == pytest.approx(2.0, abs=0.7)
    assert edge_midpoint_offset_px(37.0 * image + 5.0, grown) == pytest.approx(
        edge_midpoint_offset_px(image, grown))
    assert np.isnan(edge_midpoint_offset_px(image, np.zeros_like(mask)))


def test_background_correlation_length_grows_with_smoothing():
    rng = np.random.default_rng(3)
    mask = _disks()
    white = rng.standard_normal(mask.shape)
    smooth = ndimage.gaussian_filter(white, 3.0)
    fine = background_texture(white, mask)["correlation_length_px"]
    coarse = background_texture(smooth, mask)["correlation_length_px"]
    assert fine < 1.0 < 3.0 < coarse
    mottled = white + 30.0 * ndimage.gaussian_filter(rng.standard_normal(mask.shape), 12.0)
    assert (background_texture(mottled, mask)["large_scale_std"]
            > 2 * background_texture(white, mask)["large_scale_std"])


def test_contrast_and_interior_texture():
    flat, mask = _scene(4, noise=0.02)
    textured, _ = _scene(4, noise=0.02, texture=0.1)
    assert particle_contrast(flat, mask) > 10  # 0.6 contrast over 0.02 noise
    assert particle_contrast(1.0 - flat, mask) < 0  # bright particles: negative
    assert particle_interior_texture(flat, mask) == pytest.approx(0.02 / 0.6, rel=0.3)
    assert particle_interior_texture(textured, mask) > 2 * particle_interior_texture(flat, mask)


def test_compare_image_sets_keys_and_bad_inputs():
    images, masks = zip(*[_scene(s) for s in range(2)], strict=True)
    result = compare_image_sets(list(images), list(images), list(masks), list(masks))
    assert result["intensity_histogram_distance"] == 0.0
    assert result["edge_width_px_real"] == result["edge_width_px_sim"]
    assert {"background_std_real", "particle_interior_texture_sim",
            "background_correlation_px_sim"} <= set(result)
    with pytest.raises(ValueError, match="masks"):
        compare_image_sets(list(images), list(images), list(masks)[:1], list(masks))
    with pytest.raises(ValueError, match="shape"):
        particle_contrast(images[0], masks[0][:10])
    with pytest.raises(ValueError, match="2-D"):
        robust_normalise(np.zeros(10))


# --- simulator: low-magnification realism -------------------------------------------------
def test_rough_outline_label_is_the_analytic_footprint():
    p = Particle("round", 30.0, 30.0, 12.0, 10.0, thickness_nm=20.0,
                 outline=((2, 0.06, 0.3), (3, 0.04, 1.0)), edge_exponent=1.0)
    params = SimulationParams(regime="lowmag", image_size_px=128, pixel_size_nm=0.5,
                              n_particles=1, diameter_range_nm=(10.0, 20.0))
    labels, kept = render_labels([p], params)
    yy, xx = np.indices(labels.shape) * 0.5
    t = particle_thickness(p, yy, xx)
    assert kept == [0]
    assert np.array_equal(labels > 0, t > 0)
    ellipse = particle_thickness(Particle("round", 30.0, 30.0, 12.0, 10.0, thickness_nm=20.0),
                                 yy, xx) > 0
    assert np.sum((t > 0) != ellipse) > 20  # the outline really differs from the ellipse
    # the softer profile keeps the footprint but thins the edge
    soft = particle_thickness(p, yy, xx)
    sharp = particle_thickness(Particle("round", 30.0, 30.0, 12.0, 10.0, thickness_nm=20.0,
                                        outline=p.outline), yy, xx)
    assert np.array_equal(soft > 0, sharp > 0)
    assert soft.sum() < sharp.sum()


def _lowmag(**changes):
    base = SimulationParams(regime="lowmag", image_size_px=128, pixel_size_nm=0.4,
                            defocus_nm=800.0, dose_e_per_a2=None, n_particles=4,
                            diameter_range_nm=(10.0, 14.0), kinds=("round",),
                            carbon_thickness_nm=10.0)
    return base.replace(**changes)


def test_interior_texture_roughens_particles_but_keeps_mean_and_labels():
    flat = simulate_micrograph(_lowmag(), seed=5)
    textured = simulate_micrograph(_lowmag(interior_texture=0.5, texture_length_nm=0.6), seed=5)
    assert np.array_equal(flat.labels, textured.labels)
    inside = ndimage.binary_erosion(flat.labels > 0, iterations=3)
    assert textured.image[inside].std() > 1.5 * flat.image[inside].std()
    assert textured.image[inside].mean() == pytest.approx(flat.image[inside].mean(), rel=0.15)


def test_support_granularity_and_undulation_add_support_texture():
    plain = simulate_micrograph(_lowmag(n_particles=0), seed=6).image
    grainy = simulate_micrograph(_lowmag(n_particles=0, support_granularity_rad=0.2,
                                         support_grain_nm=0.8), seed=6).image
    assert grainy.std() > 2 * plain.std()
    empty = np.zeros(plain.shape, dtype=bool)
    assert (background_texture(grainy, empty)["correlation_length_px"]
            > background_texture(plain, empty)["correlation_length_px"])


def test_edge_softness_blurs_particle_edges_around_the_unchanged_outline():
    sharp = simulate_micrograph(_lowmag(n_particles=6, defocus_nm=0.0), seed=5)
    soft = simulate_micrograph(_lowmag(n_particles=6, defocus_nm=0.0, edge_softness_nm=1.2),
                               seed=5)
    assert np.array_equal(sharp.labels, soft.labels)  # the outline is the sharp footprint
    assert edge_width_px(soft.image, soft.labels) > edge_width_px(sharp.image, sharp.labels) + 2
    # a symmetric blur keeps the middle of the edge near the outline (ellipsoids: the middle
    # of the rise is ~1 px inside it with or without the blur) ...
    assert abs(edge_midpoint_offset_px(soft.image, soft.labels)) < 1.5
    # ... whereas thin-edged profiles put the outline at the foot of the edge, well outside
    thin = simulate_micrograph(_lowmag(n_particles=6, defocus_nm=0.0, edge_exponent=1.5), seed=5)
    assert edge_midpoint_offset_px(thin.image, thin.labels) < -2.0
    # and the support between particles is not blurred
    far = ~ndimage.binary_dilation(sharp.labels > 0, iterations=12)
    assert soft.image[far].std() == pytest.approx(sharp.image[far].std(), rel=0.05)
    with pytest.raises(ValueError, match="edge_softness_nm"):
        _lowmag(edge_softness_nm=-1.0)


def test_round_fraction_favours_round_particles():
    params = _lowmag(n_particles=40, kinds=("round", "faceted", "rod"), round_fraction=0.9,
                     diameter_range_nm=(1.0, 2.0), image_size_px=256)
    shapes = simulate_micrograph(params, seed=7).particles["shape"]
    assert (shapes == "round").mean() > 0.7
    assert SimulationParams().round_fraction is None
    with pytest.raises(ValueError, match="round_fraction"):
        _lowmag(round_fraction=1.5)


def test_new_realism_parameters_leave_hrtem_unchanged():
    params = SimulationParams(image_size_px=128, n_particles=3, diameter_range_nm=(1.5, 2.5),
                              dose_e_per_a2=None)
    a = simulate_micrograph(params, seed=8).image
    b = simulate_micrograph(params.replace(interior_texture=0.5), seed=8).image
    assert np.array_equal(a, b)  # diffraction-contrast texture is a low-magnification model
    c = simulate_micrograph(params.replace(edge_softness_nm=0.5), seed=8).image
    assert np.array_equal(a, c)  # diffuse edges too


def test_sample_params_lowmag_sizes_in_pixels_and_mostly_round():
    rng = np.random.default_rng(9)
    lows, highs, round_fractions = [], [], []
    for _ in range(30):
        p = sample_params(rng, "lowmag", image_size_px=512)
        lows.append(p.diameter_range_nm[0] / p.pixel_size_nm)
        highs.append(p.diameter_range_nm[1] / p.pixel_size_nm)
        round_fractions.append(p.round_fraction)
        assert "round" in p.kinds and p.diameter_distribution == "uniform"
        assert p.interior_texture > 0 and p.support_granularity_rad > 0
        assert 2.0 - 1e-9 <= p.edge_softness_nm / p.pixel_size_nm <= 5.0 + 1e-9
    assert min(lows) >= 8.0 - 1e-9 and max(lows) <= 20.0 + 1e-9
    assert max(highs) <= 120.0 + 1e-9 and np.median(highs) > 70.0
    assert min(round_fractions) >= 0.6
