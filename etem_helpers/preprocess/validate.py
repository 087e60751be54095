"""Checks of the images given to the package: one place, one set of error types.

* :func:`check_image`: a 2-D finite real array, or an error that says what to do (defined in
  :mod:`etem_helpers.io`, the lowest layer, so that writing a file checks images the same way).
* :func:`read_input`: a file path or an array plus its pixel size, as every method takes them.
* :func:`has_contrast`: whether a frame has anything to find (blank, saturated and hot-pixel
  frames do not).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from etem_helpers.io import (
    ImageTooSmallError,
    InvalidPixelSizeError,
    Micrograph,
    NotAnImageError,
    as_path,
    check_image,
    read_micrograph,
    validate_pixel_size,
)

__all__ = [
    "MIN_CONTRAST_FRACTION",
    "MIN_IMAGE_SIDE_PX",
    "ImageTooSmallError",
    "check_image",
    "has_contrast",
    "read_input",
]

#: A frame has contrast when more than this fraction of its pixels differ from the rest.
MIN_CONTRAST_FRACTION = 0.02
#: Images analysed (:func:`read_input`) must be at least this many pixels on each side: a
#: smaller one holds too little context to find particles in (and once gave 0 silently).
MIN_IMAGE_SIDE_PX = 32
#: :func:`has_contrast` looks at about this many pixels (a regular subsample).
_CONTRAST_SAMPLE_PX = 1 << 16


def has_contrast(image: np.ndarray, *, min_fraction: float = MIN_CONTRAST_FRACTION) -> bool:
    """Whether an image has contrast to find particles in.

    A blank frame, a saturated one, or one whose only structure is a few hot or dead pixels
    or rows (fewer than ``min_fraction`` of the pixels) has none: its robust intensity range
    (the ``min_fraction / 2`` to ``1 - min_fraction / 2`` quantiles) is zero, so any
    normalisation turns it into a constant image and a network's answer would be
    meaningless.

    Parameters
    ----------
    image : numpy.ndarray
        2-D finite image.
    min_fraction : float
        Fraction (0–1) of pixels that must differ from the rest.

    Returns
    -------
    bool
        Measured on a regular subsample of about 2**16 pixels (fast on any image size).
    """
    image = np.asarray(image)
    step = max(1, int(np.sqrt(image.size / _CONTRAST_SAMPLE_PX)))
    sample = image[::step, ::step].astype(np.float64).ravel()
    if sample.size == 0:
        return False
    low, high = np.percentile(sample, [50.0 * min_fraction, 100.0 - 50.0 * min_fraction])
    return bool(high > low)


def read_input(image, pixel_size_nm: float | None = None, *, require_calibration: bool = True,
               ) -> tuple[np.ndarray, float | None, str, dict]:
    """An image and its calibration from a file path or from an array plus ``pixel_size_nm``.

    Parameters
    ----------
    image : numpy.ndarray or str or path-like or etem_helpers.io.Micrograph
        A 2-D real array, the path of a micrograph file (read with
        :func:`etem_helpers.io.read_micrograph`; its calibration is used), or what that
        function returned.
    pixel_size_nm : float, optional
        nm per pixel. Required for an array (1 nm/px is never assumed); overrides a file's.
    require_calibration : bool
        False: an array without ``pixel_size_nm`` or an uncalibrated file is returned with
        pixel size None (the caller calibrates otherwise, e.g. from a scale bar).

    Returns
    -------
    image : numpy.ndarray
        2-D finite float32 array.
    pixel_size_nm : float or None
    pixel_size_source : str
        ``"argument"``, ``"file:<where in the file>"`` or ``"none"``.
    file_info : dict
        ``path`` and ``format`` for a file, empty for an array.

    Raises
    ------
    ImageTooSmallError
        Fewer than :data:`MIN_IMAGE_SIDE_PX` pixels on a side (array or file).
    """
    if isinstance(image, bytes):
        image = as_path(image)
    if not isinstance(image, str | os.PathLike | Micrograph):
        if pixel_size_nm is None and not require_calibration:
            return check_image(image, min_side_px=MIN_IMAGE_SIDE_PX), None, "none", {}
        if pixel_size_nm is None:
            raise InvalidPixelSizeError(
                "pixel_size_nm is required when image is an array: pass pixel_size_nm=<nm per "
                "pixel> (from the file header or the scale bar), or pass the file path so the "
                "calibration is read from it. 1 nm/px is never assumed."
            )
        pixel_size_nm = validate_pixel_size(pixel_size_nm, argument="pixel_size_nm")
        return check_image(image, min_side_px=MIN_IMAGE_SIDE_PX), pixel_size_nm, "argument", {}
    if isinstance(image, Micrograph):
        micrograph = image if pixel_size_nm is None else image._replace(
            pixel_size_nm=validate_pixel_size(pixel_size_nm, argument="pixel_size_nm"),
            metadata={**image.metadata, "pixel_size_source": "argument"})
        return _from_micrograph(micrograph)
    try:
        micrograph = read_micrograph(image, pixel_size_nm=pixel_size_nm,
                                     require_calibration=require_calibration)
    except NotAnImageError as error:
        if "stack" not in str(error):
            raise
        raise NotAnImageError(
            f"{error} Analysis takes one 2-D image: read the frame you want with "
            "etem_helpers.io.read_micrograph(path, frame=...) and pass its image and "
            "pixel_size_nm."
        ) from error
    return _from_micrograph(micrograph)


def _from_micrograph(micrograph: Micrograph) -> tuple[np.ndarray, float, str, dict]:
    source = str(micrograph.metadata["pixel_size_source"])
    if source != "argument" and not source.startswith("file"):
        source = f"file:{source}"
    file_info: dict[str, Any] = {
        "path": micrograph.metadata.get("path"),
        "format": micrograph.metadata.get("format"),
    }
    name = f"the image in {micrograph.metadata.get('path')}"
    array = check_image(micrograph.image, name=name, min_side_px=MIN_IMAGE_SIDE_PX)
    if micrograph.pixel_size_nm is None:
        return array, None, "none", file_info
    return array, float(micrograph.pixel_size_nm), source, file_info
