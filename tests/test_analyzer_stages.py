"""The Analyzer's task stages: faults on lattice-resolved particles, the calibration check."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from etem_helpers.measure import PARTICLE_COLUMNS
from etem_helpers.pipeline import Analyzer
from etem_helpers.simulate import sample_params, simulate_micrograph


@pytest.fixture(scope="module")
def analyzer():
    return Analyzer(device="cpu")


def _sim(regime, seed, size=256):
    params = sample_params(np.random.default_rng(seed), regime, image_size_px=size)
    return simulate_micrograph(params, seed=seed), params


def test_hrtem_particles_get_lattice_and_fault_columns(analyzer):
    sim, params = _sim("hrtem", 5, size=512)
    particles = analyzer(sim.image, params.pixel_size_nm).particles
    stds = ["diameter_nm_std", "aspect_ratio_std", "roundness_std"]
    assert list(particles.columns) == [*PARTICLE_COLUMNS, *stds, "lattice_resolved",
                                       "d_spacing_nm"]
    resolved = particles["lattice_resolved"].to_numpy(bool)
    assert resolved.any()
    assert particles.loc[resolved, "fault_probability"].between(0, 1).all()
    assert particles.loc[~resolved, "fault_probability"].isna().all()
    assert particles.loc[~resolved, "has_fault"].isna().all()
    assert particles["has_fault"].dtype == pd.BooleanDtype()
    d = particles.loc[resolved, "d_spacing_nm"]
    assert d.between(0.12, 0.6).all()


def test_low_magnification_has_no_lattice(analyzer):
    sim, params = _sim("lowmag", 3)
    result = analyzer(sim.image, params.pixel_size_nm)
    assert len(result.particles) and not result.particles["lattice_resolved"].any()
    assert result.particles["has_fault"].isna().all()
    assert result.info["timing_s"]["faults"] < 0.05  # no transform computed at 0.3 nm/px


def test_faults_can_be_switched_off_and_material_is_checked():
    sim, params = _sim("hrtem", 5)
    plain = Analyzer(device="cpu", faults=False)(sim.image, params.pixel_size_nm)
    assert "lattice_resolved" not in plain.particles and plain.particles["has_fault"].isna().all()
    with pytest.raises(ValueError, match="material"):
        Analyzer(device="cpu", material="Cu")


def test_calibration_check_is_reported_when_the_material_is_given():
    sim, params = _sim("hrtem", 5, size=512)
    result = Analyzer(device="cpu", material=params.material)(sim.image, params.pixel_size_nm)
    check = result.info["calibration_check"]
    assert check["status"] in ("ok", "mismatch", "cannot check")
    assert check["material"] == params.material


def test_a_burned_in_scale_bar_calibrates_and_carries_no_particle(analyzer, tmp_path):
    from PIL import Image

    from etem_helpers.simulate.overlays import burn_in_scale_bar

    sim, params = _sim("lowmag", 3, size=512)
    length_px = 100.0 / params.pixel_size_nm  # a 100 nm bar
    burned = burn_in_scale_bar(sim.image, bar_length_px=length_px, label="100 nm", strip_px=40)
    Image.fromarray(burned.image).save(tmp_path / "export.png")  # an uncalibrated export
    result = analyzer(tmp_path / "export.png", scale_bar_nm=100.0)
    assert result.pixel_size_source == "scale bar"
    assert result.pixel_size_nm == pytest.approx(params.pixel_size_nm, rel=0.02)
    overlay = burned.coverage > 0.02
    assert not (result.labels[overlay] > 0).any()
    assert result.info["annotations"]["scale_bar_used"] is not None
    with pytest.raises(ValueError, match="either pixel_size_nm or scale_bar_nm"):
        analyzer(tmp_path / "export.png", 0.5, scale_bar_nm=100.0)
    with pytest.raises(ValueError, match="pixel_size_nm"):  # never assumed without a bar either
        analyzer(tmp_path / "export.png")


def test_clean_images_are_not_masked(analyzer):
    sim, params = _sim("lowmag", 3)
    result = analyzer(sim.image, params.pixel_size_nm)
    assert result.info["annotations"]["masked_fraction"] == 0.0


@pytest.mark.parametrize("estimator", ["mask", "contour", "featurenet"])
def test_every_size_estimator_gives_sizes_with_uncertainties(estimator):
    sim, params = _sim("lowmag", 3)
    result = Analyzer(device="cpu", size_estimator=estimator)(sim.image, params.pixel_size_nm)
    particles = result.particles
    assert result.info["size_estimator"] == estimator and len(particles)
    for q in ("diameter_nm", "aspect_ratio", "roundness"):
        assert particles[q].notna().all() and (particles[f"{q}_std"] > 0).all()
    assert (particles["aspect_ratio"] >= 1.0).all()
    assert particles["roundness"].between(0.0, 1.0).all()
    if estimator == "mask":  # the contract's pixel-mask diameter, exactly
        expected = 2.0 * np.sqrt(particles["area_nm2"] / np.pi)
        np.testing.assert_allclose(particles["diameter_nm"], expected, rtol=1e-9)


def test_an_unknown_size_estimator_is_refused():
    with pytest.raises(ValueError, match="size_estimator"):
        Analyzer(device="cpu", size_estimator="calipers")


def test_no_size_estimator_keeps_the_contract_mask_values_without_uncertainties():
    sim, params = _sim("lowmag", 3)
    plain = Analyzer(device="cpu", size_estimator=None)(sim.image, params.pixel_size_nm)
    assert "diameter_nm_std" not in plain.particles
    expected = 2.0 * np.sqrt(plain.particles["area_nm2"] / np.pi)
    np.testing.assert_allclose(plain.particles["diameter_nm"], expected, rtol=1e-9)
