"""Scale by what the network sees: trained particle sizes in px and the resampling decision."""

import json

import numpy as np
import pytest
from scipy import ndimage as ndi

from etem_helpers.preprocess import plan_by_particle_size, plan_resampling
from etem_helpers.segmentation.scale import (
    dataset_diameter_range_px,
    diameter_range_px,
    equivalent_diameters_px,
)


def _disks(shape, centres_radii):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, dtype=np.int32)
    for k, (cy, cx, r) in enumerate(centres_radii, start=1):
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= r**2] = k
    return labels


def test_equivalent_diameters_leave_out_border_particles():
    labels = _disks((100, 100), [(50, 50, 10), (20, 70, 5), (0, 0, 6)])
    d = equivalent_diameters_px(labels)
    assert d.shape == (2,)
    assert d == pytest.approx([20.0, 10.0], rel=0.05)
    assert equivalent_diameters_px(labels, exclude_border=False).shape == (3,)
    assert equivalent_diameters_px(np.zeros((8, 8), int)).size == 0
    with pytest.raises(ValueError, match="2-D"):
        equivalent_diameters_px(np.zeros(8, int))


def test_diameter_range_quantiles_and_errors():
    assert diameter_range_px(np.arange(1, 101), (0.0, 1.0)) == (1.0, 100.0)
    low, high = diameter_range_px(np.arange(1, 101))
    assert low == pytest.approx(5.95) and high == pytest.approx(95.05)
    with pytest.raises(ValueError, match="no finite positive"):
        diameter_range_px([np.nan, 0.0])
    with pytest.raises(ValueError, match="quantiles"):
        diameter_range_px([1.0, 2.0], (0.9, 0.1))


def test_dataset_range_reads_the_labels_of_the_training_split(tmp_path):
    import tifffile

    (tmp_path / "labels").mkdir()
    rows = []
    for k, radius in enumerate((4, 8, 16)):
        mid = f"m{k}"
        tifffile.imwrite(tmp_path / "labels" / f"{mid}.tif",
                         _disks((80, 80), [(40, 40, radius)]).astype(np.uint16))
        rows.append(f"{mid},images/{mid}.mrc,labels/{mid}.tif,0.5")
    (tmp_path / "manifest.csv").write_text("micrograph_id,image_path,labels_path,pixel_size_nm\n"
                                           + "\n".join(rows) + "\n")
    everything = dataset_diameter_range_px(tmp_path, quantiles=(0.0, 1.0))
    assert everything == pytest.approx((8.0, 32.0), rel=0.05)
    assert dataset_diameter_range_px(tmp_path, ["m0"], quantiles=(0.0, 1.0)) == pytest.approx(
        (8.0, 8.0), rel=0.05)
    # Trained at 1 nm/px: the 0.5 nm/px diameters are halved.
    assert dataset_diameter_range_px(tmp_path, ["m2"], target_pixel_size_nm=1.0,
                                     quantiles=(0.0, 1.0)) == pytest.approx((16.0, 16.0), rel=0.05)
    with pytest.raises(ValueError, match="not in"):
        dataset_diameter_range_px(tmp_path, ["nope"])


def test_plan_by_particle_size_keeps_trained_sizes_native():
    plan = plan_by_particle_size((1024, 768), 7.3, [30.0, 40.0, 55.0], (18.0, 115.0))
    assert plan is not None and not plan["resample"]
    assert plan["median_diameter_px"] == 40.0 and plan["n_particles"] == 3
    assert "7.3 nm/px" in plan["reason"] and "18–115 px" in plan["reason"]
    # Too few particles, or particles smaller than trained: no decision (resample by nm/px).
    assert plan_by_particle_size((1024, 768), 7.3, [30.0, 40.0], (18.0, 115.0)) is None
    assert plan_by_particle_size((1024, 768), 7.3, [5.0, 6.0, 9.0], (18.0, 115.0)) is None
    assert plan_by_particle_size((1024, 768), 7.3, [300.0, 400.0, 500.0], (18.0, 115.0)) is None
    # A network blind to small particles finds only the big ones: model-free blobs whose
    # area-weighted median is below twice the trained minimum overrule it.
    found, trained = [30.0, 40.0, 55.0], (18.0, 115.0)
    assert plan_by_particle_size((1024, 768), 7.3, found, trained,
                                 independent_diameters_px=[12.0] * 30 + [40.0]) is None
    assert plan_by_particle_size((1024, 768), 7.3, found, trained,
                                 independent_diameters_px=[8.0, 9.0]) is not None
    # Many noise specks and a few large particles: the area decides, the specks do not.
    assert plan_by_particle_size((1024, 768), 7.3, found, trained,
                                 independent_diameters_px=[3.0] * 500 + [60.0] * 10) is not None


