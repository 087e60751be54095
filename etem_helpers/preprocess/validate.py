"""Checks of the images given to the package: one place, one set of error types.

* :func:`check_image`: a 2-D finite real array, or an error that says what to do.
* :func:`read_input`: a file path or an array plus its pixel size, as every method takes them.
* :func:`has_contrast`: whether a frame has anything to find (blank, saturated and hot-pixel
  frames do not).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from etem_helpers.io import (
    EmptyImageError,
    InvalidPixelSizeError,
    InvalidPixelValuesError,
    NotAnImageError,
    read_micrograph,
    validate_pixel_size,
)
from etem_helpers.io.micrograph import _float32_overflow_message

__all__ = [
    "MIN_CONTRAST_FRACTION",
    "MIN_IMAGE_SIDE_PX",
    "ImageTooSmallError",
    "check_image",
    "has_contrast",
    "read_input",
]

#: A frame has contrast when more than this fraction of its pixels differ from the rest.
MIN_CONTRAST_FRACTION = 0.01
#: Images analysed (:func:`read_input`) must be at least this many pixels on each side: a
#: smaller one holds too little context to find particles in (and once gave 0 silently).
MIN_IMAGE_SIDE_PX = 32
#: :func:`has_contrast` looks at about this many pixels (a regular subsample).
_CONTRAST_SAMPLE_PX = 1 << 18


class ImageTooSmallError(EmptyImageError):
    """An image with fewer than :data:`MIN_IMAGE_SIDE_PX` pixels on a side."""


def check_image(
    image, *, name: str = "image", min_side_px: int = 1, dtype=np.float32
) -> np.ndarray:
    """Return a 2-D finite float32 array or raise an error that says what to do.

    Parameters
    ----------
    image : array-like
        A grey-level micrograph (any real dtype).
    name : str
        The argument's name, used in the messages.
    min_side_px : int
        Smallest number of rows and of columns accepted.
    dtype : {numpy.float32, numpy.float64}
        Type of the returned array (float32, in which the pipeline works, by default).

    Returns
    -------
    numpy.ndarray
        C-contiguous ``dtype`` copy (or the array itself when it already is one).

    Raises
    ------
    TypeError
        Not real numbers (boolean, object, complex).
    NotAnImageError
        Not 2-D (RGB(A) and stacks say how to get one frame).
    EmptyImageError, ImageTooSmallError
        No pixels, or fewer than ``min_side_px`` on a side (the size is in the message).
    InvalidPixelValuesError
        NaN or Inf pixels, or values beyond float32's range (says how to rescale).
    """
    array = np.asarray(image)
    if array.dtype == bool or not np.issubdtype(array.dtype, np.number):
        raise TypeError(
            f"{name} must hold real numbers; got dtype {array.dtype}. Pass a grey-level "
            "micrograph (e.g. the float32 array from etem_helpers.io.read_micrograph)."
        )
    if np.iscomplexobj(array):
        raise TypeError(
            f"{name} is complex ({array.dtype}); pass a real image, e.g. np.abs({name})."
        )
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        raise NotAnImageError(
            f"image has shape {array.shape}, which looks like an RGB(A) colour image; convert "
            "it to grey (e.g. skimage.color.rgb2gray(image[..., :3])) or pass one channel "
            "(image[..., 0])."
        )
    if array.ndim == 3:
        raise NotAnImageError(
            f"image has shape {array.shape}, a stack of {array.shape[0]} frames; choose a "
            "frame (image[i]) or combine them (image.mean(axis=0)) and pass a 2-D array."
        )
    if array.ndim != 2:
        raise NotAnImageError(
            f"image must be a 2-D array (rows, columns); got {array.ndim} dimension(s) with "
            f"shape {array.shape}."
        )
    if array.size == 0:
        raise EmptyImageError(f"{name} is empty (shape {array.shape}); pass a non-empty image.")
    if min(array.shape) < min_side_px:
        raise ImageTooSmallError(
            f"{name} is {array.shape[0]} x {array.shape[1]} pixels, smaller than the "
            f"{min_side_px} x {min_side_px} needed (too little context to find particles in); "
            "pass the whole micrograph, not a crop of a few pixels."
        )
    overflow = _float32_overflow_message(array, name) if dtype == np.float32 else None
    if overflow:
        raise InvalidPixelValuesError(overflow)
    array = array.astype(dtype, copy=False)
    if not np.isfinite(array).all():
        n_nan = int(np.count_nonzero(np.isnan(array)))
        n_inf = int(array.size - n_nan - np.count_nonzero(np.isfinite(array)))
        raise InvalidPixelValuesError(
            f"{name} contains {n_nan} NaN and {n_inf} infinite pixel(s) (of {array.size}); "
            f"replace them first, e.g. {name} = np.where(np.isfinite({name}), {name}, "
            f"np.nanmedian({name})), or read the file with "
            "read_micrograph(path, nan_policy='fill')."
        )
    return np.ascontiguousarray(array)


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
        Measured on a regular subsample of about 2**18 pixels (fast on any image size).
    """
    image = np.asarray(image)
    step = max(1, int(np.sqrt(image.size / _CONTRAST_SAMPLE_PX)))
    sample = image[::step, ::step].astype(np.float64).ravel()
    if sample.size == 0:
        return False
    low, high = np.percentile(sample, [50.0 * min_fraction, 100.0 - 50.0 * min_fraction])
    return bool(high > low)


