"""Uncertainty budget: checked by hand (GUM root-sum-of-squares arithmetic)."""

import numpy as np
import pytest

from etem_helpers.stats import uncertainty_budget


def test_budget_by_hand():
    """Mean 12 nm, s = 2 nm, n = 3: counting u = 2 / sqrt(3); calibration 2 % -> 0.24 nm;
    sweep means spanning 0.5 nm -> rectangular u = 0.5 / (2 sqrt 3); combined = RSS;
    expanded = 2 x combined (JCGM 100:2008, 5.1 and 4.3.7)."""
    table = uncertainty_budget(
        [10.0, 12.0, 14.0],
        pixel_size_rel_uncertainty=0.02,
        threshold_sweep_means_nm=[11.8, 12.0, 12.3],
        diameter_std_nm=[0.3, 0.4, 0.0],
    ).set_index("component")
    u_count, u_cal, u_edge = 2 / np.sqrt(3), 0.24, 0.5 / (2 * np.sqrt(3))
    assert table.loc["counting statistics", "standard_uncertainty_nm"] == pytest.approx(u_count)
    assert table.loc["calibration", "standard_uncertainty_nm"] == pytest.approx(u_cal)
    assert table.loc["edge definition", "standard_uncertainty_nm"] == pytest.approx(u_edge)
    assert table.loc["per-particle uncertainty", "standard_uncertainty_nm"] == pytest.approx(
        0.5 / 3)
    assert not table.loc["per-particle uncertainty", "in_combined"]
    u_c = np.sqrt(u_count**2 + u_cal**2 + u_edge**2)
    assert table.loc["combined", "standard_uncertainty_nm"] == pytest.approx(u_c)
    assert table.loc["expanded", "standard_uncertainty_nm"] == pytest.approx(2 * u_c)
    assert table.loc["expanded", "relative_percent"] == pytest.approx(100 * 2 * u_c / 12)
    assert table.attrs["mean_nm"] == 12.0 and table.attrs["n"] == 3


def test_budget_options_and_errors():
    with_pp = uncertainty_budget([10.0, 12.0, 14.0], pixel_size_rel_uncertainty=0.0,
                                 diameter_std_nm=[0.3, 0.4, 0.0], counting_se_nm=0.0,
                                 per_particle_in_combined=True, coverage_factor=3)
    row = with_pp.set_index("component")
    assert row.loc["combined", "standard_uncertainty_nm"] == pytest.approx(0.5 / 3)
    assert row.loc["expanded", "standard_uncertainty_nm"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="pixel_size_rel_uncertainty"):
        uncertainty_budget([1.0, 2.0], pixel_size_rel_uncertainty=-0.1)
    with pytest.raises(ValueError, match="diameter_std_nm"):
        uncertainty_budget([1.0, 2.0], pixel_size_rel_uncertainty=0.01, diameter_std_nm=[1])
