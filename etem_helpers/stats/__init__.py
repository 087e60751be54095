"""Statistics a metrologist would sign: agreement, detection and size distributions.

Notes for notebook 06: what each statistic answers, and what it does not.

* **Detection scores with intervals** (:func:`detection_intervals`): precision, recall and F1
  pooled over images, with an image-level bootstrap interval. Particles in one image
  share focus, dose and background, so the image is the independent unit; treating
  particles as independent gives intervals that are too narrow. Does not say whether the
  found particles are measured well.
* **Paired tests** (:func:`paired_t_test`, :func:`wilcoxon_signed_rank`): is a mean
  (location) difference exactly zero? With 10^4 particles any bias, however small, gives
  p < 0.001, so "p < 0.001" says only that the bias is not exactly zero, not that it
  matters. Correct for many tests with :func:`holm` (family-wise) or
  :func:`benjamini_hochberg` (false discovery rate).
* **Bland-Altman** (:func:`bland_altman`): the size of the differences for one particle
  (bias and 95 % limits of agreement, each with a confidence interval; absolute or in
  percent; proportional-bias slope). The question a user has: "how far off can one
  particle be?"
* **Passing-Bablok / Deming** (:func:`passing_bablok`, :func:`deming`): is the difference
  constant (intercept) or proportional (slope, e.g. a calibration error)? Deming needs
  the error-variance ratio stated, not fitted.
* **Equivalence** (:func:`tost`): is the mean difference inside a tolerance stated in
  advance (e.g. +-1 pixel)? This, not a non-significant t-test, supports "agrees".
* **Size distributions** (:func:`ks_two_sample`, :func:`anderson_darling_k_sample`,
  :func:`wasserstein_nm`, :func:`size_intervals`): do the distributions differ (tests),
  by how much in nm (Wasserstein), and how well are mean, median, sigma, D10/D50/D90
  known (bootstrap intervals).
* **Uncertainty budget** (:func:`uncertainty_budget`): how well the reported mean
  diameter is known and which component (calibration, edge definition, counting,
  per-particle) dominates.
* **Comparison runner and report** (:func:`compare_on_dataset`, :func:`compare_methods`,
  :func:`summarize_comparison`, :func:`write_report`): one tidy table of all methods
  against a reference, and a folder of CSV, PNG and Markdown a user can keep.

None of these replaces looking at the plots: a bias that depends on size, a few merged
particles or one bad image show up there first.
"""

from .agreement import (
    BlandAltmanResult,
    RegressionResult,
    TostResult,
    bland_altman,
    deming,
    passing_bablok,
    tost,
)
from .bootstrap import (
    DetectionScores,
    Interval,
    bootstrap_interval,
    cluster_bootstrap,
    detection_intervals,
    ratio_interval,
)
from .budget import uncertainty_budget
from .compare import (
    ComparisonImage,
    ComparisonTables,
    compare_methods,
    equivalence_table,
    summarize_comparison,
    write_report,
)
from .distributions import (
    DistributionTest,
    anderson_darling_k_sample,
    ks_two_sample,
    size_intervals,
    wasserstein_nm,
)
from .paired import (
    Correction,
    PairedTestResult,
    benjamini_hochberg,
    holm,
    paired_t_test,
    wilcoxon_signed_rank,
)
from .runner import METHOD_BUILDERS, compare_on_dataset, default_methods

__all__ = [
    "METHOD_BUILDERS",
    "BlandAltmanResult",
    "ComparisonImage",
    "ComparisonTables",
    "Correction",
    "DetectionScores",
    "DistributionTest",
    "Interval",
    "PairedTestResult",
    "RegressionResult",
    "TostResult",
    "anderson_darling_k_sample",
    "benjamini_hochberg",
    "bland_altman",
    "bootstrap_interval",
    "cluster_bootstrap",
    "compare_methods",
    "compare_on_dataset",
    "default_methods",
    "equivalence_table",
    "deming",
    "detection_intervals",
    "ratio_interval",
    "holm",
    "ks_two_sample",
    "paired_t_test",
    "passing_bablok",
    "size_intervals",
    "summarize_comparison",
    "tost",
    "uncertainty_budget",
    "wasserstein_nm",
    "wilcoxon_signed_rank",
    "write_report",
]
