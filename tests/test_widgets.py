"""Tests for etem_helpers.widgets (the CTF / image-formation explorer)."""

import numpy as np
import pytest

from etem_helpers import widgets
from etem_helpers.simulate import optics

SETTINGS = {"defocus_nm": 100.0, "cs_mm": 1.2, "dose_e_per_a2": 1000.0, "pixel_size_nm": 0.05,
            "gas_fraction": 0.1, "image_size_px": 128}


def _artist_by_gid(ax, gid):
    found = [a for a in ax.get_children() if a.get_gid() == gid]
    assert len(found) == 1, f"expected one artist with gid {gid!r}, found {len(found)}"
    return found[0]


def test_explorer_figure_has_three_panels_with_data():
    fig = widgets.explorer_figure(**SETTINGS)
    image_ax, spectrum_ax, ctf_ax = fig.axes
    assert len(fig.axes) == 3
    shown = image_ax.images[0].get_array()
    assert shown.shape == (128, 128) and np.ptp(shown) > 0
    assert spectrum_ax.images[0].get_array().shape == (128, 128)
    assert "1/nm" in ctf_ax.get_xlabel() and "1/nm" in spectrum_ax.get_xlabel()
    assert any(len(line.get_xdata()) > 100 for line in ctf_ax.get_lines())
    _artist_by_gid(image_ax, "scale_bar")


def test_ctf_panel_predicted_zeros_equal_ctf_zeros_per_nm():
    data = widgets.explorer_data(**SETTINGS)
    fig = widgets.plot_explorer(data)
    segments = _artist_by_gid(fig.axes[2], "predicted_zeros").get_segments()
    drawn = np.sort([seg[0, 0] for seg in segments])
    expected = optics.ctf_zeros_per_nm(voltage_kv=300.0, defocus_nm=100.0, cs_mm=1.2,
                                       k_max_per_nm=data["info_limit_per_nm"])
    assert len(expected) >= 3
    np.testing.assert_allclose(drawn, expected, rtol=1e-9)
    # the first zero of an underfocused 300 kV, 1.2 mm lens at 100 nm: chi = -pi
    assert drawn[0] == pytest.approx(2.4258, rel=1e-3)


def test_measured_minima_are_marked_and_lie_near_the_first_zero():
    data = widgets.explorer_data(**SETTINGS)
    fig = widgets.plot_explorer(data)
    marked = _artist_by_gid(fig.axes[2], "measured_minima").get_xdata()
    np.testing.assert_allclose(np.sort(marked), data["measured_minima_per_nm"])
    first_zero = data["predicted_zeros_per_nm"][0]
    assert np.min(np.abs(marked - first_zero)) / first_zero < 0.05


def test_same_seed_same_data_other_seed_other_image():
    a = widgets.explorer_data(**SETTINGS, seed=3)
    b = widgets.explorer_data(**SETTINGS, seed=3)
    c = widgets.explorer_data(**SETTINGS, seed=4)
    for key in ("image", "power", "ctf", "measured_minima_per_nm", "predicted_zeros_per_nm"):
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["image"], c["image"])
    fig_a = widgets.explorer_figure(**SETTINGS, seed=3)
    fig_b = widgets.explorer_figure(**SETTINGS, seed=3)
    np.testing.assert_array_equal(fig_a.axes[0].images[0].get_array(),
                                  fig_b.axes[0].images[0].get_array())


@pytest.mark.parametrize(("name", "value"), [("pixel_size_nm", 0.5), ("gas_fraction", 0.9),
                                             ("dose_e_per_a2", 0.0), ("cs_mm", 5.0),
                                             ("defocus_nm", 1000.0)])
def test_bad_value_raises_value_error_naming_it(name, value):
    with pytest.raises(ValueError, match=name):
        widgets.explorer_figure(**{**SETTINGS, name: value})


def test_thon_ring_errors_on_a_carbon_film_are_small():
    from etem_helpers.simulate import SimulationParams, simulate_micrograph

    params = SimulationParams(image_size_px=512, pixel_size_nm=0.05, defocus_nm=100.0,
                              n_particles=0, dose_e_per_a2=1000.0)
    image = simulate_micrograph(params, seed=0).image
    table = widgets.thon_ring_errors(image, 0.05, voltage_kv=300.0, defocus_nm=100.0, cs_mm=1.2,
                                     focal_spread_nm=params.focal_spread_nm,
                                     convergence_mrad=params.convergence_mrad)
    assert len(table) >= 3 and table["measured_per_nm"].notna().all()
    assert table["relative_error"].max() < 0.03
    # the wrong defocus in the prediction is detected
    wrong = widgets.thon_ring_errors(image, 0.05, voltage_kv=300.0, defocus_nm=130.0, cs_mm=1.2)
    assert wrong["relative_error"].fillna(1.0).max() > 0.03


def test_add_scale_bar_needs_a_calibration():
    from matplotlib.figure import Figure

    ax = Figure().subplots()
    assert widgets.add_scale_bar(ax, 0.05, (200, 200)) == 2.0  # 20 % of 10 nm
    with pytest.raises(ValueError, match="pixel_size_nm"):
        widgets.add_scale_bar(ax, None, (200, 200))


def test_ctf_explorer_builds_headless_and_redraws_on_a_slider_change(capsys):
    ipywidgets = pytest.importorskip("ipywidgets")
    box = widgets.ctf_explorer(image_size_px=96)
    sliders, output = box.children
    assert isinstance(output, ipywidgets.Output)
    names = [s.description for s in sliders.children]
    assert len(names) == 5 and any("dose" in n for n in names)
    assert all(s.continuous_update is False for s in sliders.children)
    assert isinstance(sliders.children[2], ipywidgets.FloatLogSlider)
    capsys.readouterr()
    sliders.children[0].value = 20.0  # defocus: triggers a redraw (errors would propagate)
    assert "Image" in capsys.readouterr().out
    png = widgets.figure_png(widgets.explorer_figure(**{**SETTINGS, "defocus_nm": 20.0}))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
