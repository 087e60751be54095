"""Tests of SimulationParams, simulate_micrograph and generate_dataset."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from etem_helpers.measure import PARTICLE_COLUMNS, measure_particles
from etem_helpers.simulate import (
    KINDS,
    Particle,
    SimulationParams,
    generate_dataset,
    load_manifest,
    load_sample,
    sample_params,
    simulate_from_particles,
    simulate_micrograph,
)
from etem_helpers.simulate.micrograph import lattice_transferred

SMALL = {"image_size_px": 128, "pixel_size_nm": 0.05, "n_particles": 4,
         "diameter_range_nm": (1.5, 2.5)}


# --- parameters ------------------------------------------------------------------------
BAD_VALUES = [
    ("regime", "stem"),
    ("image_size_px", 32),
    ("image_size_px", 5000),
    ("pixel_size_nm", 0.5),  # too coarse for hrtem
    ("pixel_size_nm", 0.0),
    ("oversample", 3),
    ("voltage_kv", 30.0),
    ("voltage_kv", 400.0),
    ("cs_mm", 3.0),
    ("cs_mm", -0.5),
    ("defocus_nm", 1000.0),
    ("astigmatism_nm", -1.0),
    ("focal_spread_nm", 50.0),
    ("convergence_mrad", 5.0),
    ("aperture_mrad", 1.0),
    ("absorption", 0.5),
    ("carbon_thickness_nm", 40.0),
    ("dose_e_per_a2", 0.5),
    ("dose_e_per_a2", 1e5),
    ("drift_nm", -0.1),
    ("jitter_nm", 5.0),
    ("gas_fraction", 0.5),
    ("gas_info_limit_nm", 0.01),
    ("mtf_c1", 1.5),
    ("mtf_c2", 0.5),
    ("mtf_c3", 0.0),
    ("mtf_c4", 10.0),
    ("material", "Cu"),
    ("n_particles", -1),
    ("diameter_range_nm", (0.5, 5.0)),
    ("diameter_range_nm", (10.0, 5.0)),
    ("diameter_range_nm", (5.0, 200.0)),
    ("kinds", ("round", "cube")),
    ("kinds", ()),
    ("fault_probability", 1.5),
    ("on_zone_probability", -0.1),
    ("touching_fraction", 2.0),
    ("edge_fraction", -1.0),
    ("atom_sigma_nm", 0.2),
    ("voltage_kv", float("nan")),
]


@pytest.mark.parametrize(("field", "value"), BAD_VALUES)
def test_bad_parameter_raises_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        SimulationParams(**{field: value})


def test_lowmag_pixel_range_and_defocus_range_depend_on_regime():
    SimulationParams(regime="lowmag", pixel_size_nm=0.5, defocus_nm=2000.0,
                     diameter_range_nm=(5.0, 20.0))
    with pytest.raises(ValueError, match="pixel_size_nm"):
        SimulationParams(regime="lowmag", pixel_size_nm=0.05)
    with pytest.raises(ValueError, match="diameter_range_nm"):
        # 64 px x 0.01 nm = 0.64 nm field: a 1 nm particle does not fit
        SimulationParams(image_size_px=64, pixel_size_nm=0.01, diameter_range_nm=(1.0, 2.0))


def test_scherzer_default_defocus():
    params = SimulationParams(cs_mm=1.2, voltage_kv=300.0)
    assert params.effective_defocus_nm() == pytest.approx(59.5, rel=0.005)
    assert SimulationParams(defocus_nm=-10.0).effective_defocus_nm() == -10.0


@pytest.mark.parametrize("regime", ["hrtem", "lowmag"])
def test_sample_params_draws_valid_varied_parameters(regime):
    rng = np.random.default_rng(42)
    drawn = [sample_params(rng, regime, image_size_px=256) for _ in range(40)]
    assert all(p.regime == regime and p.image_size_px == 256 for p in drawn)
    pixels = np.array([p.pixel_size_nm for p in drawn])
    assert pixels.std() > 0
    assert {p.material for p in drawn} >= {"Au", "Pt"}
    for p in drawn:
        assert p.diameter_range_nm[1] <= p.field_of_view_nm
    # same rng state -> same draw
    assert sample_params(np.random.default_rng(1), regime) == sample_params(
        np.random.default_rng(1), regime)


# --- micrographs -------------------------------------------------------------------------
def test_same_seed_identical_different_seed_different():
    params = SimulationParams(**SMALL)
    a = simulate_micrograph(params, seed=7)
    b = simulate_micrograph(params, seed=7)
    c = simulate_micrograph(params, seed=8)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.labels, b.labels)
    assert np.array_equal(a.clean, b.clean)
    pd.testing.assert_frame_equal(a.particles, b.particles)
    assert not np.array_equal(a.image, c.image)
    assert a.image.dtype == np.float32 and a.labels.dtype == np.int32


@pytest.mark.parametrize("regime", ["hrtem", "lowmag"])
def test_ground_truth_table_matches_measure_particles(regime):
    params = sample_params(np.random.default_rng(3), regime, image_size_px=192)
    params = params.replace(n_particles=12, kinds=KINDS)
    sim = simulate_micrograph(params, seed=3)
    table = sim.particles
    measured = measure_particles(sim.labels, params.pixel_size_nm)
    geometric = [c for c in PARTICLE_COLUMNS
                 if c not in ("confidence", "fault_probability", "has_fault")]
    pd.testing.assert_frame_equal(table[geometric], measured[geometric])
    assert list(table.columns[:len(PARTICLE_COLUMNS)]) == list(PARTICLE_COLUMNS)
    ids = np.unique(sim.labels[sim.labels > 0])
    assert np.array_equal(ids, table["particle_id"].to_numpy())
    assert np.array_equal(ids, np.arange(1, len(ids) + 1))
    assert set(table["kind"]) <= {"nanoparticle", "rod", "nanotube", "aggregate"}
    assert set(table["shape"]) <= set(KINDS)
    assert (table["confidence"] == 1.0).all()
    assert table["has_fault"].dtype == "boolean"
    # fault_visible implies the structure has a fault and is on zone
    vis = table["fault_visible"].to_numpy(dtype=bool)
    assert np.all(table["has_fault"].to_numpy(dtype=bool)[vis])
    assert np.all(table["on_zone"].to_numpy(dtype=bool)[vis])
    resolved = table["fault_probability"].notna().to_numpy()
    assert np.array_equal(table["fault_probability"].to_numpy()[resolved], vis[resolved] * 1.0)
    if regime == "lowmag":
        assert not vis.any() and not resolved.any()
    for key in ("pixel_size_nm", "voltage_kv", "cs_mm", "defocus_nm", "dose_e_per_a2",
                "gas_fraction", "seed", "regime", "params"):
        assert key in sim.metadata
    assert sim.metadata["n_particles"] == len(table)


def test_fault_visibility_needs_transfer_of_111():
    base = SimulationParams(**SMALL)
    assert lattice_transferred(base)
    assert not lattice_transferred(base.replace(aperture_mrad=5.0))  # 2.5/nm < 1/d111
    assert not lattice_transferred(base.replace(focal_spread_nm=20.0))
    assert not lattice_transferred(base.replace(gas_info_limit_nm=0.5))
    c = 64 * 0.05
    twin = Particle("round", c, c, 2.0, 2.0, thickness_nm=3.0, on_zone=True,
                    lattice_origin_y_nm=c, lattice_origin_x_nm=c, fault="twin")
    off = Particle("round", c, c, 2.0, 2.0, thickness_nm=3.0, on_zone=False, fault="twin")
    assert simulate_from_particles(base, [twin], 0).particles["fault_visible"].item()
    assert not simulate_from_particles(base, [off], 0).particles["fault_visible"].item()
    hidden = simulate_from_particles(base.replace(aperture_mrad=5.0), [twin], 0).particles
    assert not hidden["fault_visible"].item()
    assert math.isnan(hidden["fault_probability"].item())
    assert hidden["has_fault"].item()


def test_noise_free_image_and_shot_noise_scale():
    params = SimulationParams(**{**SMALL, "dose_e_per_a2": None})
    clean = simulate_micrograph(params, seed=1)
    assert np.array_equal(clean.image, clean.clean)
    assert 0.3 < float(clean.image.mean()) < 1.5  # normalised intensity
    dose = 500.0
    noisy = simulate_micrograph(params.replace(dose_e_per_a2=dose), seed=1)
    expected = dose * (params.pixel_size_nm * 10.0) ** 2
    assert float(noisy.image.mean()) == pytest.approx(float(noisy.clean.mean()) * expected,
                                                      rel=0.02)


def test_particles_have_contrast_in_both_regimes():
    for regime, px, sizes in (("hrtem", 0.05, (1.5, 2.5)), ("lowmag", 0.5, (5.0, 8.0))):
        params = SimulationParams(regime=regime, image_size_px=128, pixel_size_nm=px,
                                  n_particles=6, diameter_range_nm=sizes,
                                  dose_e_per_a2=None, kinds=("round",), on_zone_probability=0.0)
        sim = simulate_micrograph(params, seed=2)
        inside = sim.image[sim.labels > 0].mean()
        outside = sim.image[sim.labels == 0].mean()
        assert inside < outside  # metal particles are darker (absorption / scattering)


def test_fresnel_rim_flips_with_defocus_sign():
    c = 128 * 0.05 / 2
    disk = Particle("round", c, c, 2.0, 2.0, thickness_nm=4.0, on_zone=False)
    rims = []
    for defocus in (80.0, -80.0):
        params = SimulationParams(image_size_px=128, pixel_size_nm=0.05, cs_mm=0.0,
                                  defocus_nm=defocus, dose_e_per_a2=None, absorption=0.0,
                                  carbon_thickness_nm=0.0, focal_spread_nm=0.0,
                                  convergence_mrad=0.0)
        sim = simulate_from_particles(params, [disk], seed=0)
        yy, xx = np.indices(sim.image.shape) * 0.05
        r = np.hypot(yy - c, xx - c)
        rim = sim.image[(r > 2.0) & (r < 2.0 + math.sqrt(1.97e-3 * 80.0))].mean()
        rims.append(rim - 1.0)
    assert rims[0] * rims[1] < 0
    assert min(abs(rims[0]), abs(rims[1])) > 0.02


# --- datasets ----------------------------------------------------------------------------
def test_generate_dataset_files_calibration_and_n_jobs(tmp_path):
    from etem_helpers.io import read_micrograph

    one = generate_dataset(3, tmp_path / "one", image_size_px=96, seed=5, n_jobs=1,
                           progress=False)
    two = generate_dataset(3, tmp_path / "two", image_size_px=96, seed=5, n_jobs=2,
                           progress=False)
    m1, m2 = load_manifest(one), load_manifest(two)
    pd.testing.assert_frame_equal(m1, m2)
    assert list(m1.columns[:4]) == ["micrograph_id", "image_path", "labels_path", "regime"]
    p1 = pd.read_csv(one / "particles.csv")
    pd.testing.assert_frame_equal(p1, pd.read_csv(two / "particles.csv"))
    assert p1.columns[0] == "micrograph_id"
    assert (one / "dataset.json").is_file()
    for _, row in m1.iterrows():
        image, pixel_size_nm, _ = read_micrograph(one / row["image_path"])
        other, _, _ = read_micrograph(two / row["image_path"])
        assert np.array_equal(image, other)
        assert pixel_size_nm == pytest.approx(row["pixel_size_nm"], rel=1e-5)
        labels, label_px, _ = read_micrograph(one / row["labels_path"])
        assert label_px == pytest.approx(row["pixel_size_nm"], rel=1e-5)
        assert labels.shape == image.shape == (96, 96)
        assert int(labels.max()) == row["n_particles"]
    image, labels, particles, meta = load_sample(one, 1)
    assert labels.dtype == np.int32 and len(particles) == labels.max()
    assert meta["micrograph_id"] == "sim_00001"
    # a dataset image is reproducible from its manifest seed
    sim = simulate_micrograph(_params_from_row(m1.iloc[1]), seed=int(m1.iloc[1]["seed"]))
    assert np.allclose(sim.image, image, rtol=1e-6, atol=1e-4)


def _params_from_row(row) -> SimulationParams:
    import json

    kwargs = {}
    for name in SimulationParams.field_names():
        value = row[f"param_{name}"]
        if isinstance(value, str) and value.startswith("["):
            value = tuple(json.loads(value))
        elif isinstance(value, float) and math.isnan(value):
            value = None
        elif name in ("image_size_px", "oversample", "n_particles"):
            value = int(value)
        kwargs[name] = value
    return SimulationParams(**kwargs)


def test_generate_dataset_refuses_to_overwrite(tmp_path):
    out = generate_dataset(1, tmp_path / "ds", image_size_px=64, progress=False,
                           params=SimulationParams(image_size_px=64, n_particles=1,
                                                   diameter_range_nm=(1.0, 1.5)))
    with pytest.raises(FileExistsError, match="overwrite=True"):
        generate_dataset(1, out, image_size_px=64, progress=False)
    generate_dataset(2, out, image_size_px=64, progress=False, overwrite=True, regime="lowmag")
    manifest = load_manifest(out)
    assert len(manifest) == 2 and set(manifest["regime"]) == {"lowmag"}
    with pytest.raises(ValueError, match="n_images"):
        generate_dataset(0, tmp_path / "x", progress=False)


# ---------------------------------------------------------------- overwrite safety (issue 9)

_ONE_PARTICLE = SimulationParams(image_size_px=64, n_particles=1, diameter_range_nm=(1.0, 1.5))


def test_overwrite_refuses_a_folder_that_holds_no_project_dataset(tmp_path):
    """Once `--overwrite` deleted u/images/* that the user put there; now nothing is deleted."""
    out = tmp_path / "u"
    (out / "images").mkdir(parents=True)
    mine = out / "images" / "my_photo.mrc"
    mine.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="no dataset written by etem_helpers.*nothing"):
        generate_dataset(1, out, params=_ONE_PARTICLE, progress=False, overwrite=True)
    (out / "dataset.json").write_text('{"generator": "someone else"}')
    with pytest.raises(FileExistsError, match="lacks generator"):
        generate_dataset(1, out, params=_ONE_PARTICLE, progress=False, overwrite=True)
    assert mine.read_bytes() == b"precious"


def test_overwrite_removes_only_the_files_the_dataset_lists(tmp_path):
    out = generate_dataset(2, tmp_path / "ds", params=_ONE_PARTICLE, progress=False)
    old = sorted(p.name for p in (out / "images").iterdir())
    notes = out / "images" / "notes.txt"
    notes.write_text("mine")
    (out / "README.txt").write_text("mine too")
    generate_dataset(1, out, params=_ONE_PARTICLE, progress=False, overwrite=True, seed=5)
    assert notes.read_text() == "mine" and (out / "README.txt").read_text() == "mine too"
    images = sorted(p.name for p in (out / "images").iterdir())
    assert images == sorted([old[0], "notes.txt"])  # the second old image was removed
    assert len(load_manifest(out)) == 1


def test_cli_user_errors_exit_2_with_one_line_naming_the_option(tmp_path, capsys):
    from etem_helpers.simulate.__main__ import main

    out = tmp_path / "u"
    (out / "images").mkdir(parents=True)
    (out / "images" / "mine.tif").write_bytes(b"x")
    argv = ["--n-images", "1", "--image-size-px", "64", "--out", str(out)]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Traceback" not in error
    assert "--overwrite" in error and "overwrite=True" not in error
    assert main([*argv, "--overwrite"]) == 2
    assert "nothing was deleted" in capsys.readouterr().err
    assert (out / "images" / "mine.tif").exists()
    assert main(["--n-images", "0", "--out", str(tmp_path / "v")]) == 2
    assert "--n-images must be a positive integer" in capsys.readouterr().err


def test_dataset_paths_may_be_bytes(tmp_path):
    import os

    out = os.fsencode(tmp_path / "ds")
    written = generate_dataset(1, out, params=_ONE_PARTICLE, progress=False)
    assert written == tmp_path / "ds"
    assert len(load_manifest(out)) == 1
    with pytest.raises(TypeError, match="out_dir must be a path"):
        generate_dataset(1, 42, params=_ONE_PARTICLE, progress=False)