def test_area_weighted_median_and_blobs():
    from etem_helpers.preprocess.resample import area_weighted_median
    from etem_helpers.segmentation.scale import blob_diameters_px

    assert area_weighted_median([1.0, 1.0, 10.0]) == 10.0
    assert np.isnan(area_weighted_median([]))
    labels = _disks((128, 128), [(40, 40, 12), (90, 90, 6), (40, 95, 6)])
    image = np.where(labels > 0, 0.2, 1.0) + np.random.default_rng(0).normal(0, 0.05, labels.shape)
    d = np.sort(blob_diameters_px(image))
    assert d == pytest.approx([12.0, 12.0, 24.0], rel=0.1)
    assert blob_diameters_px(np.ones((32, 32))).size == 0
    # The pixel-size plan of the same image would blow it up 7.3x.
    assert plan_resampling((1024, 768), 7.3, (0.025, 1.0))["factor"] == pytest.approx(7.3)


def test_model_card_diameter_range_round_trip_and_validation():
    from etem_helpers.segmentation import load_checkpoint
    from etem_helpers.segmentation.checkpoint import DEFAULT_MODEL_PATH, ModelCard

    _, card = load_checkpoint(DEFAULT_MODEL_PATH)
    low, high = card.diameter_range_px
    assert 5 < low < high < 300  # the shipped model knows what it was trained on
    again = ModelCard.from_dict(json.loads(json.dumps(card.to_dict())))
    assert again.diameter_range_px == card.diameter_range_px
    assert card.replace(diameter_range_px=None).to_dict().get("diameter_range_px") is None
    with pytest.raises(ValueError, match="diameter_range_px"):
        card.replace(diameter_range_px=(20.0, 10.0))


def test_a_coarse_image_with_trained_particle_sizes_is_analysed_at_its_own_pixel_size():
    """Same pixels, declared 0.5 nm/px (inside the range) or 7.3 nm/px (outside): the network
    sees the same particles, so the labels are identical and nothing is resampled."""
    from etem_helpers.pipeline import Analyzer
    from etem_helpers.simulate import SimulationParams, simulate_micrograph

    params = SimulationParams(regime="lowmag", image_size_px=256, pixel_size_nm=0.5,
                              n_particles=8, kinds=("round",), diameter_range_nm=(20.0, 30.0))
    image = simulate_micrograph(params, seed=3).image
    settings = {"size_estimator": None, "faults": False, "annotations": False}
    fine = Analyzer(device="cpu", **settings)(image, 0.5)
    coarse = Analyzer(device="cpu", **settings)(image, 7.3)
    assert fine.labels.max() >= 3
    assert not coarse.info["resampling"]["resample"]
    assert coarse.info["particle_scale"]["n_particles"] >= 3
    assert coarse.info["particle_scale"]["blob_area_weighted_median_px"] > 36
    np.testing.assert_array_equal(coarse.labels, fine.labels)
    assert coarse.particles["diameter_nm"].to_numpy() == pytest.approx(
        fine.particles["diameter_nm"].to_numpy() * 7.3 / 0.5)
    old = Analyzer(device="cpu", scale="pixel_size", **settings)
    assert old(image[:64, :64], 7.3).info["resampling"]["resample"]
    with pytest.raises(ValueError, match="scale"):
        Analyzer(device="cpu", scale="nm", **settings)


def test_plan_by_estimated_size_moves_particles_to_the_middle_of_the_trained_sizes():
    from etem_helpers.preprocess import plan_by_estimated_size

    trained = (18.0, 115.0)
    middle = (2 * 18.0 * 115.0) ** 0.5  # 64.3 px
    small = plan_by_estimated_size((1024, 768), 7.3, 16.0, trained, max_factor=7.3)
    assert small["resample"] and small["factor"] == pytest.approx(middle / 16.0)
    assert small["target_pixel_size_nm"] == pytest.approx(7.3 / small["factor"])
    assert small["estimated_diameter_px"] == 16.0 and "16.0 px" in small["reason"]
    # never more than the nm/px path would upsample, and large particles are shrunk, not blown up
    assert plan_by_estimated_size((256, 256), 7.3, 4.0, trained, max_factor=7.3)["factor"] == 7.3
    large = plan_by_estimated_size((1024, 768), 7.3, 200.0, trained, max_factor=7.3)
    assert large["factor"] == pytest.approx(middle / 200.0) and large["factor"] < 1
    assert plan_by_estimated_size((1024, 768), 7.3, 1e4, trained)["factor"] == 0.25
    # no estimate, or an image that would end up too small: no plan
    assert plan_by_estimated_size((1024, 768), 7.3, float("nan"), trained) is None
    assert plan_by_estimated_size((100, 100), 7.3, 1e4, trained) is None


def test_a_coarse_image_of_small_particles_is_resampled_by_their_size_not_by_nm():
    """Particles about 16 px across at a declared 7.3 nm/px: resampled about 4x (to the
    model's trained sizes), not 7.3x (to its 1 nm/px limit)."""
    from etem_helpers.pipeline import Analyzer
    from etem_helpers.simulate import SimulationParams, simulate_micrograph

    params = SimulationParams(regime="lowmag", image_size_px=256, pixel_size_nm=0.5,
                              n_particles=25, kinds=("round",), diameter_range_nm=(7.0, 9.0))
    sim = simulate_micrograph(params, seed=4)
    settings = {"size_estimator": None, "faults": False, "annotations": False}
    result = Analyzer(device="cpu", **settings)(sim.image, 7.3)
    plan = result.info["resampling"]
    assert plan["resample"] and 2.0 < plan["factor"] < 6.0
    assert plan["estimated_diameter_px"] == pytest.approx(
        result.info["particle_scale"]["blob_area_weighted_median_px"])
    assert result.labels.shape == sim.image.shape and result.labels.max() >= 10


