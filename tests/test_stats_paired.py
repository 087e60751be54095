"""Paired tests and multiple-comparison corrections against published examples."""

import numpy as np
import pytest
from scipy import stats

from etem_helpers.stats import (
    benjamini_hochberg,
    holm,
    paired_t_test,
    wilcoxon_signed_rank,
)

# Student's sleep data (Cushny & Peebles 1905), R data set `sleep`: extra hours of sleep
# of 10 patients under drug 1 and drug 2.
DRUG1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
DRUG2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]

# Benjamini & Hochberg (1995), J R Stat Soc B 57:289, section 4: 15 p-values of the
# Neuhaus et al. (1992) trial.
BH_1995 = [0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344, 0.0459,
           0.3240, 0.4262, 0.5719, 0.6528, 0.7590, 1.0000]


def test_paired_t_test_sleep_data_matches_r():
    """R, example of ?t.test: t.test(extra ~ group, data = sleep, paired = TRUE) prints
    t = -4.0621, df = 9, p-value = 0.002833, 95 % CI -2.4598858 -0.7001142, mean
    difference -1.58."""
    res = paired_t_test(DRUG1, DRUG2)
    assert res.statistic == pytest.approx(-4.0621, abs=5e-5)
    assert res.df == 9
    assert res.pvalue == pytest.approx(0.002833, abs=5e-7)
    assert (res.ci_low, res.ci_high) == pytest.approx((-2.4598858, -0.7001142), abs=5e-8)
    assert res.estimate == pytest.approx(-1.58)
    assert res.n == 10


def test_wilcoxon_darwin_corn_matches_scipy_docs():
    """scipy.stats.wilcoxon documentation example (Darwin's cross- vs self-fertilized corn,
    from Fisher's Design of Experiments): two-sided statistic 24.0, exact p-value
    0.041259765625; one-sided 'greater' statistic 96.0, p 0.0206298828125."""
    d = [6, 8, 14, 16, 23, 24, 28, 29, 41, -48, 49, 56, 60, -67, 75]
    res = wilcoxon_signed_rank(d)
    assert res.statistic == 24.0
    assert res.pvalue == pytest.approx(0.041259765625, abs=1e-12)
    greater = wilcoxon_signed_rank(d, alternative="greater")
    assert greater.statistic == 96.0
    assert greater.pvalue == pytest.approx(0.0206298828125, abs=1e-12)
    # Hodges-Lehmann estimate: median of the 120 Walsh averages, computed independently.
    walsh = [(a + b) / 2 for i, a in enumerate(d) for b in d[i:]]
    assert res.estimate == pytest.approx(np.median(walsh))


def test_benjamini_hochberg_1995_example():
    """Benjamini & Hochberg (1995), section 4: at q = 0.05 the step-up procedure rejects
    the four smallest of the 15 p-values (p <= 0.0095), Bonferroni-type procedures only
    three. Adjusted values agree with scipy's independent false_discovery_control."""
    res = benjamini_hochberg(BH_1995, alpha=0.05)
    assert res.reject.tolist() == [True] * 4 + [False] * 11
    np.testing.assert_allclose(res.adjusted, stats.false_discovery_control(BH_1995))
    assert holm(BH_1995, alpha=0.05).reject.sum() == 3


def test_holm_by_hand_and_order_invariance():
    """Holm (1979) by hand: sorted p (0.01, 0.03, 0.04, 0.05, 0.20) times (5, 4, 3, 2, 1)
    = (0.05, 0.12, 0.12, 0.10, 0.20), made non-decreasing: (0.05, 0.12, 0.12, 0.12, 0.20)."""
    p = [0.01, 0.04, 0.03, 0.05, 0.20]
    res = holm(p)
    np.testing.assert_allclose(res.adjusted, [0.05, 0.12, 0.12, 0.12, 0.20])
    assert res.reject.tolist() == [True, False, False, False, False]  # 0.05 <= alpha
    assert holm(p, alpha=0.04).reject.sum() == 0
    assert holm(p, alpha=0.1).reject.tolist() == [True, False, False, False, False]
    perm = np.random.default_rng(0).permutation(15)
    shuffled = benjamini_hochberg(np.array(BH_1995)[perm])
    np.testing.assert_allclose(shuffled.adjusted, benjamini_hochberg(BH_1995).adjusted[perm])
    with pytest.raises(ValueError, match="pvalues"):
        holm([0.1, np.nan])
