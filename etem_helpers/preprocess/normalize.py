"""Intensity normalisation: one implementation for training, notebooks and inference.

:func:`normalize_image` is the only place where intensities are normalised. A model stores how
its training images were normalised as a :class:`Normalization` (plain data in the checkpoint),
and :meth:`Normalization.apply` gives exactly the same values at inference.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["METHODS", "Normalization", "normalize_image"]

#: The normalisation methods :func:`normalize_image` knows.
METHODS = ("percentile", "zscore")
#: Names under which checkpoints record this function (older files used the first).
_FUNCTION_NAMES = ("etem_helpers.data.normalize_image", "etem_helpers.preprocess.normalize_image")
_ROWS_PER_CHUNK = 256


def _row_chunks(n_rows: int) -> Iterator[slice]:
    """Slices of at most ``_ROWS_PER_CHUNK`` rows covering ``n_rows`` (bounded temporaries)."""
    for start in range(0, n_rows, _ROWS_PER_CHUNK):
        yield slice(start, min(start + _ROWS_PER_CHUNK, n_rows))


def _check_settings(method: str, low_percentile: float, high_percentile: float) -> None:
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not known; use 'percentile' or 'zscore'.")
    if not 0.0 <= low_percentile < high_percentile <= 100.0:
        raise ValueError(
            f"Need 0 <= low_percentile < high_percentile <= 100, got low_percentile="
            f"{low_percentile} and high_percentile={high_percentile}."
        )


def _normalize_masked(values: np.ndarray, finite: np.ndarray, method, low_p, high_p,
                      dtype=np.float32) -> np.ndarray:
    """Normalisation of an image with non-finite pixels (set to 0; statistics of the rest)."""
    out = np.zeros(values.shape, dtype=dtype)
    if not finite.any():
        return out
    valid = values[finite].astype(np.float64)
    if method == "percentile":
        low, high = np.percentile(valid, [low_p, high_p])
        if high - low > 0:
            out[finite] = np.clip((valid - low) / (high - low), 0.0, 1.0)
        return out
    median = np.median(valid)
    spread = 1.4826 * np.median(np.abs(valid - median))
    if not spread > 0:
        spread = float(np.std(valid))
    if spread > 0:
        out[finite] = (valid - median) / spread
    return out


def _robust_spread(image: np.ndarray, work: np.ndarray, median: float) -> float:
    """1.4826 × MAD, or the standard deviation when more than half the pixels share a value."""
    width = image.shape[1]
    for rows in _row_chunks(image.shape[0]):
        work[rows.start * width : rows.stop * width] = np.abs(
            image[rows].astype(np.float64) - median
        ).ravel()
    spread = 1.4826 * np.median(work, overwrite_input=True)
    if spread > 0:
        return float(spread)
    # A flat support with a few particles: fall back to the standard deviation.
    for rows in _row_chunks(image.shape[0]):
        work[rows.start * width : rows.stop * width] = image[rows].astype(np.float64).ravel()
    return float(np.std(work))


def normalize_image(
    image: np.ndarray,
    *,
    method: str = "percentile",
    low_percentile: float = 0.5,
    high_percentile: float = 99.5,
    dtype=np.float32,
) -> np.ndarray:
    """Normalise intensities robustly, ignoring a few extreme pixels.

    Detectors produce hot pixels (cosmic rays, X-rays: values many times the mean) and dead
    pixels (zeros). A min-max normalisation would let one hot pixel squash the whole image
    into a narrow band near 0; the mean and standard deviation are pulled the same way.
    Percentiles and the median/MAD ignore such outliers, so the same structure gets the same
    normalised values whatever a handful of bad pixels do.

    Parameters
    ----------
    image : numpy.ndarray
        Image of any real dtype (counts or arbitrary units). Non-finite pixels (NaN, inf)
        are ignored for the statistics and set to 0 in the output.
    method : {"percentile", "zscore"}
        ``"percentile"``: map the ``low_percentile`` value to 0 and the ``high_percentile``
        value to 1, then clip to [0, 1]. ``"zscore"``: subtract the median and divide by
        1.4826 × MAD (the standard deviation for Gaussian data); not clipped.
    low_percentile, high_percentile : float
        Percentiles (0–100) used by ``"percentile"``.
    dtype : {numpy.float32, numpy.float64}
        Output type (the statistics are computed in float64 either way).

    Returns
    -------
    numpy.ndarray
        ``dtype`` array (float32 by default) with the shape of ``image``. A constant image gives zeros (no
        division by zero, no NaN).

    Notes
    -----
    Memory: a finite 2-D image needs one float64 copy of its pixels (for the percentiles or
    the median) and row chunks of temporaries, about 16 bytes per pixel in all.
    """
    _check_settings(method, low_percentile, high_percentile)
    if np.dtype(dtype) not in (np.float32, np.float64):
        raise ValueError(f"dtype={dtype!r} must be numpy.float32 or numpy.float64.")
    image = np.asarray(image)
    finite = np.isfinite(image)
    if image.ndim != 2 or not finite.all():
        return _normalize_masked(image, finite, method, low_percentile, high_percentile, dtype)
    out = np.zeros(image.shape, dtype=dtype)
    if image.size == 0:
        return out
    work = image.astype(np.float64).ravel()
    if method == "percentile":
        low, high = np.percentile(work, [low_percentile, high_percentile], overwrite_input=True)
        del work
        scale = high - low
        if not scale > 0:
            return out
        for rows in _row_chunks(image.shape[0]):
            out[rows] = np.clip((image[rows].astype(np.float64) - low) / scale, 0.0, 1.0)
        return out
    median = np.median(work, overwrite_input=True)
    spread = _robust_spread(image, work, median)
    del work
    if not spread > 0:
        return out
    for rows in _row_chunks(image.shape[0]):
        out[rows] = (image[rows].astype(np.float64) - median) / spread
    return out


@dataclass(frozen=True)
class Normalization:
    """How a model's images are normalised: the settings of :func:`normalize_image`, as data.

    Attributes
    ----------
    method : {"percentile", "zscore"}
    low_percentile, high_percentile : float
        Percentiles (0–100) for ``"percentile"``.
    """

    method: str = "percentile"
    low_percentile: float = 0.5
    high_percentile: float = 99.5

    def __post_init__(self) -> None:
        _check_settings(self.method, self.low_percentile, self.high_percentile)

    @classmethod
    def from_dict(cls, settings: Mapping[str, Any]) -> Normalization:
        """Read the settings stored in a checkpoint (``ValueError`` names what is wrong)."""
        if not isinstance(settings, Mapping):
            raise ValueError(f"normalization must be a dict of settings, got {settings!r}.")
        function = settings.get("function", _FUNCTION_NAMES[-1])
        unknown = sorted(set(settings) - {"function", *cls.__dataclass_fields__})
        if unknown or function not in _FUNCTION_NAMES:
            raise ValueError(
                f"normalization {dict(settings)} has settings this version cannot reproduce "
                f"({unknown or function}); upgrade etem_helpers or re-save the model with "
                "etem_helpers.preprocess.Normalization settings."
            )
        return cls(**{k: v for k, v in settings.items() if k != "function"})

    def to_dict(self) -> dict[str, Any]:
        """Plain settings (with the function's name) to store in a checkpoint."""
        return {"function": _FUNCTION_NAMES[-1], **asdict(self)}

    def apply(self, image: np.ndarray) -> np.ndarray:
        """:func:`normalize_image` with these settings (float32, shape of ``image``)."""
        return normalize_image(image, **asdict(self))
