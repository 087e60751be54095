"""Calibration check from the lattice fringes (smoke size)."""

import math

import numpy as np
import pandas as pd
import pytest

from etem_helpers import faults
from etem_helpers.simulate import Particle, SimulationParams, simulate_from_particles


def _hrtem_micrograph():
    params = SimulationParams(image_size_px=256, pixel_size_nm=0.04, n_particles=3,
                              diameter_range_nm=(3.0, 5.0), material="Au",
                              dose_e_per_a2=1500.0, cs_mm=1.2, voltage_kv=300.0)
    rng = np.random.default_rng(5)
    particles = []
    for cy, cx in [(2.5, 2.5), (2.5, 7.5), (7.5, 5.0)]:
        particles.append(Particle("round", cy, cx, 2.0, 1.8, thickness_nm=4.0, on_zone=True,
                                  lattice_origin_y_nm=cy, lattice_origin_x_nm=cx,
                                  lattice_angle_deg=float(rng.uniform(0, 180)), material="Au"))
    return simulate_from_particles(params, particles, seed=11), params.pixel_size_nm


@pytest.mark.parametrize("error", [-0.05, 0.05])
def test_check_calibration_recovers_a_wrong_pixel_size(error):
    sim, true_px = _hrtem_micrograph()
    stated = true_px * (1.0 + error)
    table = faults.analyze_faults(sim.image, sim.labels, stated, classifier=False)
    check = faults.check_calibration(table, material="Au", pixel_size_nm=stated)
    assert check.n_particles >= 2
    assert abs(check.implied_pixel_size_nm / true_px - 1.0) < 0.01
    assert check.status == "mismatch"
    assert check.relative_discrepancy == pytest.approx(error, abs=0.012)
    assert abs(check.relative_discrepancy) > 2.5 * check.uncertainty
    right = faults.check_calibration(faults.analyze_faults(sim.image, sim.labels, true_px,
                                                           classifier=False),
                                     material="Au", pixel_size_nm=true_px)
    # three particles of about 15 fringes cannot confirm a calibration to 2 %: no verdict
    assert abs(right.relative_discrepancy) < 0.01
    assert right.status == "cannot check" and "cannot tell" in right.message
    assert 2.5 * right.uncertainty > 0.02


def test_check_calibration_weights_particles_by_their_fringes():
    au111 = faults.material_spacings_nm("Au")["111"]
    # five large particles at the right spacing and two small ones 3 % off
    table = pd.DataFrame({"lattice_resolved": [True] * 7,
                          "d_spacing_nm": [au111] * 5 + [au111 * 1.03] * 2,
                          "diameter_nm": [20.0] * 5 + [2.5] * 2})
    check = faults.check_calibration(table, material="Au", pixel_size_nm=0.05)
    assert check.n_particles == 7 and abs(check.relative_discrepancy) < 1e-9
    assert check.status == "ok" and check.uncertainty < 0.008
    assert faults.spacing_sd(np.array([85.0, 10.0, np.nan])).tolist() == pytest.approx(
        [faults.calibration.SPACING_SD_FLOOR, 0.74 * 10.0**-1.42,
         faults.calibration.SPACING_SD_UNKNOWN_SIZE])
    # the same evidence stated 5 % off is a mismatch; with two small particles only, no verdict
    stated = faults.check_calibration(table.assign(d_spacing_nm=table["d_spacing_nm"] * 1.05),
                                      material="Au", pixel_size_nm=0.05 * 1.05)
    assert stated.status == "mismatch"
    small = faults.check_calibration(table.iloc[5:].assign(d_spacing_nm=au111 * 1.025),
                                     material="Au", pixel_size_nm=0.05)
    assert small.status == "cannot check" and "cannot tell" in small.message


def test_check_calibration_says_cannot_check_without_lattice():
    params = SimulationParams(regime="lowmag", pixel_size_nm=0.5, defocus_nm=2000.0,
                              image_size_px=128, diameter_range_nm=(10.0, 20.0), n_particles=1)
    p = Particle("round", 32.0, 32.0, 8.0, 8.0, thickness_nm=12.0, material="Au")
    sim = simulate_from_particles(params, [p], seed=3)
    table = faults.analyze_faults(sim.image, sim.labels, 0.5, classifier=False)
    check = faults.check_calibration(table, material="Au", pixel_size_nm=0.5)
    assert check.status == "cannot check"
    assert math.isnan(check.implied_pixel_size_nm) and check.n_particles == 0


def test_check_calibration_ignores_foreign_spacings_and_validates():
    table = pd.DataFrame({"lattice_resolved": [True, True, False],
                          "d_spacing_nm": [0.34, 0.2355, np.nan],  # graphite, Au 111
                          "diameter_nm": [5.0, 20.0, 4.0]})
    check = faults.check_calibration(table, material="Au", pixel_size_nm=0.05)
    assert check.n_particles == 1 and check.status == "ok"
    # one particle of unknown size is not enough to confirm a calibration
    unsized = faults.check_calibration(table.drop(columns="diameter_nm"), material="Au",
                                       pixel_size_nm=0.05)
    assert unsized.n_particles == 1 and unsized.status == "cannot check"
    with pytest.raises(ValueError, match="material"):
        faults.check_calibration(table, material="Cu", pixel_size_nm=0.05)
    with pytest.raises(ValueError, match="pixel_size_nm"):
        faults.check_calibration(table, material="Au")


def test_check_calibration_prefers_particles_called_fault_free():
    table = pd.DataFrame({"lattice_resolved": [True, True, True, True],
                          "d_spacing_nm": [0.2355, 0.2355, 0.2450, 0.2450],
                          "has_fault": pd.array([False, False, True, True], dtype="boolean")})
    check = faults.check_calibration(table, material="Au", pixel_size_nm=0.05)
    assert check.n_particles == 2 and abs(check.relative_discrepancy) < 1e-3
    mixed = faults.check_calibration(table, material="Au", pixel_size_nm=0.05,
                                     prefer_unfaulted=False)
    assert mixed.n_particles == 4
    one_clean = table.assign(has_fault=pd.array([False, True, True, True], dtype="boolean"))
    assert faults.check_calibration(one_clean, material="Au", pixel_size_nm=0.05).n_particles == 4


def test_check_calibration_gives_no_verdict_when_particles_disagree():
    table = pd.DataFrame({"lattice_resolved": [True, True],
                          "d_spacing_nm": [0.2300, 0.2420]})  # -2.3 % and +2.8 % from Au 111
    check = faults.check_calibration(table, material="Au", pixel_size_nm=0.05)
    assert check.status == "cannot check" and "disagree" in check.message
