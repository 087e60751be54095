"""Size distributions: two-sample tests, Wasserstein distance, and bootstrap intervals.

What these answer:

* :func:`ks_two_sample` and :func:`anderson_darling_k_sample`: whether two (or k) size
  distributions could be the same. Like any test, with thousands of particles they
  reject for differences too small to matter, and with a few dozen they miss large ones:
  read the *distance* and the intervals, not only the p-value. Anderson-Darling weighs
  the tails (the few large particles) more than Kolmogorov-Smirnov does.
* :func:`wasserstein_nm`: *how far* apart two distributions are, in nm: the average
  distance a particle's size must move to turn one histogram into the other (for two
  normal distributions of equal width it is the difference of the means).
* :func:`size_intervals`: mean, median, sigma and D10/D50/D90 with bootstrap intervals,
  by image when the images are named (particles of one image are not independent).

None of these says *why* two distributions differ (missed small particles, merged
neighbours, an edge offset): look at the detection scores and the Bland-Altman plot.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as _sps

from .bootstrap import Interval, bootstrap_interval

__all__ = [
    "DistributionTest",
    "ks_two_sample",
    "anderson_darling_k_sample",
    "wasserstein_nm",
    "size_intervals",
    "SIZE_STATISTICS",
]


@dataclass(frozen=True)
class DistributionTest:
    """Result of a test that samples share one distribution.

    Attributes
    ----------
    statistic : float
        KS D, or scipy's standardized Anderson-Darling statistic.
    pvalue : float
    method : str
    sizes : tuple of int
        Number of values in each sample.
    n_resamples : int
        Permutations behind the p-value (0 for exact/asymptotic p-values).
    """

    statistic: float
    pvalue: float
    method: str
    sizes: tuple[int, ...]
    n_resamples: int = 0


def _clean(values, name) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size < 2:
        raise ValueError(f"{name} needs at least 2 finite values, got {v.size}.")
    return v


def ks_two_sample(a, b, *, method: str = "auto") -> DistributionTest:
    """Two-sample Kolmogorov-Smirnov test (scipy; exact p-value for small samples).

    Parameters
    ----------
    a, b : array_like of float
        The two samples (e.g. diameters in nm); non-finite values are dropped.
    method : {"auto", "exact", "asymp"}, optional
        Passed to :func:`scipy.stats.ks_2samp`.
    """
    a, b = _clean(a, "a"), _clean(b, "b")
    res = _sps.ks_2samp(a, b, method=method)
    return DistributionTest(float(res.statistic), float(res.pvalue), "kolmogorov-smirnov",
                            (a.size, b.size))


def _ad_statistic(samples, variant):
    """scipy's standardized k-sample statistic, without its capped-p-value warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        try:
            res = _sps.anderson_ksamp(samples, variant=variant)
        except TypeError:  # scipy < 1.17 has no ``variant``
            if variant == "continuous":
                raise ValueError("variant='continuous' needs scipy >= 1.17.") from None
            res = _sps.anderson_ksamp(samples, midrank=variant == "midrank")
    return float(res.statistic)


def anderson_darling_k_sample(
    samples, *, n_resamples: int = 999, seed=0, variant: str = "midrank"
) -> DistributionTest:
    """k-sample Anderson-Darling test (Scholz & Stephens 1987) with a permutation p-value.

    Parameters
    ----------
    samples : sequence of array_like
        Two or more samples.
    n_resamples : int, optional
        Random permutations of the pooled values for the p-value (the asymptotic
        p-value of scipy is capped to [0.001, 0.25]; the permutation one is not).
    seed : int or numpy.random.Generator, optional
    variant : {"midrank", "right", "continuous"}, optional
        Statistic variant (midrank: Scholz & Stephens' A2akN, for ties).

    Returns
    -------
    DistributionTest
        ``statistic`` is scipy's standardized statistic ``(A2 - (k - 1)) / sigma``;
        ``pvalue = (1 + #{perm >= observed}) / (1 + n_resamples)``.
    """
    if len(samples) < 2:
        raise ValueError("samples must hold at least two samples.")
    samples = [_clean(s, f"samples[{i}]") for i, s in enumerate(samples)]
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    observed = _ad_statistic(samples, variant)
    pooled = np.concatenate(samples)
    cuts = np.cumsum([s.size for s in samples])[:-1]
    exceed = 0
    for _ in range(int(n_resamples)):
        perm = np.split(rng.permutation(pooled), cuts)
        exceed += _ad_statistic(perm, variant) >= observed - 1e-12
    pvalue = (1 + exceed) / (1 + int(n_resamples))
    return DistributionTest(observed, float(pvalue), "anderson-darling k-sample (permutation)",
                            tuple(s.size for s in samples), int(n_resamples))