def read_input(image, pixel_size_nm: float | None = None) -> tuple[np.ndarray, float, str, dict]:
    """An image and its calibration from a file path or from an array plus ``pixel_size_nm``.

    Parameters
    ----------
    image : numpy.ndarray or str or path-like
        A 2-D real array, or the path of a micrograph file (read with
        :func:`etem_helpers.io.read_micrograph`; its calibration is used).
    pixel_size_nm : float, optional
        nm per pixel. Required for an array (1 nm/px is never assumed); overrides a file's.

    Returns
    -------
    image : numpy.ndarray
        2-D finite float32 array.
    pixel_size_nm : float
    pixel_size_source : str
        ``"argument"`` or ``"file:<where in the file>"``.
    file_info : dict
        ``path`` and ``format`` for a file, empty for an array.

    Raises
    ------
    ImageTooSmallError
        Fewer than :data:`MIN_IMAGE_SIDE_PX` pixels on a side (array or file).
    """
    if isinstance(image, bytes):
        image = os.fsdecode(image)
    if not isinstance(image, str | os.PathLike):
        if pixel_size_nm is None:
            raise InvalidPixelSizeError(
                "pixel_size_nm is required when image is an array: pass pixel_size_nm=<nm per "
                "pixel> (from the file header or the scale bar), or pass the file path so the "
                "calibration is read from it. 1 nm/px is never assumed."
            )
        pixel_size_nm = validate_pixel_size(pixel_size_nm, argument="pixel_size_nm")
        return check_image(image, min_side_px=MIN_IMAGE_SIDE_PX), pixel_size_nm, "argument", {}
    try:
        micrograph = read_micrograph(image, pixel_size_nm=pixel_size_nm)
    except NotAnImageError as error:
        if "stack" not in str(error):
            raise
        raise NotAnImageError(
            f"{error} Analysis takes one 2-D image: read the frame you want with "
            "etem_helpers.io.read_micrograph(path, frame=...) and pass its image and "
            "pixel_size_nm."
        ) from error
    source = str(micrograph.metadata["pixel_size_source"])
    if source != "argument" and not source.startswith("file"):
        source = f"file:{source}"
    file_info: dict[str, Any] = {
        "path": micrograph.metadata.get("path"),
        "format": micrograph.metadata.get("format"),
    }
    name = f"the image in {micrograph.metadata.get('path')}"
    array = check_image(micrograph.image, name=name, min_side_px=MIN_IMAGE_SIDE_PX)
    return array, float(micrograph.pixel_size_nm), source, file_info
