"""Lattice per particle and the analyze_faults entry point (smoke size)."""

import math

import numpy as np
import pandas as pd
import pytest

from etem_helpers import faults
from etem_helpers.faults.lattice import BraggSpot, analyze_lattice, zone_axis_guess
from etem_helpers.simulate import Particle, SimulationParams, simulate_from_particles

HRTEM = {"image_size_px": 192, "pixel_size_nm": 0.04, "n_particles": 1,
         "diameter_range_nm": (3.0, 5.0), "material": "Au", "dose_e_per_a2": 2000.0,
         "cs_mm": 1.2, "voltage_kv": 300.0}


def _au_particle(fault="none", c=96 * 0.04, radius=2.5, **kw):
    return Particle("round", c, c, radius, radius, thickness_nm=4.0, on_zone=True,
                    lattice_origin_y_nm=c, lattice_origin_x_nm=c, lattice_angle_deg=20.0,
                    fault=fault, material="Au", **kw)


def test_bragg_spacing_of_simulated_au_particle_is_d111():
    sim = simulate_from_particles(SimulationParams(**HRTEM), [_au_particle()], seed=1)
    lat = analyze_lattice(sim.image, sim.labels, 1, HRTEM["pixel_size_nm"])
    assert lat.lattice_resolved
    d111 = 0.4078 / math.sqrt(3.0)
    assert abs(lat.d_spacing_nm / d111 - 1.0) < 0.02
    assert lat.zone_axis == "[110]"
    # the spots include the {200} at 0.2039 nm
    assert any(abs(s.d_nm / 0.2039 - 1) < 0.03 for s in lat.spots)


def test_lowmag_particle_is_not_resolved_and_fault_columns_are_missing():
    params = SimulationParams(regime="lowmag", pixel_size_nm=0.5, defocus_nm=2000.0,
                              image_size_px=128, diameter_range_nm=(10.0, 20.0), n_particles=1)
    c = 64 * 0.5
    p = Particle("round", c, c, 8.0, 8.0, thickness_nm=12.0, material="Au")
    sim = simulate_from_particles(params, [p], seed=3)
    out = faults.analyze_faults(sim.image, sim.labels, 0.5)
    assert list(out.columns) == ["particle_id", "lattice_resolved", "d_spacing_nm", "zone_axis",
                                 "fault_probability", "has_fault"]
    assert not out["lattice_resolved"].any()
    assert out["d_spacing_nm"].isna().all() and out["fault_probability"].isna().all()
    assert out["has_fault"].isna().all() and str(out["has_fault"].dtype) == "boolean"


def test_analyze_faults_is_deterministic_and_one_row_per_id():
    sim = simulate_from_particles(SimulationParams(**HRTEM), [_au_particle("twin")], seed=2)
    a = faults.analyze_faults(sim.image, sim.labels, HRTEM["pixel_size_nm"])
    b = faults.analyze_faults(sim.image.copy(), sim.labels.copy(), HRTEM["pixel_size_nm"])
    pd.testing.assert_frame_equal(a, b)
    assert a["particle_id"].tolist() == [1]
    assert a["lattice_resolved"].item()
    assert 0.0 <= a["fault_probability"].item() <= 1.0
    lattice_only = faults.analyze_faults(sim.image, sim.labels, HRTEM["pixel_size_nm"],
                                         classifier=False)
    assert lattice_only["fault_probability"].isna().all()
    assert lattice_only["d_spacing_nm"].item() == a["d_spacing_nm"].item()


def test_analyze_faults_rejects_bad_input():
    with pytest.raises(ValueError, match="labels"):
        faults.analyze_faults(np.zeros((8, 8)), np.zeros((8, 9), int), 0.05)
    with pytest.raises(ValueError, match="pixel_size_nm"):
        faults.analyze_faults(np.zeros((8, 8)), np.zeros((8, 8), int), -1.0)


def _spot(d, angle):
    k = 1.0 / d
    return BraggSpot(0.0, 0.0, k, d, angle, 100.0)


def test_zone_axis_guess_needs_the_110_angles():
    assert zone_axis_guess([_spot(0.2355, 10.0), _spot(0.2355, 80.5)]) == "[110]"
    assert zone_axis_guess([_spot(0.2355, 10.0), _spot(0.2039, 64.7)]) == "[110]"
    assert zone_axis_guess([_spot(0.2355, 10.0), _spot(0.2355, 70.0 + 40.0)]) == ""
    assert zone_axis_guess([_spot(0.2355, 10.0)]) == ""
