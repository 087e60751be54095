"""Tests of the projected specimen: lattice, faults, shapes, placement, labels."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from etem_helpers.simulate.micrograph import simulate_from_particles
from etem_helpers.simulate.optics import interaction_constant
from etem_helpers.simulate.params import LATTICE_CONSTANT_NM, SimulationParams
from etem_helpers.simulate.specimen import (
    Particle,
    fcc_columns,
    mean_inner_potential_v,
    particle_thickness,
    place_particles,
    render_labels,
    render_phase,
    stacking_offsets,
)

A_AU = LATTICE_CONSTANT_NM["Au"]
D111 = A_AU / math.sqrt(3.0)
K111 = 1.0 / D111  # 4.246 / nm
K200 = 2.0 / A_AU  # 4.90 / nm
PERIOD = A_AU * math.sqrt(6.0) / 4.0


def _crystal(cy, cx, *, fault="none", fault_layer=0, angle=0.0, radius=7.0, shape="round"):
    return Particle(shape, cy, cx, radius, radius, thickness_nm=6.0, on_zone=True,
                    lattice_angle_deg=angle, lattice_origin_y_nm=cy, lattice_origin_x_nm=cx,
                    fault=fault, fault_layer=fault_layer)


def _clean_image(particles, *, size=512, pixel=0.04, **kw):
    params = SimulationParams(image_size_px=size, pixel_size_nm=pixel, dose_e_per_a2=None,
                              carbon_thickness_nm=0.0, focal_spread_nm=3.0, **kw)
    return simulate_from_particles(params, particles, seed=0), params


def _spectrum(image, weight, pad=2):
    """|FFT|^2 of (image - weighted mean) * weight, zero-padded, centred; returns (P, k_step)."""
    data = image - np.sum(image * weight) / np.sum(weight)
    n = image.shape[0] * pad
    power = np.abs(np.fft.fftshift(np.fft.fft2(data * weight, s=(n, n)))) ** 2
    return power, n


def _peaks_in_annulus(power, n, pixel, k_lo, k_hi, n_peaks=2, exclude_deg=12.0):
    """Strongest peaks (k, angle_deg in [0, 180)) in an annulus, one per direction (mod 180)."""
    f = (np.arange(n) - n // 2) / (n * pixel)
    ky, kx = np.meshgrid(f, f, indexing="ij")
    k = np.hypot(ky, kx)
    ang = np.degrees(np.arctan2(ky, kx)) % 180.0
    work = np.where((k >= k_lo) & (k <= k_hi) & (ky >= 0), power, 0.0)
    peaks = []
    for _ in range(n_peaks):
        i, j = np.unravel_index(np.argmax(work), work.shape)
        w = power[i - 1:i + 2, j - 1:j + 2]
        ki = np.sum(w * k[i - 1:i + 2, j - 1:j + 2]) / np.sum(w)
        peaks.append((float(ki), float(ang[i, j])))
        d = np.abs((ang - ang[i, j] + 90.0) % 180.0 - 90.0)
        work[d < exclude_deg] = 0.0
    return peaks


def _disk_weight(shape, cy_px, cx_px, radius_px):
    yy, xx = np.indices(shape)
    r = np.hypot(yy - cy_px, xx - cx_px) / radius_px
    return np.where(r < 1, np.cos(0.5 * np.pi * r) ** 2, 0.0)


def test_stacking_offsets_perfect_twin_and_fault():
    k = np.arange(-6, 12)
    assert np.array_equal(stacking_offsets(k), k % 3)
    m = 2
    twin = stacking_offsets(k, fault="twin", fault_layer=m)
    # mirror symmetry about the twin plane: s_{m + j} = s_{m - j}
    for j in range(1, 6):
        assert twin[k == m + j][0] == twin[k == m - j][0]
    sf = stacking_offsets(k, fault="stacking_fault", fault_layer=m)
    # one layer removed: ABC|BCA..., i.e. above m every offset is advanced by one
    assert np.array_equal(sf[k > m], (k[k > m] + 1) % 3)
    assert np.array_equal(sf[k <= m], k[k <= m] % 3)
    # neighbouring layers never have the same offset (no AA stacking) in any sequence
    for s in (twin, sf):
        assert np.all(np.diff(s) % 3 != 0)


def test_fcc_column_geometry():
    y, x, k = fcc_columns(lattice_constant_nm=A_AU, origin_yx_nm=(0.0, 0.0), angle_deg=0.0,
                          bbox_nm=(-2.0, 2.0, -2.0, 2.0))
    # rows at k h, columns per row spaced P, areal density 1 / (P h)
    assert np.allclose(y, k * D111)
    row0 = np.sort(x[k == 0])
    assert np.allclose(np.diff(row0), PERIOD)
    density = y.size / 16.0
    assert density == pytest.approx(1.0 / (PERIOD * D111), rel=0.05)


def test_particle_fft_peaks_at_111_and_200():
    size, pixel = 512, 0.04
    c = size * pixel / 2
    sim, _ = _clean_image([_crystal(c, c, angle=17.0)], size=size, pixel=pixel,
                          cs_mm=0.0, defocus_nm=-8.0)
    weight = _disk_weight(sim.image.shape, c / pixel, c / pixel, 6.0 / pixel)
    power, n = _spectrum(sim.image, weight)
    p111 = _peaks_in_annulus(power, n, pixel, 3.9, 4.6, n_peaks=2)
    for k, _ in p111:
        assert k == pytest.approx(K111, rel=0.02)
    angle = abs(p111[0][1] - p111[1][1])
    angle = min(angle, 180 - angle)
    assert angle == pytest.approx(180.0 - 109.47, abs=2.5)  # {111} ^ {111} = 70.5 deg
    p200 = _peaks_in_annulus(power, n, pixel, 4.65, 5.2, n_peaks=1)
    assert p200[0][0] == pytest.approx(K200, rel=0.02)
    for _, a111 in p111:  # {111} ^ {200} = 54.7 deg
        d = abs(p200[0][1] - a111) % 180
        assert min(d, 180 - d) == pytest.approx(54.74, abs=2.5)


def _inclined_angle(image, pixel, weight, normal_deg):
    """Angle (deg, in (-90, 90]) between the inclined {111} spot and the fault-plane normal."""
    power, n = _spectrum(image, weight)
    f = (np.arange(n) - n // 2) / (n * pixel)
    ky, kx = np.meshgrid(f, f, indexing="ij")
    k = np.hypot(ky, kx)
    ang = np.degrees(np.arctan2(ky, kx))
    rel = (ang - normal_deg + 90.0) % 180.0 - 90.0
    work = np.where((np.abs(k - K111) < 0.3) & (np.abs(rel) > 20.0), power, 0.0)
    i, j = np.unravel_index(np.argmax(work), work.shape)
    return float(rel[i, j])


def test_twin_mirrors_the_111_spots_about_the_twin_normal():
    size, pixel = 512, 0.04
    c = size * pixel / 2
    lattice_angle = 25.0
    sim, _ = _clean_image([_crystal(c, c, fault="twin", fault_layer=0, angle=lattice_angle)],
                          size=size, pixel=pixel)
    normal = lattice_angle + 90.0  # twin plane = (111) rows along lattice_angle
    yy, xx = np.indices(sim.image.shape)
    dist = ((yy * pixel - c) * math.cos(math.radians(lattice_angle))
            - (xx * pixel - c) * math.sin(math.radians(lattice_angle)))
    disk = _disk_weight(sim.image.shape, c / pixel, c / pixel, 6.0 / pixel)
    upper = disk * ndimage.gaussian_filter((dist > 0.8).astype(float), 3)
    lower = disk * ndimage.gaussian_filter((dist < -0.8).astype(float), 3)
    a_up = _inclined_angle(sim.image, pixel, upper, normal)
    a_lo = _inclined_angle(sim.image, pixel, lower, normal)
    assert abs(a_up) == pytest.approx(70.53, abs=3.0)
    assert abs(a_lo) == pytest.approx(70.53, abs=3.0)
    assert a_up == pytest.approx(-a_lo, abs=3.0)  # mirrored about the normal
    # control: without the twin both halves show the same spot
    perfect, _ = _clean_image([_crystal(c, c, angle=lattice_angle)], size=size, pixel=pixel)
    b_up = _inclined_angle(perfect.image, pixel, upper, normal)
    b_lo = _inclined_angle(perfect.image, pixel, lower, normal)
    assert b_up == pytest.approx(b_lo, abs=3.0)


def _fringe_phase(image, pixel, weight, g_yx):
    yy, xx = np.indices(image.shape) * pixel
    data = image - np.sum(image * weight) / np.sum(weight)
    return np.angle(np.sum(data * weight * np.exp(-2j * np.pi * (g_yx[0] * yy + g_yx[1] * xx))))


def test_stacking_fault_shifts_inclined_fringes_by_a_third():
    size, pixel = 512, 0.04
    c = size * pixel / 2
    sim, _ = _clean_image([_crystal(c, c, fault="stacking_fault", fault_layer=0)],
                          size=size, pixel=pixel)
    yy, xx = np.indices(sim.image.shape)
    disk = _disk_weight(sim.image.shape, c / pixel, c / pixel, 6.0 / pixel)
    dist = yy * pixel - c  # lattice angle 0: fault plane along x at layer 0
    upper = disk * ndimage.gaussian_filter((dist > 1.0).astype(float), 3)
    lower = disk * ndimage.gaussian_filter((dist < -1.0).astype(float), 3)
    # inclined {111}: planes contain (P/3, h); g normal to them, |g| = 1/d111
    # in (x, y) the plane normal is (h, -P/3), of length P; as (gy, gx):
    g_inclined = np.array([-PERIOD / 3.0, D111]) / (PERIOD * D111)
    g_parallel = np.array([1.0 / D111, 0.0])
    for g, expected in ((g_inclined, 120.0), (g_parallel, 0.0)):
        dphi = _fringe_phase(sim.image, pixel, upper, g) - _fringe_phase(sim.image, pixel,
                                                                          lower, g)
        dphi = abs((math.degrees(dphi) + 180.0) % 360.0 - 180.0)
        assert dphi == pytest.approx(expected, abs=15.0)
    # control: a perfect crystal has no shift of the inclined fringes
    perfect, _ = _clean_image([_crystal(c, c)], size=size, pixel=pixel)
    dphi = _fringe_phase(perfect.image, pixel, upper, g_inclined) - _fringe_phase(
        perfect.image, pixel, lower, g_inclined)
    assert abs((math.degrees(dphi) + 180.0) % 360.0 - 180.0) < 15.0


def test_lowmag_phase_is_mean_inner_potential_times_thickness():
    params = SimulationParams(regime="lowmag", image_size_px=128, pixel_size_nm=0.2,
                              voltage_kv=200.0)
    c = 64 * 0.2
    p = Particle("round", c, c, 6.0, 6.0, thickness_nm=10.0, on_zone=True)
    phase = render_phase([p], params, np.random.default_rng(0))
    sigma = interaction_constant(200.0)
    expected = sigma * mean_inner_potential_v("Au") * 100.0  # 10 nm = 100 A at the centre
    centre = phase[128, 128]
    assert centre == pytest.approx(expected, rel=0.02)
    assert mean_inner_potential_v("Au") == pytest.approx(29.8, abs=0.3)
    # no lattice: the phase inside is smooth (no column modulation)
    inner = phase[118:139, 118:139]
    assert np.std(inner) / np.mean(inner) < 0.02


def test_hrtem_columns_keep_the_mean_phase():
    params = SimulationParams(image_size_px=128, pixel_size_nm=0.05)
    c = 64 * 0.05
    p = Particle("faceted", c, c, 2.5, 2.5, thickness_nm=6.0, n_facets=6, taper_nm=0.3,
                 on_zone=True, lattice_origin_y_nm=c, lattice_origin_x_nm=c)
    phase = render_phase([p], params, np.random.default_rng(0)).astype(np.float64)
    pr = params.render_pixel_size_nm
    yy, xx = np.indices(phase.shape) * pr
    t = particle_thickness(p, yy, xx)
    expected = interaction_constant(300.0) * mean_inner_potential_v("Au") * t * 10.0
    # total (integrated) phase equal within 3 %; columns give a strong modulation
    assert phase.sum() == pytest.approx(expected.sum(), rel=0.03)
    inside = t > 0.9 * t.max()
    assert np.std(phase[inside]) / np.mean(phase[inside]) > 0.3


@pytest.mark.parametrize("shape", ["round", "faceted", "decahedral", "rod", "nanotube",
                                   "aggregate"])
def test_every_shape_renders_and_is_labelled(shape):
    params = SimulationParams(image_size_px=128, pixel_size_nm=0.1, n_particles=3,
                              kinds=(shape,), diameter_range_nm=(2.0, 4.0),
                              touching_fraction=0.0, edge_fraction=0.0)
    particles = place_particles(params, np.random.default_rng(3))
    assert particles and all(p.shape == shape for p in particles)
    labels, kept = render_labels(particles, params)
    assert labels.dtype == np.int32
    assert labels.max() == len(kept) >= 1
    phase = render_phase([particles[i] for i in kept], params, np.random.default_rng(0))
    assert phase.shape == (256, 256)
    assert np.isfinite(phase).all()
    # phase is where the labels are (up to the atom blur and the tube length ends)
    fg = np.kron(labels > 0, np.ones((2, 2), dtype=bool))
    assert phase[fg].mean() > 5 * abs(phase[~ndimage.binary_dilation(fg, iterations=4)]).mean()


def test_nanotube_is_hollow_with_dark_walls():
    params = SimulationParams(regime="lowmag", image_size_px=128, pixel_size_nm=0.2)
    c = 64 * 0.2
    tube = Particle("nanotube", c, c, 4.0, 2.0, thickness_nm=8.0, length_nm=40.0,
                    angle_deg=0.0, material="C")
    v = np.linspace(-4.5, 4.5, 91)
    t = particle_thickness(tube, c + v, np.full_like(v, c))
    assert t[45] < 0.7 * t.max()  # hollow core: thinner in the middle than at the walls
    assert t[0] == 0 and t[-1] == 0
    phase = render_phase([tube], params, np.random.default_rng(0))
    profile = phase[:, 128]
    wall = profile[int((c + 3.0) / 0.1)]
    core = profile[int(c / 0.1)]
    assert wall > 1.2 * core > 0


def test_occlusion_later_particle_on_top():
    params = SimulationParams(regime="lowmag", image_size_px=128, pixel_size_nm=0.2)
    a = Particle("round", 12.0, 12.0, 4.0, 4.0, thickness_nm=8.0)
    b = Particle("round", 12.0, 17.0, 4.0, 4.0, thickness_nm=8.0)
    labels, kept = render_labels([a, b], params)
    assert kept == [0, 1]
    yy, xx = np.indices(labels.shape) * 0.2
    inside_b = particle_thickness(b, yy, xx) > 0
    assert np.all(labels[inside_b] == 2)
    assert np.any(labels == 1)
    both = render_phase([a, b], params, np.random.default_rng(0))
    only_b = render_phase([b], params, np.random.default_rng(0))
    core = ndimage.binary_erosion(np.kron(inside_b, np.ones((2, 2), dtype=bool)), iterations=6)
    # equal up to the ringing of the band-limited (Fourier) atom blur at the cut edge
    assert np.allclose(both[core], only_b[core], atol=5e-3)
    # a particle completely hidden by a later one gets no id
    hidden = Particle("round", 12.0, 17.0, 2.0, 2.0, thickness_nm=4.0)
    labels, kept = render_labels([hidden, b], params)
    assert kept == [1] and labels.max() == 1


def test_touching_particles_are_in_contact_but_separate():
    params = SimulationParams(image_size_px=256, pixel_size_nm=0.05, n_particles=8,
                              diameter_range_nm=(2.0, 3.0), touching_fraction=1.0,
                              edge_fraction=0.0, kinds=("round", "faceted"))
    particles = place_particles(params, np.random.default_rng(5))
    labels, kept = render_labels(particles, params)
    assert labels.max() >= 4
    for i in range(1, labels.max() + 1):
        ring = ndimage.binary_dilation(labels == i, iterations=2) & (labels != i)
        assert np.any(labels[ring] > 0), f"particle {i} touches no neighbour"


def test_separate_particles_keep_a_gap_and_stay_inside():
    params = SimulationParams(image_size_px=256, pixel_size_nm=0.05, n_particles=10,
                              diameter_range_nm=(2.0, 3.0), touching_fraction=0.0,
                              edge_fraction=0.0)
    particles = place_particles(params, np.random.default_rng(1))
    labels, _ = render_labels(particles, params)
    assert labels.max() >= 5
    for i in range(1, labels.max() + 1):
        ring = ndimage.binary_dilation(labels == i, iterations=1) & (labels != i)
        assert not np.any(labels[ring] > 0)
    border = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    assert not np.any(border)
