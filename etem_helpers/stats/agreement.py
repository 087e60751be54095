"""Agreement between two measurement methods: Bland-Altman, Passing-Bablok, Deming, TOST.

What each answers, and what it does not:

* **Bland-Altman** (:func:`bland_altman`): how far apart two methods are for one
  particle: the bias (mean difference) and the 95 % limits of agreement, between which
  about 95 % of the differences of *new* particles fall, each with a confidence interval.
  It does not say which method is right, and the limits assume the differences are
  roughly normal with a spread that does not change with size (check the plot and the
  proportional-bias slope; use ``relative=True`` when the spread grows with size).
* **Passing-Bablok** (:func:`passing_bablok`): a straight line ``y = a + b x`` robust to
  outliers and symmetric in the two methods. A slope CI excluding 1 means a proportional
  difference (e.g. a calibration error), an intercept CI excluding 0 a constant one (e.g.
  an edge offset). Needs a linear relation (cusum test) and positively correlated data.
* **Deming** (:func:`deming`): the least-squares line when both methods have errors with
  a *known* ratio of error variances; the ratio must be stated, not fitted.
* **TOST** (:func:`tost`): whether the mean difference is *inside* a tolerance stated
  beforehand (e.g. +-1 pixel). Failing to reject a t-test is not evidence of agreement;
  a TOST rejection is.

All of these treat the pairs as independent. Particles of one image are not: for
intervals that respect that, bootstrap by image (:mod:`etem_helpers.stats.bootstrap`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as _sps

__all__ = [
    "BlandAltmanResult",
    "RegressionResult",
    "TostResult",
    "bland_altman",
    "passing_bablok",
    "deming",
    "tost",
]


def _paired_arrays(x, y, *, names=("x", "y"), min_n=3) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(
            f"{names[0]} has {x.size} values but {names[1]} has {y.size}; pass one value "
            "per particle for each method, in the same order."
        )
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size < min_n:
        raise ValueError(f"need at least {min_n} complete pairs, got {x.size}.")
    return x, y


def _check_level(value, name) -> float:
    value = float(value)
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {value!r}.")
    return value


# ---------------------------------------------------------------------------------------
# Bland-Altman


@dataclass(frozen=True)
class BlandAltmanResult:
    """Bias and limits of agreement of ``measured - reference``.

    Attributes
    ----------
    n : int
        Number of pairs.
    bias : float
        Mean difference (units of the data, or percent if ``relative``).
    bias_ci : tuple of float
        t-based confidence interval of the bias.
    sd : float
        Standard deviation of the differences (ddof=1).
    loa_low, loa_high : float
        Limits of agreement ``bias -/+ z * sd``.
    loa_low_ci, loa_high_ci : tuple of float
        Confidence intervals of each limit (method in ``ci_method``).
    z : float
        Multiplier of the limits (1.96 for 95 % limits).
    confidence : float
        Level of the confidence intervals.
    ci_method : str
        ``"exact"``, ``"approximate"`` or ``"1986"``.
    relative : bool
        Differences in percent of the pair mean.
    proportional_slope : float
        Slope of the differences regressed on the pair means (0 without
        proportional bias), with ``proportional_slope_ci`` and ``proportional_pvalue``.
    means, differences : ndarray
        The points of the Bland-Altman plot.
    """

    n: int
    bias: float
    bias_ci: tuple[float, float]
    sd: float
    loa_low: float
    loa_high: float
    loa_low_ci: tuple[float, float]
    loa_high_ci: tuple[float, float]
    z: float
    confidence: float
    ci_method: str
    relative: bool
    proportional_slope: float
    proportional_slope_ci: tuple[float, float]
    proportional_pvalue: float
    means: np.ndarray
    differences: np.ndarray


def _loa_ci(bias, sd, n, z, confidence, ci_method):
    """Confidence intervals of the lower and upper limit of agreement."""
    alpha = 1.0 - confidence
    if ci_method == "exact":
        # Carkeet (2015): bias + k s is a normal percentile; its exact limits are
        # one-sided tolerance factors from the noncentral t with nc = z sqrt(n).
        nc = z * np.sqrt(n)
        q = _sps.nct.ppf([alpha / 2, 1 - alpha / 2], df=n - 1, nc=nc) / np.sqrt(n)
        upper = (bias + q[0] * sd, bias + q[1] * sd)
        lower = (bias - q[1] * sd, bias - q[0] * sd)
        return lower, upper
    if ci_method == "approximate":  # Bland & Altman (1999), eq. under section 2
        se = sd * np.sqrt(1.0 / n + z**2 / (2.0 * (n - 1)))
    elif ci_method == "1986":  # Bland & Altman (1986): SE ~ sqrt(3 s^2 / n)
        se = sd * np.sqrt(3.0 / n)
    else:
        raise ValueError(
            f"ci_method must be 'exact', 'approximate' or '1986', got {ci_method!r}."
        )
    t = _sps.t.ppf(1 - alpha / 2, df=n - 1)
    low, high = bias - z * sd, bias + z * sd
    return (low - t * se, low + t * se), (high - t * se, high + t * se)


def _proportional_bias(means, d, confidence) -> tuple[float, tuple[float, float], float]:
    """OLS slope of the differences on the means, its t interval and p-value."""
    nan = float("nan")
    if np.ptp(means) == 0:  # all pairs of one size: no slope to estimate
        return nan, (nan, nan), nan
    reg = _sps.linregress(means, d)
    t = _sps.t.ppf(1 - (1 - confidence) / 2, df=means.size - 2)
    ci = (float(reg.slope - t * reg.stderr), float(reg.slope + t * reg.stderr))
    return float(reg.slope), ci, float(reg.pvalue)


def bland_altman(
    measured,
    reference,
    *,
    z: float = 1.96,
    confidence: float = 0.95,
    ci_method: str = "exact",
    relative: bool = False,
) -> BlandAltmanResult:
    """Bland-Altman bias and limits of agreement with confidence intervals.

    Parameters
    ----------
    measured, reference : array_like of float
        Paired values (e.g. diameters in nm of matched particles); the difference is
        ``measured - reference``. Pairs with a non-finite value are dropped.
    z : float, optional
        Multiplier of the SD for the limits: 1.96 for 95 % limits (Bland & Altman's
        1986 paper used 2).
    confidence : float, optional
        Level of the confidence intervals of the bias and the limits. Default 0.95.
    ci_method : {"exact", "approximate", "1986"}, optional
        Intervals of the limits: ``"exact"`` uses the noncentral t distribution
        (Carkeet 2015; exact for normal differences), ``"approximate"`` the
        Bland & Altman (1999) standard error ``s sqrt(1/n + z^2 / (2 (n - 1)))``,
        ``"1986"`` the cruder ``s sqrt(3 / n)`` of the 1986 paper. Each with t(n-1).
    relative : bool, optional
        Use percent differences ``100 (m - r) / ((m + r) / 2)``, for spreads that grow
        with size.

    Returns
    -------
    BlandAltmanResult
    """
    confidence = _check_level(confidence, "confidence")
    m, r = _paired_arrays(measured, reference, names=("measured", "reference"))
    means = (m + r) / 2.0
    if relative:
        if np.any(means == 0):
            raise ValueError("relative=True needs pair means that are not zero.")
        d = 100.0 * (m - r) / means
    else:
        d = m - r
    n = d.size
    bias, sd = float(d.mean()), float(d.std(ddof=1))
    t = _sps.t.ppf(1 - (1 - confidence) / 2, df=n - 1)
    half = t * sd / np.sqrt(n)
    low_ci, high_ci = _loa_ci(bias, sd, n, float(z), confidence, ci_method)
    slope, slope_ci, slope_p = _proportional_bias(means, d, confidence)
    return BlandAltmanResult(
        n=n,
        bias=bias,
        bias_ci=(bias - half, bias + half),
        sd=sd,
        loa_low=bias - z * sd,
        loa_high=bias + z * sd,
        loa_low_ci=tuple(float(v) for v in low_ci),
        loa_high_ci=tuple(float(v) for v in high_ci),
        z=float(z),
        confidence=confidence,
        ci_method=ci_method,
        relative=bool(relative),
        proportional_slope=slope,
        proportional_slope_ci=slope_ci,
        proportional_pvalue=slope_p,
        means=means,
        differences=d,
    )


# ---------------------------------------------------------------------------------------
# Regression of one method on the other


@dataclass(frozen=True)
class RegressionResult:
    """A method-comparison line ``y = intercept + slope * x``.

    Attributes
    ----------
    slope, intercept : float
    slope_ci, intercept_ci : tuple of float
        Confidence intervals at ``confidence``.
    n : int
        Number of pairs used.
    confidence : float
    method : str
        ``"passing-bablok"`` or ``"deming"``.
    ci_method : str
        ``"analytical"`` (Passing-Bablok ranks) or ``"jackknife"``.
    error_ratio : float
        Deming only: the stated ratio of error variances ``var(x err) / var(y err)``.
    linearity_statistic, linearity_pvalue : float
        Passing-Bablok only: cusum statistic of the linearity test and its
        asymptotic (Kolmogorov) p-value; a small p-value means *not* linear.
    """

    slope: float
    intercept: float
    slope_ci: tuple[float, float]
    intercept_ci: tuple[float, float]
    n: int
    confidence: float
    method: str
    ci_method: str
    error_ratio: float = float("nan")
    linearity_statistic: float = float("nan")
    linearity_pvalue: float = float("nan")


def _pairwise_slopes(x, y) -> np.ndarray:
    """Sorted Passing-Bablok slopes: 0/0 dropped, x ties give +-inf, -1 dropped."""
    i, j = np.triu_indices(x.size, k=1)
    dx = x[j] - x[i]
    dy = y[j] - y[i]
    keep = (dx != 0) | (dy != 0)
    dx, dy = dx[keep], dy[keep]
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(dx != 0, dy / np.where(dx != 0, dx, 1.0), np.sign(dy) * np.inf)
    s = s[s != -1.0]
    return np.sort(s)


def _shifted_median(s, k, slope_measure) -> float:
    n = s.size
    if n % 2 == 1:
        return float(s[(n + 1) // 2 + k - 1])
    a, b = s[n // 2 + k - 1], s[n // 2 + k]
    if slope_measure == "radian":
        return float(np.tan((np.arctan(a) + np.arctan(b)) / 2.0))
    return float((a + b) / 2.0)


def _cusum_linearity(x, y, slope, intercept) -> tuple[float, float]:
    """Passing & Bablok (1983) cusum test of linearity: (statistic, p-value)."""
    resid = y - (intercept + slope * x)
    above, below = resid > 0, resid < 0
    n_above, n_below = int(above.sum()), int(below.sum())
    if n_above == 0 or n_below == 0:
        return float("nan"), float("nan")
    score = np.where(above, np.sqrt(n_below / n_above), 0.0)
    score = np.where(below, -np.sqrt(n_above / n_below), score)
    position = (y + x / slope - intercept) / np.sqrt(1.0 + 1.0 / slope**2)
    cusum = np.cumsum(score[np.argsort(position, kind="stable")])
    statistic = float(np.max(np.abs(cusum)) / np.sqrt(n_below + 1))
    return statistic, float(_sps.kstwobign.sf(statistic))


def passing_bablok(
    x, y, *, confidence: float = 0.95, slope_measure: str = "tangent"
) -> RegressionResult:
    """Passing-Bablok regression of ``y`` (test method) on ``x`` (reference method).

    Implements Passing & Bablok (1983), J. Clin. Chem. Clin. Biochem. 21:709-720: the
    slope is the median of all pairwise slopes shifted by the number K of slopes below
    -1 (slopes of exactly -1 and 0/0 pairs dropped), the intercept the median of
    ``y - b x``; the slope CI takes the ranks ``M1 = round((N - C) / 2)`` and
    ``M2 = N - M1 + 1`` (shifted by K) with ``C = z sqrt(n (n - 1)(2 n + 5) / 18)``,
    and the intercept CI is ``median(y - b_upper x)`` to ``median(y - b_lower x)``.

    Parameters
    ----------
    x, y : array_like of float
        Paired values; pairs with a non-finite value are dropped.
    confidence : float, optional
        Level of the intervals. Default 0.95.
    slope_measure : {"tangent", "radian"}, optional
        For an even number of slopes, average the two central slopes (``"tangent"``,
        the original) or their angles (``"radian"``, the default of R's ``mcr``).

    Returns
    -------
    RegressionResult
        With the cusum linearity statistic and p-value (p < 0.05: not linear).
    """
    confidence = _check_level(confidence, "confidence")
    if slope_measure not in ("tangent", "radian"):
        raise ValueError(f"slope_measure must be 'tangent' or 'radian', got {slope_measure!r}.")
    x, y = _paired_arrays(x, y)
    n = x.size
    s = _pairwise_slopes(x, y)
    n_slopes = s.size
    k = int(np.sum(s < -1))
    slope = _shifted_median(s, k, slope_measure)
    intercept = float(np.median(y - slope * x))
    c = _sps.norm.ppf(1 - (1 - confidence) / 2) * np.sqrt(n * (n - 1) * (2 * n + 5) / 18.0)
    m1 = int(np.floor((n_slopes - c) / 2.0 + 0.5))
    m2 = n_slopes - m1 + 1
    lo = float(s[m1 + k - 1]) if 1 <= m1 + k <= n_slopes else float("nan")
    hi = float(s[m2 + k - 1]) if 1 <= m2 + k <= n_slopes else float("nan")
    intercept_ci = (float(np.median(y - hi * x)), float(np.median(y - lo * x)))
    lin_stat, lin_p = _cusum_linearity(x, y, slope, intercept)
    return RegressionResult(
        slope=slope,
        intercept=intercept,
        slope_ci=(lo, hi),
        intercept_ci=intercept_ci,
        n=n,
        confidence=confidence,
        method="passing-bablok",
        ci_method="analytical",
        linearity_statistic=lin_stat,
        linearity_pvalue=lin_p,
    )


def _deming_fit(x, y, error_ratio) -> tuple[float, float]:
    """Deming slope and intercept for ``error_ratio = var(x error) / var(y error)``."""
    xm, ym = x.mean(), y.mean()
    u = np.sum((x - xm) ** 2)
    q = np.sum((y - ym) ** 2)
    p = np.sum((x - xm) * (y - ym))
    lam = error_ratio
    if p == 0:
        raise ValueError("x and y are uncorrelated; the Deming line is undefined.")
    # Linnet (1993), Clin. Chem. 39:424, with lambda = var(x error) / var(y error).
    slope = ((lam * q - u) + np.sqrt((u - lam * q) ** 2 + 4.0 * lam * p**2)) / (2.0 * lam * p)
    return float(slope), float(ym - slope * xm)


def deming(x, y, *, error_ratio: float, confidence: float = 0.95) -> RegressionResult:
    """Deming regression of ``y`` on ``x`` with a stated error-variance ratio.

    Parameters
    ----------
    x, y : array_like of float
        Paired values; pairs with a non-finite value are dropped.
    error_ratio : float
        ``var(error of x) / var(error of y)``, > 0, as ``error.ratio`` in R's ``mcr``
        (1 for methods equally precise; small when x is the far more precise method,
        which tends to ordinary least squares of y on x).
    confidence : float, optional
        Level of the jackknife intervals. Default 0.95.

    Returns
    -------
    RegressionResult
        Intervals: estimate +- t(1 - alpha/2, n - 2) x leave-one-out jackknife
        standard error (Linnet 1990), as in ``mcr``'s ``method.ci="jackknife"``.
    """
    confidence = _check_level(confidence, "confidence")
    error_ratio = float(error_ratio)
    if not (np.isfinite(error_ratio) and error_ratio > 0):
        raise ValueError(
            f"error_ratio must be a finite number > 0 (var(x error) / var(y error)); got "
            f"{error_ratio!r}. State it from replicate measurements; do not guess."
        )
    x, y = _paired_arrays(x, y)
    n = x.size
    slope, intercept = _deming_fit(x, y, error_ratio)
    keep = ~np.eye(n, dtype=bool)
    loo = np.array([_deming_fit(x[keep[i]], y[keep[i]], error_ratio) for i in range(n)])
    se = np.sqrt((n - 1) / n * np.sum((loo - loo.mean(axis=0)) ** 2, axis=0))
    t = _sps.t.ppf(1 - (1 - confidence) / 2, df=n - 2)
    return RegressionResult(
        slope=slope,
        intercept=intercept,
        slope_ci=(slope - t * se[0], slope + t * se[0]),
        intercept_ci=(intercept - t * se[1], intercept + t * se[1]),
        n=n,
        confidence=confidence,
        method="deming",
        ci_method="jackknife",
        error_ratio=error_ratio,
    )


# ---------------------------------------------------------------------------------------
# Equivalence


@dataclass(frozen=True)
class TostResult:
    """Two one-sided t-tests of the mean difference against a margin.

    Attributes
    ----------
    estimate : float
        Mean difference ``measured - reference``.
    ci_low, ci_high : float
        The ``1 - 2 alpha`` confidence interval (equivalence iff it lies inside the
        margin).
    margin_low, margin_high : float
        The equivalence margin.
    pvalue_low, pvalue_high : float
        p-values of H0: mean <= margin_low and H0: mean >= margin_high.
    pvalue : float
        ``max(pvalue_low, pvalue_high)``.
    equivalent : bool
        ``pvalue < alpha``.
    alpha : float
    n : int
    """

    estimate: float
    ci_low: float
    ci_high: float
    margin_low: float
    margin_high: float
    pvalue_low: float
    pvalue_high: float
    pvalue: float
    equivalent: bool
    alpha: float
    n: int


def _group_means(d, groups) -> np.ndarray:
    """Mean difference of each group (image), groups in sorted order."""
    g = np.asarray(groups).ravel()
    if g.size != d.size:
        raise ValueError(f"groups has {g.size} entries for {d.size} differences.")
    keep = np.isfinite(d)
    frame = pd.DataFrame({"d": d[keep], "g": g[keep]})
    return frame.groupby("g", sort=True)["d"].mean().to_numpy()


def tost(measured, reference=None, *, margin, alpha: float = 0.05, groups=None) -> TostResult:
    """Equivalence test (Schuirmann's two one-sided t-tests) of a mean difference.

    Parameters
    ----------
    measured, reference : array_like of float
        Paired values; if ``reference`` is None, ``measured`` holds the differences.
    margin : float or (float, float)
        Equivalence margin in the units of the data: ``m`` means ``(-m, m)``. State
        it before looking at the data (e.g. one pixel in nm, or the expanded
        uncertainty of the reference).
    alpha : float, optional
        Level of each one-sided test. Default 0.05 (a 90 % interval).
    groups : array_like, optional
        The image of each pair. If given, the test runs on the per-image mean
        differences (``n`` = number of images, each image weighted equally), so that
        particles of one image are not counted as independent evidence.

    Returns
    -------
    TostResult
    """
    alpha = _check_level(alpha, "alpha")
    if np.ndim(margin) == 0:
        low, high = -abs(float(margin)), abs(float(margin))
    else:
        low, high = (float(v) for v in margin)
    if not low < high:
        raise ValueError(f"margin must give low < high, got ({low}, {high}).")
    if reference is None:
        d = np.asarray(measured, dtype=np.float64).ravel()
    else:
        m = np.asarray(measured, dtype=np.float64).ravel()
        r = np.asarray(reference, dtype=np.float64).ravel()
        if m.shape != r.shape:
            raise ValueError(f"measured has {m.size} values but reference has {r.size}.")
        d = m - r
    d = _group_means(d, groups) if groups is not None else d[np.isfinite(d)]
    n = d.size
    if n < 2:
        raise ValueError(f"need at least 2 differences, got {n}.")
    mean, se = float(d.mean()), float(d.std(ddof=1) / np.sqrt(n))
    df = n - 1
    with np.errstate(divide="ignore", invalid="ignore"):  # se 0: identical differences
        p_low = float(_sps.t.sf(np.float64(mean - low) / se, df))
        p_high = float(_sps.t.cdf(np.float64(mean - high) / se, df))
    t = _sps.t.ppf(1 - alpha, df)
    p = max(p_low, p_high)
    return TostResult(
        estimate=mean,
        ci_low=mean - t * se,
        ci_high=mean + t * se,
        margin_low=low,
        margin_high=high,
        pvalue_low=p_low,
        pvalue_high=p_high,
        pvalue=p,
        equivalent=bool(p < alpha),
        alpha=alpha,
        n=n,
    )