def wasserstein_nm(a, b) -> float:
    """First Wasserstein (earth mover's) distance between two size samples, in their unit."""
    return float(_sps.wasserstein_distance(_clean(a, "a"), _clean(b, "b")))


def _d_quantile(q):
    return lambda v, axis=-1: np.quantile(v, q, axis=axis)


#: Statistics reported by :func:`size_intervals` (name -> function of an array, axis).
SIZE_STATISTICS = {
    "mean": lambda v, axis=-1: np.mean(v, axis=axis),
    "median": lambda v, axis=-1: np.median(v, axis=axis),
    "sigma": lambda v, axis=-1: np.std(v, axis=axis, ddof=1),
    "D10": _d_quantile(0.10),
    "D50": _d_quantile(0.50),
    "D90": _d_quantile(0.90),
}


def size_intervals(
    diameters_nm,
    groups=None,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    method: str = "percentile",
    seed=0,
) -> pd.DataFrame:
    """Mean, median, sigma and D10/D50/D90 of a size sample with bootstrap intervals.

    Parameters
    ----------
    diameters_nm : array_like of float
        Particle sizes (nm); non-finite values are dropped with their group.
    groups : array_like, optional
        The image of each particle; if given, whole images are resampled (cluster
        bootstrap), else particles.
    n_resamples, confidence, method, seed
        As in :func:`etem_helpers.stats.bootstrap.cluster_bootstrap`.

    Returns
    -------
    pandas.DataFrame
        One row per statistic: ``statistic``, ``estimate``, ``ci_low``, ``ci_high``,
        ``n``, ``n_groups``, ``method``, ``confidence`` (values in nm). D10/D50/D90 are
        number-weighted percentiles (numpy's linear interpolation).
    """
    d = np.asarray(diameters_nm, dtype=np.float64).ravel()
    g = np.arange(d.size) if groups is None else np.asarray(groups).ravel()
    if g.size != d.size:
        raise ValueError(f"groups has {g.size} entries for {d.size} diameters.")
    keep = np.isfinite(d)
    d, g = d[keep], g[keep]
    if d.size < 2:
        raise ValueError(f"need at least 2 finite diameters, got {d.size}.")
    codes, _ = pd.factorize(g, sort=True)
    order = np.argsort(codes, kind="stable")
    members = np.split(order, np.flatnonzero(np.diff(codes[order])) + 1)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    draws = rng.integers(0, len(members), size=(int(n_resamples), len(members)))
    resamples = [d[np.concatenate([members[k] for k in row])] for row in draws]
    rows = []
    for name, func in SIZE_STATISTICS.items():
        estimate = float(func(d))
        boot = np.array([func(r) for r in resamples])
        jack = None
        if method == "bca":
            jack = np.array([
                func(d[np.concatenate(members[:k] + members[k + 1:])])
                for k in range(len(members))
            ]) if len(members) > 1 else np.array([estimate])
        low, high = bootstrap_interval(estimate, boot, confidence=confidence, method=method,
                                       jackknife=jack)
        iv = Interval(estimate, low, high, confidence, d.size, len(members), method,
                      int(n_resamples))
        rows.append({"statistic": name, **{k: getattr(iv, k) for k in (
            "estimate", "ci_low", "ci_high", "n", "n_groups", "method", "confidence")}})
    return pd.DataFrame(rows)
