"""Fault features: Groschner et al. (2021) baseline and physics features (smoke size)."""

import numpy as np
import pytest

from etem_helpers.faults.features import (
    GROSCHNER_FEATURES,
    PHYSICS_FEATURES,
    fft_patch,
    groschner2021_features,
    groschner_radial_profile,
    physics_features,
)
from etem_helpers.faults.lattice import find_bragg_spots, particle_spectrum
from etem_helpers.simulate import Particle, SimulationParams, simulate_from_particles

HRTEM = {"image_size_px": 192, "pixel_size_nm": 0.04, "n_particles": 1,
         "diameter_range_nm": (3.0, 5.0), "material": "Au", "dose_e_per_a2": 2000.0,
         "cs_mm": 1.2, "voltage_kv": 300.0}


def test_groschner_features_shape_and_invariants():
    rng = np.random.default_rng(0)
    crop = rng.normal(10.0, 2.0, size=(60, 80))
    f = groschner2021_features(crop)
    assert f.shape == (len(GROSCHNER_FEATURES),) == (5,)
    profile = groschner_radial_profile(crop)
    assert profile.shape == (60,)  # fewer annuli than 100 on a 60-px square
    assert groschner_radial_profile(rng.normal(size=(150, 150))).shape == (100,)
    square = crop[:60, :60]
    assert f[2] == pytest.approx(crop.mean()) and f[3] == pytest.approx(crop.std())
    assert f[0] == pytest.approx(profile.mean()) and f[1] == pytest.approx(profile.std())
    assert 0 <= f[4] <= profile.size - 1
    # the profile only uses the leading square and is linear in the |FFT|
    assert np.allclose(groschner_radial_profile(square), profile)
    assert np.allclose(groschner_radial_profile(3 * square), 3 * profile)
    # a constant crop has all its |FFT| at k = 0: only the first annuli see it
    flat = groschner_radial_profile(np.ones((64, 64)))
    assert flat[0] > 0 and flat[20:].max() < 1e-6 * flat[0]
    with pytest.raises(ValueError, match="crop"):
        groschner2021_features(np.ones(5))


def _features(fault, angle):
    c = 96 * 0.04
    p = Particle("round", c, c, 2.5, 2.5, thickness_nm=4.0, on_zone=True,
                 lattice_origin_y_nm=c, lattice_origin_x_nm=c, lattice_angle_deg=angle,
                 fault=fault, material="Au")
    sim = simulate_from_particles(SimulationParams(**HRTEM), [p], seed=1)
    spec = particle_spectrum(sim.image, sim.labels, 1)
    spots = find_bragg_spots(spec, HRTEM["pixel_size_nm"])
    return dict(zip(PHYSICS_FEATURES, physics_features(spec, spots, 0.04), strict=True)), spec, spots


@pytest.mark.parametrize("angle", [20.0, 130.0])
def test_twin_and_fault_features_differ_from_perfect_in_the_expected_direction(angle):
    perfect, spec, spots = _features("none", angle)
    twin, _, _ = _features("twin", angle)
    fault, _, _ = _features("stacking_fault", angle)
    assert perfect["zone_110"] == 1.0
    # a twin adds the mirrored lattice: more strong spots, streaks, a patchy GPA amplitude
    assert twin["n_spots_strong"] > perfect["n_spots_strong"]
    assert twin["streak_max"] > perfect["streak_max"] + 1.0
    assert twin["gpa_amplitude_cv_max"] > perfect["gpa_amplitude_cv_max"]
    # an intrinsic fault shifts the inclined fringes: the GPA phase splits into two modes
    assert fault["gpa_mode_fraction_min"] < perfect["gpa_mode_fraction_min"] - 0.2
    assert fault["gpa_coherence_min"] < perfect["gpa_coherence_min"]
    patch = fft_patch(spec, spots)
    assert patch.shape == (2, 48, 48) and patch.dtype == np.float32 and np.isfinite(patch).all()


def test_physics_features_without_spots_are_neutral():
    _, spec, _ = _features("none", 20.0)
    x = physics_features(spec, [], 0.04)
    assert x.shape == (len(PHYSICS_FEATURES),) and np.isfinite(x).all()
    assert x[PHYSICS_FEATURES.index("n_spots")] == 0
