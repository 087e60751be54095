"""Cluster bootstrap and detection scores: checks against scipy and by simulation.

No published worked example exists for an image-level bootstrap of pooled F1; the
checks are (1) with one row per image it agrees with scipy.stats.bootstrap (an
independent implementation) within Monte Carlo error, (2) coverage on simulated
clustered data, (3) exact point estimates and determinism.
"""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from etem_helpers.stats import cluster_bootstrap, detection_intervals


def _mean(t):
    return float(t["x"].mean())


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_one_row_per_group_agrees_with_scipy_bootstrap(method):
    rng = np.random.default_rng(0)
    x = rng.lognormal(0, 0.6, 40)
    table = pd.DataFrame({"x": x, "image": np.arange(40)})
    ours = cluster_bootstrap(table, _mean, n_resamples=4000, method=method, seed=1)
    ref = stats.bootstrap((x,), np.mean, n_resamples=4000, method=method, rng=2)
    width = ref.confidence_interval.high - ref.confidence_interval.low
    assert ours.estimate == pytest.approx(x.mean())
    assert ours.ci_low == pytest.approx(ref.confidence_interval.low, abs=0.08 * width)
    assert ours.ci_high == pytest.approx(ref.confidence_interval.high, abs=0.08 * width)
    assert ours.n_groups == 40 and ours.n == 40


def test_cluster_bootstrap_is_deterministic_and_resamples_whole_images():
    table = pd.DataFrame({"x": [1.0, 1.0, 1.0, 5.0, 5.0, 5.0], "image": list("aaabbb")})
    a = cluster_bootstrap(table, _mean, n_resamples=500, seed=3)
    b = cluster_bootstrap(table, _mean, n_resamples=500, seed=3)
    assert a == b
    # Only whole images are drawn: every replicate mean is 1, 3 or 5.
    assert {a.ci_low, a.ci_high} <= {1.0, 3.0, 5.0}
    with pytest.raises(ValueError, match="group"):
        cluster_bootstrap(table, _mean, group_col="micrograph")


def _simulate_counts(rng, n_images):
    n_true = rng.poisson(20, n_images)
    recall = rng.beta(8, 2, n_images)  # varies between images: clustered errors
    tp = rng.binomial(n_true, recall)
    fp = rng.poisson(rng.gamma(2.0, 1.0, n_images))
    return pd.DataFrame({"image": np.arange(n_images), "tp": tp, "fp": fp, "fn": n_true - tp})


def test_detection_scores_point_values_and_coverage():
    counts = pd.DataFrame({"tp": [8, 5, 0], "fp": [1, 0, 2], "fn": [2, 1, 0]})
    res = detection_intervals(counts, n_resamples=200)
    assert (res.tp, res.fp, res.fn, res.n_images) == (13, 3, 3, 3)
    assert res.precision.estimate == pytest.approx(13 / 16)
    assert res.recall.estimate == pytest.approx(13 / 16)
    assert res.f1.estimate == pytest.approx(26 / 32)
    # Population pooled F1: E[tp] = 20 * 0.8, E[fn] = 20 * 0.2, E[fp] = 2.
    true_f1 = 2 * 16 / (2 * 16 + 2 + 4)
    rng = np.random.default_rng(5)
    hits = sum(
        detection_intervals(_simulate_counts(rng, 30), n_resamples=1000,
                         seed=int(rng.integers(1 << 31))).f1.contains(true_f1)
        for _ in range(200)
    )
    assert 0.88 <= hits / 200 <= 0.99
    with pytest.raises(ValueError, match="fn"):
        detection_intervals(counts.drop(columns="fn"))


def test_detection_scores_bca_runs_and_brackets_estimate():
    counts = _simulate_counts(np.random.default_rng(6), 25)
    res = detection_intervals(counts, n_resamples=1000, method="bca", seed=0)
    for iv in (res.precision, res.recall, res.f1):
        assert iv.ci_low <= iv.estimate <= iv.ci_high
        assert iv.method == "bca"