def test_small_particles_inside_the_pixel_size_range_are_enlarged_but_lattice_texture_is_not():
    from etem_helpers.pipeline import Analyzer
    from etem_helpers.simulate import SimulationParams, simulate_micrograph

    settings = {"size_estimator": None, "faults": False, "annotations": False}
    params = SimulationParams(regime="lowmag", image_size_px=256, pixel_size_nm=0.6,
                              n_particles=40, kinds=("round",), diameter_range_nm=(4.0, 6.0))
    sim = simulate_micrograph(params, seed=5)
    result = Analyzer(device="cpu", **settings)(sim.image, 0.6)
    plan = result.info["resampling"]
    assert plan["resample"] and plan["factor"] > 2.0
    assert plan["target_pixel_size_nm"] >= 0.025  # never finer than the model's range
    assert result.labels.shape == sim.image.shape and result.labels.max() >= 10
    off = Analyzer(device="cpu", scale="pixel_size", **settings)(sim.image, 0.6)
    assert not off.info["resampling"]["resample"]
    # the same texture of ~15 px blobs: 7 nm blobs at 0.5 nm/px are enlarged, 0.7 nm ones at
    # 0.05 nm/px (lattice fringes and support grain of an HRTEM image) are not
    texture = ndi.gaussian_filter(np.random.default_rng(0).normal(size=(256, 256)), 2.0)
    coarse = Analyzer(device="cpu", **settings)(texture, 0.5).info
    fine = Analyzer(device="cpu", **settings)(texture, 0.05).info
    assert coarse["particle_scale"]["blob_area_weighted_median_px"] < 35.0
    assert "first_pass_n_particles" in coarse["particle_scale"]  # the blobs asked for a look
    assert "first_pass_n_particles" not in fine.get("particle_scale", {})
    assert not fine["resampling"]["resample"]


def test_a_granular_support_is_not_taken_for_small_particles():
    # large faint particles on a granular support: the Otsu blobs are support grains (about
    # 16 px), but the network finds the particles at the image's own pixel size (seed 306 of
    # benchmarks/edge_profiles.py, where enlarging gave over a thousand false particles)
    from etem_helpers.pipeline import Analyzer
    from etem_helpers.simulate import sample_params, simulate_micrograph

    params = sample_params(np.random.default_rng(306), "lowmag", image_size_px=512)
    sim = simulate_micrograph(params, seed=306)
    result = Analyzer(device="cpu", size_estimator=None, faults=False, annotations=False)(
        sim.image, params.pixel_size_nm)
    scale = result.info["particle_scale"]
    assert scale["blob_area_weighted_median_px"] < 20.0 and scale["n_blobs"] > 100
    assert not result.info["resampling"]["resample"]
    assert abs(int(result.labels.max()) - int(sim.labels.max())) <= 4


def test_enlargement_stays_within_the_memory_budget():
    from etem_helpers.preprocess import plan_by_estimated_size
    from etem_helpers.preprocess.resample import MAX_ENLARGED_PIXELS

    trained = (18.0, 115.0)
    plan = plan_by_estimated_size((2048, 2048), 0.6, 8.0, trained, min_factor=1.0)
    assert plan["factor"] == pytest.approx((MAX_ENLARGED_PIXELS / 2048**2) ** 0.5)  # 2x, not 8x
    assert plan_by_estimated_size((4096, 4096), 0.6, 8.0, trained, min_factor=1.0) is None
    # a small image is enlarged as far as its particles need
    assert plan_by_estimated_size((512, 512), 0.6, 8.0, trained)["factor"] == 8.0


def test_plan_for_small_particles_decides_from_the_blobs():
    from etem_helpers.preprocess import plan_for_small_particles

    trained, nm_range = (18.0, 115.0), (0.025, 1.0)
    plan = plan_for_small_particles((256, 256), 0.6, [10.0] * 20, trained, nm_range)
    assert plan["resample"] and plan["factor"] == pytest.approx(min(8.0, 64.34 / 10.0), rel=1e-3)
    assert plan_for_small_particles((256, 256), 0.6, [10.0] * 2, trained, nm_range) is None
    assert plan_for_small_particles((256, 256), 0.6, [50.0] * 20, trained, nm_range) is None
    # 10 px at 0.05 nm/px = 0.5 nm: fringes and support texture, not particles
    assert plan_for_small_particles((256, 256), 0.05, [10.0] * 20, trained, nm_range) is None
    # at most 8x however small the blobs
    assert plan_for_small_particles((256, 256), 0.6, [6.0] * 20, trained, nm_range)["factor"] == 8.0
