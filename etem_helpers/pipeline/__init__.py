"""The one path a micrograph takes: :class:`Analyzer`, :func:`analyze`, :class:`AnalysisResult`,
and the classical baselines (Otsu, adaptive threshold) that return the same result type.
"""

from .analyzer import Analyzer, AnalyzerSettings, analyze
from .baselines import adaptive_threshold_watershed, otsu_watershed
from .result import AnalysisResult

__all__ = [
    "AnalysisResult",
    "Analyzer",
    "AnalyzerSettings",
    "adaptive_threshold_watershed",
    "analyze",
    "otsu_watershed",
]
