"""Tests of dense assemblies: packing, gaps, labels, determinism, dataset mixing, bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from etem_helpers.simulate import (
    DenseSimulationParams,
    SimulationParams,
    generate_dataset,
    load_manifest,
    sample_dense_params,
    simulate_micrograph,
)
from etem_helpers.simulate.dense import place_dense_particles
from etem_helpers.simulate.specimen import (
    particle_bound_radius_nm,
    particle_thickness,
    render_labels,
)

PIXEL_NM = 0.5


def _params(**changes) -> DenseSimulationParams:
    settings = dict(regime="lowmag", pixel_size_nm=PIXEL_NM, image_size_px=160,
                    diameter_range_nm=(9.0, 11.0), area_fraction=0.6, gap_range_nm=(1.0, 1.5),
                    orientation_jitter_deg=2.0, vacancy_fraction=0.0, dose_e_per_a2=None,
                    edge_softness_nm=0.2, defocus_nm=200.0)
    settings.update(changes)
    return DenseSimulationParams(**settings)


def _layout(params, seed):
    particles = place_dense_particles(params, np.random.default_rng(seed))
    labels, kept = render_labels(particles, params)
    return [particles[i] for i in kept], labels


def _neighbour_counts(labels: np.ndarray, reach_px: int) -> np.ndarray:
    """Number of other particles within ``reach_px`` of each particle."""
    counts = []
    structure = np.ones((3, 3), dtype=bool)  # Chebyshev reach <= Euclidean gap
    for index in range(1, labels.max() + 1):
        grown = ndimage.binary_dilation(labels == index, structure, iterations=reach_px)
        others = np.unique(labels[grown])
        counts.append(int(np.sum((others != 0) & (others != index))))
    return np.array(counts)


@pytest.mark.parametrize("kind", ["faceted", "rod", "round"])
def test_area_fraction_and_touching_neighbours_are_reached(kind):
    params = _params(kinds=(kind,), diameter_range_nm=(5.0, 6.0) if kind == "rod" else
                     (9.0, 11.0))
    for seed in range(3):
        objects, labels = _layout(params, seed)
        fraction = float(np.mean(labels > 0))
        assert 0.85 * params.area_fraction <= fraction <= params.area_fraction + 0.15, fraction
        reach = math.ceil(params.gap_range_nm[1] / PIXEL_NM) + 1
        counts = _neighbour_counts(labels, reach)
        # in a monolayer nearly every particle touches others (across a gap), most several
        assert np.mean(counts >= 1) > 0.9
        assert np.median(counts) >= 2


def test_gaps_are_background_and_footprints_disjoint():
    params = _params()  # gaps >= 1 nm = 2 px, wider than a pixel diagonal
    for seed in range(3):
        objects, labels = _layout(params, seed)
        # no two different particles are 8-neighbours: a background pixel always separates them
        for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
            a = labels[max(dy, 0):, max(dx, 0):labels.shape[1] + min(dx, 0)]
            b = labels[:labels.shape[0] - dy, max(-dx, 0):labels.shape[1] - max(dx, 0)]
            assert not np.any((a > 0) & (b > 0) & (a != b))
        # the analytic footprints never overlap (on a grid 3x finer than the pixels)
        step = PIXEL_NM / 3
        grid = np.arange(0, params.field_of_view_nm, step)
        cover = np.zeros((grid.size, grid.size), dtype=np.int16)
        for p in objects:
            r = particle_bound_radius_nm(p)
            rows = np.flatnonzero(np.abs(grid - p.center_y_nm) <= r)
            cols = np.flatnonzero(np.abs(grid - p.center_x_nm) <= r)
            if rows.size and cols.size:
                inside = particle_thickness(p, grid[rows, None], grid[None, cols]) > 0
                cover[np.ix_(rows, cols)] += inside
        assert cover.max() == 1


def test_facing_facets_are_parallel():
    params = _params(orientation_jitter_deg=0.0, n_domains=1)
    for seed in range(4):
        objects, labels = _layout(params, seed)
        p = objects[0]
        if p.shape != "faceted":
            continue
        period = 360.0 / p.n_facets
        allowed = {0.0, (180.0 % period)}
        for q in objects[1:]:
            delta = (q.angle_deg - p.angle_deg) % period
            assert min(min(abs(delta - a), period - abs(delta - a)) for a in allowed) < 1e-6


def test_gaps_are_bright_between_dark_particles():
    params = _params(gap_range_nm=(1.5, 2.0))
    sim = simulate_micrograph(params, seed=4)
    labels = sim.labels
    inside = ndimage.binary_erosion(labels > 0, iterations=2)
    # background pixels with two different particles within 2 px: the gaps
    near = [ndimage.grey_dilation(labels, size=5), -ndimage.grey_dilation(-np.where(
        labels > 0, labels, labels.max() + 1), size=5)]
    gap = (labels == 0) & (near[0] > 0) & (-near[1] <= labels.max()) & (near[0] != -near[1])
    assert gap.sum() > 50
    assert sim.image[gap].mean() > sim.image[inside].mean() + 0.05


def test_deterministic_per_seed_and_table_matches_labels():
    params = _params(image_size_px=128)
    one, two = simulate_micrograph(params, seed=3), simulate_micrograph(params, seed=3)
    assert np.array_equal(one.image, two.image) and np.array_equal(one.labels, two.labels)
    pd.testing.assert_frame_equal(one.particles, two.particles)
    assert len(one.particles) == one.labels.max() > 10
    assert set(one.particles["shape"]) <= {"faceted", "rod", "round"}
    other = simulate_micrograph(params, seed=4)
    assert not np.array_equal(one.labels, other.labels)


def test_sample_dense_params_draws_monolayers():
    rng = np.random.default_rng(0)
    for _ in range(20):
        p = sample_dense_params(rng, image_size_px=512)
        assert isinstance(p, DenseSimulationParams) and p.regime == "lowmag"
        lo, hi = p.diameter_range_nm
        cv = (hi - lo) / (math.sqrt(12.0) * 0.5 * (lo + hi))  # uniform sizes
        assert 0.04 <= cv <= 0.16
        assert 0.4 <= p.area_fraction <= 0.75
        assert 0.3 <= p.gap_range_nm[0] <= p.gap_range_nm[1] <= 2.0
        assert p.kinds[0] in ("faceted", "rod", "round")
    again = sample_dense_params(np.random.default_rng(0), image_size_px=512)
    assert again == sample_dense_params(np.random.default_rng(0), image_size_px=512)


def test_sparse_defaults_unchanged():
    assert SimulationParams.packing == "random" and DenseSimulationParams.packing == "dense"
    assert "area_fraction" not in SimulationParams().to_dict()
    assert DenseSimulationParams().to_dict()["area_fraction"] == 0.6


@pytest.mark.parametrize(("changes", "match"), [
    ({"area_fraction": 1.5}, "area_fraction"),
    ({"area_fraction": True}, "area_fraction"),
    ({"gap_range_nm": (2.0, 1.0)}, "gap_range_nm"),
    ({"gap_range_nm": "thin"}, "gap_range_nm"),
    ({"kinds": ("faceted", "decahedral")}, "cannot be packed densely"),
    ({"n_domains": 0}, "n_domains"),
    ({"orientation_jitter_deg": 45.0}, "orientation_jitter_deg"),
    ({"vacancy_fraction": -0.1}, "vacancy_fraction"),
    ({"pixel_size_nm": 5.0}, "pixel_size_nm"),
])
def test_bad_arguments_are_rejected(changes, match):
    with pytest.raises(ValueError, match=match):
        _params(**changes)


def test_place_dense_particles_needs_dense_params():
    with pytest.raises(TypeError, match="DenseSimulationParams"):
        place_dense_particles(SimulationParams(), np.random.default_rng(0))


def test_dataset_mixes_dense_images_without_changing_the_others(tmp_path):
    plain = generate_dataset(4, tmp_path / "plain", regime="lowmag", image_size_px=96, seed=12,
                             progress=False)
    mixed = generate_dataset(4, tmp_path / "mixed", regime="lowmag", image_size_px=96, seed=12,
                             progress=False, dense_fraction=0.5)
    m0, m1 = load_manifest(plain), load_manifest(mixed)
    assert "packing" not in m0.columns
    assert set(m1["packing"]) == {"dense", "random"}  # seed 12 draws both kinds
    dense = m1["packing"] == "dense"
    assert m1.loc[dense, "param_area_fraction"].notna().all()
    assert m1.loc[~dense, "param_area_fraction"].isna().all()
    for _, row in m1[~dense].iterrows():
        same = m0[m0["micrograph_id"] == row["micrograph_id"]].iloc[0]
        assert same["seed"] == row["seed"] and same["n_particles"] == row["n_particles"]
        assert (plain / same["labels_path"]).read_bytes() == (
            mixed / row["labels_path"]).read_bytes()
    info = json.loads((mixed / "dataset.json").read_text())
    assert info["arguments"]["dense_fraction"] == 0.5
    from etem_helpers.datasets import dataset_card

    assert dataset_card(mixed)["packing"] == {"dense": int(dense.sum()),
                                              "random": int((~dense).sum())}
    assert "packing" not in dataset_card(plain)


def test_dataset_dense_fraction_is_checked(tmp_path):
    with pytest.raises(ValueError, match="dense_fraction"):
        generate_dataset(1, tmp_path / "a", dense_fraction=1.5, progress=False)
    with pytest.raises(ValueError, match="low magnification"):
        generate_dataset(1, tmp_path / "b", regime="hrtem", dense_fraction=0.2, progress=False)
    with pytest.raises(ValueError, match="fixed params"):
        generate_dataset(1, tmp_path / "c", dense_fraction=0.2, progress=False,
                         params=SimulationParams(image_size_px=64, n_particles=1,
                                                 diameter_range_nm=(1.0, 1.5)))


def test_ensure_dataset_reuses_datasets_written_before_dense_fraction(tmp_path):
    from etem_helpers.datasets import ensure_dataset

    out = tmp_path / "ds"
    ensure_dataset(out, 1, seed=2, regime="lowmag", image_size_px=64)
    info = json.loads((out / "dataset.json").read_text())
    del info["arguments"]["dense_fraction"]  # as written before the option existed
    (out / "dataset.json").write_text(json.dumps(info))
    assert ensure_dataset(out, 1, seed=2, regime="lowmag", image_size_px=64,
                          dense_fraction=0.0).reused
    with pytest.raises(FileExistsError, match="dense_fraction"):
        ensure_dataset(out, 1, seed=2, regime="lowmag", image_size_px=64, dense_fraction=0.5)
