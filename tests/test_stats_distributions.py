"""Distribution tests, Wasserstein distance and size intervals."""

import math

import numpy as np
import pytest

from etem_helpers.stats import (
    anderson_darling_k_sample,
    ks_two_sample,
    size_intervals,
    wasserstein_nm,
)

# Scholz & Stephens (1987), JASA 82:918, example 1 (from Lehmann 1975, p. 309): smoothness
# of paper measured in four laboratories.
LABS = [
    [38.7, 41.5, 43.8, 44.5, 45.5, 46.0, 47.7, 58.0],
    [39.2, 39.3, 39.7, 41.4, 41.8, 42.9, 43.3, 45.8],
    [34.0, 35.0, 39.0, 40.0, 43.0, 43.0, 44.0, 45.0],
    [34.0, 34.8, 34.8, 35.4, 37.2, 37.8, 41.2, 42.8],
]


def test_anderson_darling_scholz_stephens_example():
    """Scholz & Stephens (1987), example 1: standardized statistic 4.449 (A2kN) and 4.480
    (A2akN, midranks for ties), p about 0.002 (values as checked in scipy's test suite,
    TestAndersonKSamp.test_example1a/b). Our p-value is by permutation (Monte Carlo)."""
    res = anderson_darling_k_sample(LABS, n_resamples=1000, seed=0)
    assert res.statistic == pytest.approx(4.480, abs=5e-4)
    assert res.pvalue < 0.01
    assert res.sizes == (8, 8, 8, 8)
    right = anderson_darling_k_sample(LABS, n_resamples=50, seed=0, variant="right")
    assert right.statistic == pytest.approx(4.449, abs=5e-4)
    same = [np.r_[LABS[0], LABS[1]], np.r_[LABS[1], LABS[0]]]
    assert anderson_darling_k_sample(same, n_resamples=200, seed=1).pvalue > 0.5


def test_ks_two_sample_exact_for_separated_samples():
    """Independent computation: for completely separated samples of sizes m and n, D = 1
    and the exact two-sided p-value is 2 / C(m + n, m)."""
    res = ks_two_sample([1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0, 9.0])
    assert res.statistic == 1.0
    assert res.pvalue == pytest.approx(2 / math.comb(9, 4))


def test_wasserstein_matches_scipy_docs_and_is_in_nm():
    """scipy.stats.wasserstein_distance docs: ([0, 1, 3], [5, 6, 8]) -> 5.0. A shift of
    every size by c nm is a distance of c nm."""
    assert wasserstein_nm([0, 1, 3], [5, 6, 8]) == pytest.approx(5.0)
    rng = np.random.default_rng(0)
    a = rng.normal(10, 2, 300)
    assert wasserstein_nm(a, a + 1.5) == pytest.approx(1.5)


def test_size_intervals_cluster_bootstrap_widens_and_covers():
    """With a shared per-image offset, the image-level interval of the mean is wider than
    the particle-level one (particles are not independent) and covers the true mean in
    most simulated studies."""
    rng = np.random.default_rng(1)
    hits, wider = 0, 0
    reps = 40
    for _ in range(reps):
        offsets = rng.normal(0, 1.0, 15)
        groups = np.repeat(np.arange(15), 30)
        d = 10 + offsets[groups] + rng.normal(0, 1.0, groups.size)
        clustered = size_intervals(d, groups, n_resamples=300, seed=2).set_index("statistic")
        naive = size_intervals(d, n_resamples=300, seed=2).set_index("statistic")
        lo, hi = clustered.loc["mean", ["ci_low", "ci_high"]]
        hits += lo <= 10 <= hi
        wider += (hi - lo) > (naive.loc["mean", "ci_high"] - naive.loc["mean", "ci_low"])
    assert hits / reps >= 0.8
    assert wider == reps
    table = size_intervals(d, groups, n_resamples=200, seed=0, method="bca")
    assert list(table["statistic"]) == ["mean", "median", "sigma", "D10", "D50", "D90"]
    assert (table["ci_low"] <= table["estimate"]).all()
    assert (table["estimate"] <= table["ci_high"]).all()
    assert table.loc[table.statistic == "D90", "estimate"].item() == pytest.approx(
        np.quantile(d, 0.9))
