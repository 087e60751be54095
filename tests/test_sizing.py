"""Tests of etem_helpers.sizing: contour measurement, FeatureNet I/O, uncertainty, entry point."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import erfc

from etem_helpers.measure import measure_particles
from etem_helpers.sizing import estimate_sizes, mean_diameter_nm
from etem_helpers.sizing.contour import contour_measurements, polygon_moments, refine_polygon
from etem_helpers.sizing.uncertainty import fit_variance_model, predict_std


def soft_ellipse(shape, cy, cx, a, b, angle=0.0, edge_px=1.0):
    """Probability map of an ellipse (semi-axes a, b px) with an erfc edge of width edge_px."""
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(float)
    u = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)
    v = -(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)
    r = np.hypot(u / a, v / b)
    return 0.5 * erfc((r - 1.0) * min(a, b) / (np.sqrt(2.0) * edge_px))


def test_polygon_moments_of_a_rectangle_are_exact():
    # (y, x) vertices of a 2 x 4 rectangle at y in [1, 3], x in [0, 4]
    rect = np.array([[1, 0], [1, 4], [3, 4], [3, 0]], dtype=float)
    area, sy, sx, syy, sxy, sxx = polygon_moments([rect])
    assert area == pytest.approx(8.0)
    assert sy / area == pytest.approx(2.0)
    assert sx / area == pytest.approx(2.0)
    assert syy / area - 4.0 == pytest.approx(4.0 / 12.0)  # var of U(1, 3)
    assert sxx / area - 4.0 == pytest.approx(16.0 / 12.0)
    assert sxy / area - 4.0 == pytest.approx(0.0, abs=1e-12)
    # same result whatever the winding
    assert polygon_moments([rect[::-1]])[0] == pytest.approx(8.0)


def test_refine_polygon_keeps_vertices_and_approaches_circle():
    theta = np.linspace(0, 2 * np.pi, 9)[:-1]
    octagon = np.column_stack([3 * np.sin(theta), 3 * np.cos(theta)])
    refined = refine_polygon(octagon, rounds=3)
    assert refined.shape == (64, 2)
    np.testing.assert_allclose(refined[::8], octagon)
    area_raw = polygon_moments([octagon])[0]
    area_ref = polygon_moments([refined])[0]
    assert abs(area_ref - 9 * np.pi) < 0.25 * abs(area_raw - 9 * np.pi)


@pytest.mark.parametrize("radius_px", [3.0, 6.0])
def test_contour_area_of_a_disk_beats_the_pixel_count(radius_px):
    rng = np.random.default_rng(0)
    err_mask, err_contour = [], []
    for _ in range(12):
        cy, cx = rng.uniform(15, 16, size=2)
        prob = soft_ellipse((32, 32), cy, cx, radius_px, radius_px)
        labels = (prob > 0.5).astype(np.int32)
        true_area = np.pi * radius_px**2
        err_mask.append(measure_particles(labels, 1.0)["area_nm2"].iat[0] / true_area - 1)
        err_contour.append(contour_measurements(labels, prob, 1.0)["area_nm2"].iat[0]
                           / true_area - 1)
    assert np.mean(np.abs(err_contour)) < 0.02
    assert np.mean(np.abs(err_contour)) < 0.6 * np.mean(np.abs(err_mask))


def test_contour_shape_of_an_analytic_ellipse():
    prob = soft_ellipse((48, 48), 23.3, 24.6, 12.0, 6.0, angle=0.6)
    labels = (prob > 0.5).astype(np.int32)
    table = contour_measurements(labels, prob, 0.5)
    assert table["contour_ok"].iat[0]
    assert table["aspect_ratio"].iat[0] == pytest.approx(2.0, abs=0.02)
    assert table["roundness"].iat[0] == pytest.approx(0.5, abs=0.01)
    assert table["diameter_nm"].iat[0] == pytest.approx(0.5 * 2 * np.sqrt(72.0), rel=0.01)
    assert table["feret_max_nm"].iat[0] == pytest.approx(0.5 * 24.0, rel=0.02)


def test_touching_instances_share_the_split_line():
    prob = np.zeros((20, 30))
    prob[5:15, 5:25] = 1.0
    labels = np.zeros((20, 30), dtype=np.int32)
    labels[5:15, 5:15] = 1
    labels[5:15, 15:25] = 2
    table = contour_measurements(labels, prob, 1.0)
    # each half is a 10 x 10 pixel square; the contour runs along pixel edges (at most the
    # corners are cut), and between the two instances exactly on the split line
    np.testing.assert_allclose(table["area_nm2"], 100.0, atol=0.5)
    assert table["area_nm2"].iat[0] == pytest.approx(table["area_nm2"].iat[1])


def test_contour_falls_back_to_mask_when_probability_is_low():
    labels = np.zeros((10, 10), dtype=np.int32)
    labels[3:6, 3:6] = 4
    table = contour_measurements(labels, np.full((10, 10), 0.1), 1.0, threshold=0.5)
    assert not table["contour_ok"].iat[0]
    assert table["area_nm2"].iat[0] == pytest.approx(9.0)


def test_fit_variance_model_reaches_the_requested_coverage():
    rng = np.random.default_rng(1)
    n = 4000
    spread = rng.uniform(0.0, 1.0, n)
    features = np.column_stack([spread, np.full(n, 0.1), np.ones(n)])
    sigma = np.sqrt((2.0 * spread) ** 2 + 0.3**2)
    errors = rng.normal(0.0, sigma)
    model = fit_variance_model(features[:2000], errors[:2000])
    std = predict_std(model, features[2000:])
    coverage = np.mean(np.abs(errors[2000:]) <= 1.96 * std)
    assert 0.93 <= coverage <= 0.97
    assert model["coef"][0] == pytest.approx(2.0, rel=0.2)


def _uncertainty():
    coef = {"coef": [1.0, 0.5, 0.02], "factor": 1.0}
    return {name: {q: coef for q in ("diameter_nm", "aspect_ratio", "roundness")}
            for name in ("mask", "contour")}


def _scene():
    prob = soft_ellipse((64, 64), 20.2, 18.7, 8.0, 5.0, angle=0.3)
    prob = np.maximum(prob, soft_ellipse((64, 64), 44.5, 45.1, 6.0, 6.0))
    labels = np.zeros((64, 64), dtype=np.int32)
    labels[prob > 0.5] = 1
    labels[32:, 32:][prob[32:, 32:] > 0.5] = 2
    image = (1.0 - 0.5 * prob).astype(np.float32)
    return image, labels, prob


@pytest.mark.parametrize("estimator", ["mask", "contour"])
def test_estimate_sizes_columns_positive_std_and_determinism(estimator):
    image, labels, prob = _scene()
    first = estimate_sizes(image, labels, prob, 0.3, estimator=estimator,
                           uncertainty=_uncertainty())
    second = estimate_sizes(image, labels, prob, 0.3, estimator=estimator,
                            uncertainty=_uncertainty())
    pd.testing.assert_frame_equal(first, second)
    assert list(first["particle_id"]) == [1, 2]
    for q in ("diameter_nm", "aspect_ratio", "roundness"):
        assert (first[f"{q}_std"] > 0).all()
    assert (first["estimator"] == estimator).all()


def test_estimate_sizes_refuses_unknown_estimator():
    image, labels, prob = _scene()
    with pytest.raises(ValueError, match="estimator"):
        estimate_sizes(image, labels, prob, 0.3, estimator="ruler")


def test_estimate_sizes_of_an_empty_label_map():
    table = estimate_sizes(None, np.zeros((8, 8), np.int32), np.zeros((8, 8)), 1.0)
    assert len(table) == 0 and "diameter_nm_std" in table


def test_featurenet_forward_and_weights_only_round_trip(tmp_path):
    torch = pytest.importorskip("torch")
    from etem_helpers.sizing.data import CROP_PX, N_SCALARS
    from etem_helpers.sizing.featurenet import (
        PRESETS,
        build_featurenet,
        load_featurenet,
        save_featurenet,
    )

    torch.manual_seed(0)
    net = build_featurenet("light").eval()
    crops = torch.randn(5, 3, CROP_PX, CROP_PX)
    scalars = torch.randn(5, N_SCALARS)
    mean, log_var = net(crops, scalars)
    assert mean.shape == (5, 3) and log_var.shape == (5, 3)
    assert build_featurenet("paper")(crops[:2], scalars[:2])[0].shape == (2, 3)
    st = {"target_mean": [0.6, 1.2, 0.8], "target_std": [0.1, 0.3, 0.1],
          "scalar_mean": [0.0] * N_SCALARS, "scalar_std": [1.0] * N_SCALARS}
    path = save_featurenet(tmp_path / "f.pt", net, config=PRESETS["light"], standardisation=st,
                           calibration={"std_scale": [1.0, 1.0, 1.0]}, meta={"test": True})
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "featurenet-1"
    loaded, meta = load_featurenet(path)
    with torch.inference_mode():
        again = loaded(crops, scalars)[0]
    np.testing.assert_allclose(again.numpy(), mean.detach().numpy(), atol=2e-2)

    image, labels, prob = _scene()
    table = estimate_sizes(image, labels, prob, 0.3, estimator="featurenet",
                           model=(loaded, meta))
    assert len(table) == 2 and (table["diameter_nm_std"] > 0).all()
    assert (table["aspect_ratio"] >= 1).all() and (table["roundness"] <= 1).all()


def test_mean_diameter_with_uncertainty():
    table = pd.DataFrame({"diameter_nm": [10.0, 12.0, 14.0],
                          "diameter_nm_std": [1.0, 1.0, 1.0],
                          "touches_border": [False, False, True]})
    out = mean_diameter_nm(table)
    assert out["n"] == 2 and out["mean_nm"] == pytest.approx(11.0)
    assert out["measurement_std_nm"] == pytest.approx(np.sqrt(2.0) / 2.0)
    assert out["sampling_std_nm"] == pytest.approx(np.std([10.0, 12.0], ddof=1) / np.sqrt(2))
    low, high = out["ci95_nm"]
    assert low < 11.0 < high


def test_shipped_featurenet_and_uncertainty_calibration_load_and_run():
    pytest.importorskip("torch")
    from etem_helpers.sizing.featurenet import default_featurenet_path, load_featurenet
    from etem_helpers.sizing.uncertainty import load_uncertainty_model

    if not default_featurenet_path().is_file():
        pytest.skip("shipped FeatureNet not present")
    network, meta = load_featurenet()  # torch.load(weights_only=True) inside
    assert len(meta["calibration"]["std_scale"]) == 3
    assert default_featurenet_path().stat().st_size < 5e6
    calibration = load_uncertainty_model()
    assert {"mask", "contour"} <= set(calibration)
    image, labels, prob = _scene()
    table = estimate_sizes(image, labels, prob, 0.3, model=(network, meta))
    assert (table["estimator"] == "featurenet").all()
    assert np.isfinite(table.drop(columns="estimator").to_numpy(dtype=float)).all()
    # ellipse 16 x 10 px and disk 12 px at 0.3 nm/px: area-equivalent 3.79 and 3.60 nm
    np.testing.assert_allclose(table["diameter_nm"], [0.6 * np.sqrt(40.0), 3.6], rtol=0.1)
