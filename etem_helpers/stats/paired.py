"""Paired tests and multiple-comparison corrections.

What these answer: whether a mean (t-test) or a location (Wilcoxon) difference between
paired measurements is exactly zero. With thousands of particles any real bias, however
small, gives p < 0.001; the p-value then says nothing about whether the bias *matters*.
Report the estimate and its interval (here and in :mod:`etem_helpers.stats.agreement`),
and use an equivalence test (:func:`etem_helpers.stats.agreement.tost`) to claim that two
methods agree. The tests also assume independent pairs: particles of the same image are
not, so test per-image means (or use the cluster bootstrap) when the images differ.

Holm controls the family-wise error rate (the chance of any false claim) under any
dependence; Benjamini-Hochberg controls the expected share of false claims among the
claims made (valid for independent or positively dependent tests).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as _sps

__all__ = [
    "PairedTestResult",
    "Correction",
    "paired_t_test",
    "wilcoxon_signed_rank",
    "holm",
    "benjamini_hochberg",
]


@dataclass(frozen=True)
class PairedTestResult:
    """Result of a paired test of ``x - y``.

    Attributes
    ----------
    statistic : float
        Test statistic (t for the t-test; the signed-rank statistic of
        :func:`scipy.stats.wilcoxon` for Wilcoxon).
    pvalue : float
        p-value for the chosen alternative.
    estimate : float
        Mean difference (t-test) or Hodges-Lehmann pseudo-median of the differences
        (Wilcoxon), in the units of the data.
    ci_low, ci_high : float
        Confidence interval of the mean difference (t-test); NaN for Wilcoxon.
    n : int
        Number of pairs used.
    df : float
        Degrees of freedom (t-test); NaN for Wilcoxon.
    method : str
        Name of the test.
    alternative : str
        ``"two-sided"``, ``"less"`` or ``"greater"``.
    """

    statistic: float
    pvalue: float
    estimate: float
    ci_low: float
    ci_high: float
    n: int
    df: float
    method: str
    alternative: str


def _paired_differences(x, y) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).ravel()
    if y is None:
        d = x
    else:
        y = np.asarray(y, dtype=np.float64).ravel()
        if x.shape != y.shape:
            raise ValueError(
                f"x has {x.size} values but y has {y.size}; pass paired measurements."
            )
        d = x - y
    d = d[np.isfinite(d)]
    if d.size < 2:
        raise ValueError(f"need at least 2 finite paired differences, got {d.size}.")
    return d


def paired_t_test(x, y=None, *, confidence=0.95, alternative="two-sided") -> PairedTestResult:
    """Paired Student t-test of the mean of ``x - y``.

    Parameters
    ----------
    x, y : array_like of float
        Paired measurements (same length); if ``y`` is None, ``x`` holds the
        differences. Pairs with a non-finite value are dropped.
    confidence : float, optional
        Level of the confidence interval of the mean difference. Default 0.95.
    alternative : {"two-sided", "less", "greater"}, optional

    Returns
    -------
    PairedTestResult
    """
    d = _paired_differences(x, y)
    res = _sps.ttest_1samp(d, 0.0, alternative=alternative)
    ci = res.confidence_interval(confidence_level=confidence)
    return PairedTestResult(
        statistic=float(res.statistic),
        pvalue=float(res.pvalue),
        estimate=float(d.mean()),
        ci_low=float(ci.low),
        ci_high=float(ci.high),
        n=int(d.size),
        df=float(res.df),
        method="paired t-test",
        alternative=alternative,
    )


def hodges_lehmann(d) -> float:
    """Median of the Walsh averages ``(d_i + d_j) / 2, i <= j`` (pseudo-median)."""
    d = np.asarray(d, dtype=np.float64)
    i, j = np.triu_indices(d.size)
    return float(np.median((d[i] + d[j]) / 2.0))


def wilcoxon_signed_rank(x, y=None, *, alternative="two-sided", method="auto") -> PairedTestResult:
    """Wilcoxon signed-rank test of ``x - y`` (scipy's implementation).

    Parameters
    ----------
    x, y : array_like of float
        Paired measurements; if ``y`` is None, ``x`` holds the differences.
    alternative : {"two-sided", "less", "greater"}, optional
    method : {"auto", "exact", "asymptotic"}, optional
        Passed to :func:`scipy.stats.wilcoxon` (exact for small samples without ties).

    Returns
    -------
    PairedTestResult
        ``estimate`` is the Hodges-Lehmann pseudo-median of the differences; zero
        differences are dropped by the test (Wilcoxon's convention).
    """
    d = _paired_differences(x, y)
    res = _sps.wilcoxon(d, alternative=alternative, method=method)
    return PairedTestResult(
        statistic=float(res.statistic),
        pvalue=float(res.pvalue),
        estimate=hodges_lehmann(d),
        ci_low=float("nan"),
        ci_high=float("nan"),
        n=int(d.size),
        df=float("nan"),
        method="Wilcoxon signed-rank",
        alternative=alternative,
    )


@dataclass(frozen=True)
class Correction:
    """Adjusted p-values of a family of tests.

    Attributes
    ----------
    pvalues : ndarray
        The raw p-values, in input order.
    adjusted : ndarray
        Adjusted p-values, in input order (compare with ``alpha``).
    reject : ndarray of bool
        ``adjusted <= alpha``.
    alpha : float
        Family-wise error rate (Holm) or false discovery rate (BH).
    method : str
        ``"holm"`` or ``"benjamini-hochberg"``.
    """

    pvalues: np.ndarray
    adjusted: np.ndarray
    reject: np.ndarray
    alpha: float
    method: str


def _check_pvalues(pvalues) -> np.ndarray:
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    if p.size == 0:
        raise ValueError("pvalues is empty.")
    if not np.all((p >= 0) & (p <= 1)):
        raise ValueError("pvalues must all lie in [0, 1] (no NaN); drop the missing tests first.")
    return p


def holm(pvalues, *, alpha=0.05) -> Correction:
    """Holm (1979) step-down adjustment (family-wise error rate).

    The i-th smallest of m p-values is multiplied by ``m - i + 1``; adjusted values
    are made non-decreasing in that order and capped at 1 (as R's ``p.adjust``).
    """
    p = _check_pvalues(pvalues)
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = p[order] * (m - np.arange(m))
    adjusted_sorted = np.minimum(np.maximum.accumulate(scaled), 1.0)
    adjusted = np.empty(m)
    adjusted[order] = adjusted_sorted
    return Correction(p, adjusted, adjusted <= alpha, float(alpha), "holm")


def benjamini_hochberg(pvalues, *, alpha=0.05) -> Correction:
    """Benjamini-Hochberg (1995) step-up adjustment (false discovery rate).

    The i-th smallest of m p-values is multiplied by ``m / i``; adjusted values are
    the running minimum from the largest down, capped at 1 (as R's ``p.adjust``).
    """
    p = _check_pvalues(pvalues)
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted_sorted = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    adjusted = np.empty(m)
    adjusted[order] = adjusted_sorted
    return Correction(p, adjusted, adjusted <= alpha, float(alpha), "benjamini-hochberg")
