"""Read and write (E-)TEM micrographs with their pixel-size calibration.

:func:`read_micrograph` returns a :class:`Micrograph` (``image``, ``pixel_size_nm``,
``metadata``) for MRC, TIFF, DigitalMicrograph (DM3/DM4), EMD, TIA SER, PNG and JPEG files.
The calibration always comes from the file or from an explicit ``pixel_size_nm`` argument:
this module never assumes 1 nm/px.

Policies (documented choices)
-----------------------------
- The returned image is always a 2-D ``float32`` array.
- Stacks (MRC stacks, multi-page TIFF, 3-D DM data) need ``frame=<int>``, ``frame="mean"``
  or ``frame="sum"``; a negative ``frame`` counts from the end, as in Python indexing.
- Complex data (MRC modes 3/4, DM complex images, ...) are read as their magnitude, with a
  ``UserWarning``.
- Colour images (RGB/RGBA) whose colour channels are identical are read as channel 0.
  Genuinely coloured images are converted to grey with the ITU-R BT.709 luma weights
  (0.2125, 0.7154, 0.0721, as :func:`skimage.color.rgb2gray`) and a ``UserWarning``.
  The alpha channel is ignored.
- TIFF XResolution/YResolution with an inch or centimetre ResolutionUnit that gives a pixel
  larger than 1 µm is taken to be a print/screen resolution (e.g. 72 dpi written by image
  editors), not a microscope calibration, and is ignored.
- With ``require_calibration=False`` a file whose calibration cannot be used (missing or in
  units that cannot be converted to nm) gives ``pixel_size_nm=None`` and source ``"none"``;
  the reason is kept in ``metadata["calibration_error"]``.
- Non-square pixels: the x (column) pixel size is used, both are recorded as
  ``metadata["pixel_size_x_nm"]`` and ``metadata["pixel_size_y_nm"]``, and a warning is
  issued when they differ by more than 1 %.

- TIFF calibration, in order: FEI/Thermo ``[Scan] PixelWidth`` (``"file:fei-metadata"``),
  Zeiss SEM ``ap_image_pixel_size`` (``"file:zeiss-sem-metadata"``), then the vendor layouts
  that RosettaSciIO's TIFF reader decodes, read through it only when their tags are present:
  Gatan DigitalMicrograph private tags 65003/65004 + 65009/65010 (``"file:gatan-tiff-tags"``),
  JEOL SightX XML (``"file:jeol-sightx-metadata"``), TVIPS (``"file:tvips-metadata"``),
  Olympus SIS (``"file:olympus-sis-metadata"``), FEI FIB images without ``[Scan]`` (IRBeam
  HFW, ``"file:fei-metadata"``) and Zeiss without ``ap_*pixel_size``; then ImageJ
  (``"file:imagej"``) and the resolution tags (``"file:tiff-resolution"``). Velox/TIA TIFF
  exports carry no calibration RosettaSciIO or tifffile decodes.
- A TIFF compressed with a codec that tifffile decodes only with the optional ``imagecodecs``
  package (LZW, JPEG, WebP, JPEG 2000, ...) raises :class:`MissingDependencyError` naming it
  (``pip install imagecodecs``), not :class:`CorruptFileError`.

EMD needs the optional dependency ``h5py`` (``pip install h5py``); DM3/DM4/SER are read with
the pure-Python readers of RosettaSciIO.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import os
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from etem_helpers.io.files import as_path, replace_atomically

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "WRITABLE_EXTENSIONS",
    "CorruptFileError",
    "EmptyImageError",
    "ImageTooSmallError",
    "InvalidPixelSizeError",
    "InvalidPixelValuesError",
    "MicrographError",
    "MicrographNotFoundError",
    "Micrograph",
    "MissingCalibrationError",
    "MissingDependencyError",
    "NotAnImageError",
    "PLAUSIBLE_PIXEL_SIZE_NM",
    "UnknownUnitsError",
    "UnsupportedFormatError",
    "check_image",
    "read_micrograph",
    "validate_pixel_size",
    "write_micrograph",
]

#: File extensions understood by :func:`read_micrograph` (lower case, with the dot),
#: mapped to the ``metadata["format"]`` value.
_FORMAT_BY_EXTENSION = {
    ".mrc": "mrc",
    ".mrcs": "mrc",
    ".map": "mrc",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".dm3": "dm3",
    ".dm4": "dm4",
    ".emd": "emd",
    ".ser": "ser",
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
}
SUPPORTED_EXTENSIONS: tuple[str, ...] = tuple(_FORMAT_BY_EXTENSION)
#: File extensions understood by :func:`write_micrograph`.
WRITABLE_EXTENSIONS: tuple[str, ...] = (".mrc", ".tif", ".tiff")

# Length units -> factor to nanometres. Keys are lower case.
_NM_PER_UNIT = {
    "nm": 1.0,
    "nanometer": 1.0,
    "nanometers": 1.0,
    "nanometre": 1.0,
    "nanometres": 1.0,
    "µm": 1e3,  # micro sign U+00B5
    "μm": 1e3,  # Greek small letter mu U+03BC
    "um": 1e3,
    "micron": 1e3,
    "microns": 1e3,
    "micrometer": 1e3,
    "micrometers": 1e3,
    "micrometre": 1e3,
    "micrometres": 1e3,
    "å": 0.1,  # U+00C5 lowered
    "Å": 0.1,  # angstrom sign U+212B
    "a": 0.1,
    "ang": 0.1,
    "angstrom": 0.1,
    "angstroms": 0.1,
    "pm": 1e-3,
    "picometer": 1e-3,
    "picometers": 1e-3,
    "mm": 1e6,
    "cm": 1e7,
    "m": 1e9,
    "meter": 1e9,
    "meters": 1e9,
    "metre": 1e9,
    "metres": 1e9,
}
# Unit strings that mean "no unit at all".
_ABSENT_UNITS = {"", "<undefined>", "undefined", "none", "t.undefined"}
# TIFF ResolutionUnit codes -> nm per unit (1 = NONE has no physical unit).
_NM_PER_TIFF_RESUNIT = {2: 2.54e7, 3: 1e7, 4: 1e6, 5: 1e3}
_TIFF_RESUNIT_NAMES = {1: "none", 2: "inch", 3: "centimeter", 4: "millimeter", 5: "micrometer"}
# Pixel sizes above this from an inch/cm TIFF resolution are print resolutions (dpi).
_MAX_TIFF_RESOLUTION_PIXEL_NM = 1000.0
_NON_SQUARE_TOLERANCE = 0.01
_MRC_METADATA_MARKER = "etem_helpers metadata (json):"
_MRC_LABEL_LENGTH = 80
_MRC_MAX_LABELS = 10
_MRC_CHUNK_END = "~"
_BT709_LUMA = (0.2125, 0.7154, 0.0721)
#: Pixel sizes (nm/px) outside this range are not a TEM calibration (a unit or export error):
#: reading warns, writing refuses.
PLAUSIBLE_PIXEL_SIZE_NM = (1e-4, 1e4)
_FLOAT32_MAX = float(np.finfo(np.float32).max)


# --------------------------------------------------------------------------------------
# Exceptions
# --------------------------------------------------------------------------------------
class MicrographError(ValueError):
    """Base class of every error raised while reading or writing a micrograph."""


class MicrographNotFoundError(MicrographError, FileNotFoundError):
    """The micrograph file does not exist (or is a directory)."""


class UnsupportedFormatError(MicrographError):
    """The file extension is not one this module can read or write."""


class CorruptFileError(MicrographError):
    """The file could not be decoded (truncated, corrupt or not the format its name says)."""


class NotAnImageError(MicrographError):
    """The data are not a single 2-D image (1-D, >3-D, a stack without ``frame``, ...)."""


class EmptyImageError(MicrographError):
    """The data have a dimension of size 0."""


class ImageTooSmallError(EmptyImageError):
    """An image with fewer pixels on a side than the analysis needs."""


class InvalidPixelValuesError(MicrographError):
    """The image contains NaN or infinite values."""


class MissingCalibrationError(MicrographError):
    """The file has no usable pixel-size calibration and none was given."""


class UnknownUnitsError(MicrographError):
    """The file's calibration is in units that cannot be converted to nanometres."""


class InvalidPixelSizeError(MicrographError):
    """A ``pixel_size_nm`` argument is not a finite positive number."""


class MissingDependencyError(MicrographError, ImportError):
    """An optional package needed for this file format is not installed."""


# --------------------------------------------------------------------------------------
# Public types
# --------------------------------------------------------------------------------------
class Micrograph(NamedTuple):
    """A micrograph with its calibration.

    Attributes
    ----------
    image : numpy.ndarray
        2-D ``float32`` image, shape (rows, columns).
    pixel_size_nm : float or None
        Pixel size in nm per pixel (x, i.e. along columns), or None when the file has no
        calibration and ``require_calibration=False`` was passed.
    metadata : dict
        At least ``path``, ``format``, ``pixel_size_source``, ``original_dtype`` and ``shape``
        (shape of the data as stored in the file), plus format-specific extras such as
        ``voltage_kv``.
    """

    image: np.ndarray
    pixel_size_nm: float | None
    metadata: dict


class _Calibration(NamedTuple):
    """Pixel size read from a file (nm), where it came from, or why it is unusable."""

    x_nm: float | None = None
    y_nm: float | None = None
    source: str = "none"
    error: MicrographError | None = None


class _RawRead(NamedTuple):
    """What a format reader returns before the common checks."""

    data: np.ndarray
    calibration: _Calibration
    extras: dict
    is_colour: bool = False


# --------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------
def _name(path: Path) -> str:
    return f"'{path}'"


def validate_pixel_size(
    pixel_size_nm: Any,
    *,
    argument: str,
    path: Path | None = None,
    quantity: str = "the pixel size as a finite positive number in nm per pixel",
) -> float:
    """Return a finite positive length (default: a pixel size) as a float, or raise
    :class:`InvalidPixelSizeError` naming ``argument`` (and the file, when ``path`` is given)."""
    bad = (
        isinstance(pixel_size_nm, bool)
        or not isinstance(pixel_size_nm, numbers.Real)
        or not math.isfinite(float(pixel_size_nm))
        or float(pixel_size_nm) <= 0
    )
    if bad:
        where = f" for {_name(path)}" if path is not None else ""
        raise InvalidPixelSizeError(
            f"{argument}={pixel_size_nm!r}{where} is not valid: give {quantity} "
            f"(e.g. {argument}=0.05), read from the file header or the microscope's scale bar."
        )
    return float(pixel_size_nm)


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
            f"{name} is complex ({array.dtype}); pass a real image, e.g. np.abs(image)."
        )
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        raise NotAnImageError(
            f"{name} has shape {array.shape}, which looks like an RGB(A) colour image; convert "
            "it to grey (e.g. skimage.color.rgb2gray(image[..., :3])) or pass one channel "
            "(image[..., 0])."
        )
    if array.ndim == 3:
        raise NotAnImageError(
            f"{name} has shape {array.shape}, a stack of {array.shape[0]} frames; choose a "
            "frame (image[i]) or combine them (image.mean(axis=0)) and pass a 2-D array."
        )
    if array.ndim != 2:
        raise NotAnImageError(
            f"{name} must be a 2-D array (rows, columns); got {array.ndim} dimension(s) with "
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
            "replace them first, e.g. image = np.where(np.isfinite(image), image, "
            "np.nanmedian(image)), or read the file with "
            "read_micrograph(path, nan_policy='fill')."
        )
    return np.ascontiguousarray(array)


def _implausible_pixel_size(pixel_size_nm: float) -> str | None:
    """A message if ``pixel_size_nm`` is outside :data:`PLAUSIBLE_PIXEL_SIZE_NM`, else None."""
    low, high = PLAUSIBLE_PIXEL_SIZE_NM
    if low * (1 - 1e-6) <= pixel_size_nm <= high * (1 + 1e-6):  # float32-stored bounds pass
        return None
    return (
        f"pixel size {pixel_size_nm:.3g} nm/px is outside the plausible range {low:g}..{high:g} "
        "nm/px for a micrograph (a unit or export error?)"
    )


def _float32_overflow_message(values: np.ndarray, what: str) -> str | None:
    """A message if finite ``values`` exceed float32's range (they would become Inf), else None."""
    if values.dtype.kind != "f" or values.dtype.itemsize <= 4:
        return None
    finite = values[np.isfinite(values)]
    largest = float(np.abs(finite).max()) if finite.size else 0.0
    if largest <= _FLOAT32_MAX:
        return None
    return (
        f"{what} has values up to {largest:.3g}, beyond float32's range (±{_FLOAT32_MAX:.3g}), "
        "in which images are processed; rescale it first, e.g. image = image / "
        "np.abs(image).max() (intensities are relative, the analysis normalises them)."
    )


def _normalise_unit(unit: Any) -> str:
    """Lower-case unit string with ImageJ's escaped micro sign decoded."""
    text = "" if unit is None else str(unit)
    text = text.replace("\\u00B5", "µ").replace("\\u00b5", "µ").strip()
    return text if text == "Å" else text.lower()


def _nm_per_unit(unit: Any, *, path: Path, where: str) -> float:
    """Factor converting a length ``unit`` to nm, or raise :class:`UnknownUnitsError`."""
    key = _normalise_unit(unit)
    if key in _NM_PER_UNIT:
        return _NM_PER_UNIT[key]
    if key in {"pixel", "pixels", "px", "pix"}:
        reason = "the calibration is in pixels, i.e. the image is not calibrated"
    elif key.startswith("1/") or key.startswith("1 /") or key.endswith("^-1"):
        reason = "this is a reciprocal-space unit (a diffraction pattern or an FFT?)"
    else:
        reason = "this is not a length unit this reader can convert to nm"
    raise UnknownUnitsError(
        f"{_name(path)}: {where} gives the pixel size in unit {unit!r}; {reason}. "
        "Pass pixel_size_nm=... (nm per pixel) to read_micrograph to calibrate it yourself."
    )


def _calibration_from_scales(
    x_scale: float, x_unit: Any, y_scale: float, y_unit: Any, *, path: Path, source: str
) -> _Calibration:
    """Convert axis scales in their units to a calibration in nm (or an error)."""
    try:
        if _normalise_unit(x_unit) in _ABSENT_UNITS:
            if float(x_scale) == 1.0:
                return _Calibration()
            raise UnknownUnitsError(
                f"{_name(path)}: the pixel size is {x_scale} with no unit, so it cannot be "
                "converted to nm. Pass pixel_size_nm=... (nm per pixel) to read_micrograph."
            )
        x_nm = float(x_scale) * _nm_per_unit(x_unit, path=path, where="the x axis")
        y_unit = x_unit if _normalise_unit(y_unit) in _ABSENT_UNITS else y_unit
        y_nm = float(y_scale) * _nm_per_unit(y_unit, path=path, where="the y axis")
    except UnknownUnitsError as error:
        return _Calibration(error=error)
    if not (math.isfinite(x_nm) and x_nm > 0):
        return _Calibration()
    if not (math.isfinite(y_nm) and y_nm > 0):
        y_nm = x_nm
    return _Calibration(x_nm=abs(x_nm), y_nm=abs(y_nm), source=source)


def _squeeze_and_check_shape(data: np.ndarray, *, path: Path) -> np.ndarray:
    """Drop size-1 axes; raise for empty, 1-D or >3-D data."""
    if data.size == 0:
        raise EmptyImageError(
            f"{_name(path)} holds an empty array of shape {data.shape}: there is no image to "
            "read. Check that the acquisition or export finished."
        )
    squeezed = np.squeeze(data)
    if squeezed.ndim < 2:
        raise NotAnImageError(
            f"{_name(path)} holds {squeezed.ndim}-D data of shape {data.shape} "
            "(a spectrum or profile?), not a 2-D image."
        )
    if squeezed.ndim > 3:
        raise NotAnImageError(
            f"{_name(path)} holds {squeezed.ndim}-D data of shape {data.shape}; only 2-D images "
            "and 3-D stacks (frames, rows, columns) can be read. Extract one image first."
        )
    return squeezed


def _to_grey(data: np.ndarray, *, path: Path) -> tuple[np.ndarray, dict]:
    """Collapse a trailing colour axis (grey+alpha, RGB or RGBA) to one grey channel."""
    n_channels = data.shape[-1]
    if n_channels == 2:  # grey + alpha
        return data[..., 0], {"colour": "grey+alpha", "colour_converted": False}
    colour = data[..., :3]
    if np.array_equal(colour[..., 0], colour[..., 1]) and np.array_equal(
        colour[..., 0], colour[..., 2]
    ):
        return data[..., 0], {"colour": "rgb-identical-channels", "colour_converted": False}
    warnings.warn(
        f"{_name(path)} is a colour image; converting it to grey with the BT.709 luma weights "
        f"{_BT709_LUMA}. Micrographs are grey: check that this is not an annotated screenshot.",
        UserWarning,
        stacklevel=4,
    )
    grey = colour.astype(np.float64) @ np.asarray(_BT709_LUMA)
    return grey, {"colour": "rgb", "colour_converted": True}


def _select_frame(
    data: np.ndarray, *, frame: int | str | None, path: Path
) -> tuple[np.ndarray, dict]:
    """Return one 2-D image from 2-D data or a 3-D stack (frames first)."""
    n_frames = 1 if data.ndim == 2 else data.shape[0]
    stack = data[np.newaxis] if data.ndim == 2 else data
    if frame is None:
        if data.ndim == 2:
            return data, {}
        raise NotAnImageError(
            f"{_name(path)} holds a stack of {n_frames} frames, shape {data.shape} "
            "(frames, rows, columns). Pass frame=<int> for one frame, or frame='mean' or "
            "frame='sum' to combine them."
        )
    if isinstance(frame, str):
        if frame not in {"mean", "sum"}:
            raise NotAnImageError(
                f"frame={frame!r} is not valid for {_name(path)}: use an integer index, "
                "'mean' or 'sum'."
            )
        combine = np.mean if frame == "mean" else np.sum
        image = combine(stack.astype(np.float64), axis=0)
        return image, {"frame": frame, "n_frames": n_frames}
    if isinstance(frame, bool) or not isinstance(frame, numbers.Integral):
        raise NotAnImageError(
            f"frame={frame!r} is not valid for {_name(path)}: use an integer index, "
            "'mean' or 'sum'."
        )
    if not -n_frames <= int(frame) < n_frames:
        raise NotAnImageError(
            f"frame={frame} is out of range for {_name(path)}, which has {n_frames} frame(s) "
            f"(shape {data.shape}); use 0 to {n_frames - 1}, or 'mean' or 'sum'."
        )
    return stack[int(frame)], {"frame": int(frame) % n_frames, "n_frames": n_frames}


def _check_finite(
    image: np.ndarray, *, nan_policy: str, path: Path
) -> tuple[np.ndarray, dict]:
    """Raise on NaN/Inf, or fill them with the median of the finite pixels."""
    finite = np.isfinite(image)
    n_bad = int(image.size - np.count_nonzero(finite))
    if n_bad == 0:
        return image, {}
    n_nan = int(np.count_nonzero(np.isnan(image)))
    if n_bad == image.size:
        raise InvalidPixelValuesError(
            f"{_name(path)} has no finite pixel ({n_nan} NaN, {n_bad - n_nan} Inf of "
            f"{image.size}): there is nothing to fill from (nan_policy='fill' needs some "
            "finite pixels). The file holds no image data; check the export."
        )
    if nan_policy == "fill":
        median = float(np.median(image[finite]))
        warnings.warn(
            f"{_name(path)}: filled {n_bad} NaN/Inf pixel(s) with the median {median:.6g}.",
            UserWarning,
            stacklevel=3,
        )
        return np.where(finite, image, median), {"n_filled_pixels": n_bad}
    raise InvalidPixelValuesError(
        f"{_name(path)} has {n_bad} of {image.size} pixels that are not finite "
        f"({n_nan} NaN, {n_bad - n_nan} Inf). Fix the export (e.g. masked or divided-by-zero "
        "regions), or pass nan_policy='fill' to replace them with the median of the finite "
        "pixels."
    )


def _to_real(data: np.ndarray, *, path: Path) -> np.ndarray:
    """Magnitude of complex data (with a warning); structured RGB(A) to a channel axis."""
    if data.dtype.names is not None:
        names = data.dtype.names
        if {"R", "G", "B"} <= set(names):
            return np.stack([data[c] for c in ("R", "G", "B")], axis=-1)
        raise NotAnImageError(
            f"{_name(path)} holds structured data with fields {names}, not an image."
        )
    if np.iscomplexobj(data):
        warnings.warn(
            f"{_name(path)} holds complex data (an FFT or exit wave?); returning its magnitude.",
            UserWarning,
            stacklevel=4,
        )
        return np.abs(data)
    if not (np.issubdtype(data.dtype, np.number) or data.dtype == np.bool_):
        raise NotAnImageError(f"{_name(path)} holds non-numeric data of dtype {data.dtype}.")
    return data


# --------------------------------------------------------------------------------------
# Format readers: each returns _RawRead and leaves the common checks to read_micrograph
# --------------------------------------------------------------------------------------
def _read_mrc(path: Path) -> _RawRead:
    import mrcfile

    try:
        with mrcfile.open(path, mode="r", permissive=False) as mrc:
            data = np.array(mrc.data)
            voxel = mrc.voxel_size
            header = mrc.header
            n_labels = int(header.nlabl)
            labels = [
                bytes(header.label[i]).decode("ascii", errors="replace").rstrip("\x00 ")
                for i in range(min(n_labels, _MRC_MAX_LABELS))
            ]
            extras: dict[str, Any] = {
                "mrc_mode": int(header.mode),
                "mrc_space_group": int(header.ispg),
                "mrc_labels": labels,
                "mrc_exttyp": bytes(header.exttyp).decode("ascii", errors="replace").strip("\x00 "),
            }
            fei = _mrc_fei_extended_header(mrc)
    except (ValueError, OSError, EOFError) as error:
        raise CorruptFileError(
            f"{_name(path)} could not be read as an MRC file ({error}). The file may be "
            "truncated or not an MRC file; re-export or re-copy it."
        ) from error
    user = _labels_to_metadata(labels)
    if user is not None:
        extras["user_metadata"] = user
    extras.update({k: v for k, v in fei.items() if k == "voltage_kv"})
    x_a, y_a = float(voxel.x), float(voxel.y)
    if x_a > 0 and math.isfinite(x_a):
        y_nm = y_a / 10.0 if y_a > 0 and math.isfinite(y_a) else x_a / 10.0
        calibration = _Calibration(x_nm=x_a / 10.0, y_nm=y_nm, source="file:mrc-header")
    elif "pixel_size_x_nm" in fei:
        calibration = _Calibration(
            x_nm=fei["pixel_size_x_nm"],
            y_nm=fei.get("pixel_size_y_nm", fei["pixel_size_x_nm"]),
            source="file:mrc-fei-extended-header",
        )
    else:
        calibration = _Calibration()
    return _RawRead(data=data, calibration=calibration, extras=extras)


def _mrc_fei_extended_header(mrc: Any) -> dict:
    """Voltage and pixel size from an FEI1/FEI2 extended header (SI units in the file)."""
    try:
        if bytes(mrc.header.exttyp) not in (b"FEI1", b"FEI2"):
            return {}
        ext = mrc.indexed_extended_header
        out: dict[str, float] = {}
        if ext is None or len(ext) == 0:
            return out
        names = ext.dtype.names or ()
        if "HT" in names and float(ext["HT"][0]) > 0:
            out["voltage_kv"] = float(ext["HT"][0]) / 1000.0
        if "Pixel size X" in names and float(ext["Pixel size X"][0]) > 0:
            out["pixel_size_x_nm"] = float(ext["Pixel size X"][0]) * 1e9
            if "Pixel size Y" in names and float(ext["Pixel size Y"][0]) > 0:
                out["pixel_size_y_nm"] = float(ext["Pixel size Y"][0]) * 1e9
        return out
    except (ValueError, KeyError, TypeError, IndexError):
        return {}


def _labels_to_metadata(labels: list[str]) -> dict | None:
    """Decode the user metadata written by :func:`write_micrograph` into MRC labels."""
    if _MRC_METADATA_MARKER not in labels:
        return None
    start = labels.index(_MRC_METADATA_MARKER) + 1
    try:
        # each chunk ends with a sentinel so that trailing spaces survive label padding
        value = json.loads("".join(label.removesuffix(_MRC_CHUNK_END) for label in labels[start:]))
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _read_tiff(path: Path) -> _RawRead:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            page = tif.pages.first
            _check_tiff_codecs(page, path=path)
            data = series.asarray()
            axes = series.axes
            tags = page.tags
            x_res = tags.valueof(282)
            y_res = tags.valueof(283)
            res_unit = tags.valueof(296, default=2)
            imagej = tif.imagej_metadata
            fei = tif.fei_metadata
            sem = tif.sem_metadata
            vendor = _tiff_vendor(page)
            image_shape = (int(page.imagelength), int(page.imagewidth))
    except MicrographError:
        raise
    except ImportError as error:  # a codec whose fallback module is missing (e.g. ZSTD)
        raise MissingDependencyError(
            _missing_codec_message(path, f"a codec that needs the module {error.name!r}")
        ) from error
    except (tifffile.TiffFileError, ValueError, OSError, EOFError, KeyError, IndexError) as error:
        if "imagecodecs" in str(error):
            raise MissingDependencyError(_missing_codec_message(path, str(error))) from error
        raise CorruptFileError(
            f"{_name(path)} could not be read as a TIFF file ({type(error).__name__}: {error}). "
            "The file may be truncated or not a TIFF; re-export or re-copy it."
        ) from error
    extras: dict[str, Any] = {"tiff_axes": axes}
    if vendor is not None:
        extras["tiff_vendor"] = vendor
    is_colour = "S" in axes and axes.endswith("S")
    if imagej:
        extras["imagej_metadata"] = {
            k: v for k, v in imagej.items() if isinstance(v, str | int | float | bool)
        }
        info = imagej.get("Info")
        if isinstance(info, str):
            try:
                user = json.loads(info)
            except ValueError:
                user = None
            if isinstance(user, dict):
                extras["user_metadata"] = user
    voltage = _nested_get(fei, ("Beam", "HV"))
    if isinstance(voltage, numbers.Real) and voltage > 0:
        extras["voltage_kv"] = float(voltage) / 1000.0
    calibration = _tiff_calibration(
        path=path, x_res=x_res, y_res=y_res, res_unit=res_unit, imagej=imagej, fei=fei, sem=sem,
        extras=extras, vendor=vendor, image_shape=image_shape,
    )
    return _RawRead(data=data, calibration=calibration, extras=extras, is_colour=is_colour)


def _missing_codec_message(path: Path, what: str) -> str:
    return (
        f"{_name(path)} is a compressed TIFF that cannot be decoded here: {what}. tifffile "
        "decodes this compression only with the optional package 'imagecodecs', which is not "
        "installed. Install it with `pip install imagecodecs` and read the file again (or "
        "re-export the image uncompressed or with Deflate/zlib compression). The file itself "
        "is probably fine."
    )


def _check_tiff_codecs(page: Any, *, path: Path) -> None:
    """Raise :class:`MissingDependencyError` if the page's compression or predictor cannot be
    decoded without a missing optional package (tifffile needs ``imagecodecs`` for LZW, JPEG,
    WebP, JPEG 2000, ...), instead of letting the decoder fail like a corrupt file."""
    import importlib.util

    import tifffile

    checks = (
        ("compression", page.compression, tifffile.TIFF.DECOMPRESSORS),
        ("predictor", page.predictor, tifffile.TIFF.UNPREDICTORS),
    )
    for kind, code, decoders in checks:
        if code in decoders:
            continue
        name = getattr(code, "name", None) or str(code)
        what = f"{kind} {name} (TIFF code {int(code)})"
        if importlib.util.find_spec("imagecodecs") is None:
            raise MissingDependencyError(_missing_codec_message(path, what))
        raise CorruptFileError(
            f"{_name(path)} uses the TIFF {what}, which neither tifffile nor imagecodecs can "
            "decode. Re-export the image uncompressed (or with Deflate/zlib compression)."
        )


# TIFF layouts whose calibration RosettaSciIO's TIFF reader decodes: pixel_size_source and
# the name used in messages. FEI and Zeiss are parsed here first (fast path); RosettaSciIO is
# their fallback (FEI FIB images: IRBeam HFW / ResolutionX; Zeiss without ap_*pixel_size).
_RSCIIO_TIFF_VENDORS = {
    "fei": ("file:fei-metadata", "FEI/Thermo Fisher"),
    "zeiss": ("file:zeiss-sem-metadata", "Zeiss SEM"),
    "tvips": ("file:tvips-metadata", "TVIPS EM-MENU"),
    "olympus-sis": ("file:olympus-sis-metadata", "Olympus SIS (iTEM/RADIUS)"),
    "jeol-sightx": ("file:jeol-sightx-metadata", "JEOL SightX"),
    "gatan": ("file:gatan-tiff-tags", "Gatan DigitalMicrograph"),
}
# Gatan's private tags as RosettaSciIO reads them: x/y units, then x/y scales.
_GATAN_UNIT_TAGS = (65003, 65004)
_GATAN_SCALE_TAGS = (65009, 65010)


def _decode_unit(unit: Any) -> Any:
    """A unit string from a TIFF tag: bytes (latin-1, as DigitalMicrograph writes ``µ``) and
    NUL padding removed."""
    if isinstance(unit, bytes):
        unit = unit.decode("latin-1")
    return unit.strip("\x00 ") if isinstance(unit, str) else unit


def _tiff_vendor(page: Any) -> str | None:
    """The vendor layout RosettaSciIO's TIFF reader takes the calibration from, in its order
    of precedence (FEI, Zeiss, TVIPS, Olympus SIS, JEOL SightX, then Gatan), or None."""
    tags = page.tags
    if page.is_fei:
        return "fei"
    if page.is_sem:
        return "zeiss"
    if page.is_tvips:
        return "tvips"
    if page.is_sis:
        return "olympus-sis"
    description = tags.valueof(270, default="")
    if tags.valueof(271) == "JEOL Ltd." and "TemReporter" in str(description):
        return "jeol-sightx"
    has_units = any(code in tags for code in _GATAN_UNIT_TAGS)
    if has_units and any(code in tags for code in _GATAN_SCALE_TAGS):
        return "gatan"
    return None


def _rsciio_tiff_calibration(
    path: Path, vendor: str, image_shape: tuple[int, int]
) -> _Calibration:
    """Calibration of a vendor TIFF read by RosettaSciIO's TIFF reader.

    Returns the calibration, an :class:`UnknownUnitsError` (e.g. a diffraction pattern in
    1/nm), a :class:`MissingDependencyError`/:class:`MissingCalibrationError` when RosettaSciIO
    is missing or fails, or an empty calibration when the vendor metadata hold no pixel size.
    """
    source, vendor_name = _RSCIIO_TIFF_VENDORS[vendor]
    try:
        from rsciio.tiff import file_reader
    except ImportError as error:
        return _Calibration(
            error=MissingDependencyError(
                f"{_name(path)} is a {vendor_name} TIFF whose calibration is read with "
                f"RosettaSciIO, which cannot be imported ({error}). Install it with "
                "`pip install rosettasciio`, or pass pixel_size_nm=... (nm per pixel)."
            )
        )
    logger = logging.getLogger("rsciio")
    level = logger.level
    try:
        logger.setLevel(logging.ERROR)  # its "could not determine pixel size" is reported here
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            signals = file_reader(str(path), lazy=False)
    except Exception as error:  # any RosettaSciIO failure: no vendor calibration
        return _Calibration(
            error=MissingCalibrationError(
                f"{_name(path)} has {vendor_name} metadata, but RosettaSciIO could not read "
                f"them ({type(error).__name__}: {error}). Pass pixel_size_nm=... (nm per "
                "pixel) to read_micrograph."
            )
        )
    finally:
        logger.setLevel(level)
    for signal in signals:
        axes = [a for a in signal.get("axes", []) if not a.get("navigate", False)]
        if len(axes) != 2 or tuple(int(a.get("size", 0)) for a in axes) != image_shape:
            continue
        y_axis, x_axis = axes
        x_unit, y_unit = (_decode_unit(axis.get("units")) for axis in (x_axis, y_axis))
        calibration = _calibration_from_scales(
            x_axis.get("scale", 1.0), x_unit, y_axis.get("scale", 1.0), y_unit,
            path=path, source=source,
        )
        if calibration.x_nm is not None or calibration.error is not None:
            return calibration
    return _Calibration()


def _nested_get(mapping: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        if not isinstance(mapping, dict) or key not in mapping:
            return None
        mapping = mapping[key]
    return mapping


def _rational(value: Any) -> float | None:
    """TIFF RATIONAL (numerator, denominator) to a float, None if absent or invalid."""
    if value is None:
        return None
    try:
        numerator, denominator = value
        result = float(numerator) / float(denominator)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return result if math.isfinite(result) and result > 0 else None


def _tiff_calibration(
    *,
    path: Path,
    x_res: Any,
    y_res: Any,
    res_unit: Any,
    imagej: dict | None,
    fei: dict | None,
    sem: dict | None,
    extras: dict,
    vendor: str | None = None,
    image_shape: tuple[int, int] = (0, 0),
) -> _Calibration:
    """Pixel size from (in order) FEI/Thermo, Zeiss SEM, the vendor layouts read with
    RosettaSciIO (``vendor``, see :func:`_tiff_vendor`), ImageJ, then TIFF resolution tags."""
    native = _tiff_fei_zeiss_calibration(path=path, fei=fei, sem=sem)
    if native.x_nm is not None or native.error is not None:
        return native
    vendor_calibration = _Calibration()
    if vendor is not None:
        vendor_calibration = _rsciio_tiff_calibration(path, vendor, image_shape)
        if vendor_calibration.x_nm is not None or isinstance(
            vendor_calibration.error, UnknownUnitsError
        ):
            return vendor_calibration
    generic = _tiff_generic_calibration(
        path=path, x_res=x_res, y_res=y_res, res_unit=res_unit, imagej=imagej, extras=extras
    )
    if generic.x_nm is None and generic.error is None and vendor_calibration.error is not None:
        return vendor_calibration
    return generic


def _tiff_fei_zeiss_calibration(
    *, path: Path, fei: dict | None, sem: dict | None
) -> _Calibration:
    """Pixel size from FEI/Thermo [Scan] PixelWidth or Zeiss ap_*pixel_size, if present."""
    width_m = _nested_get(fei, ("Scan", "PixelWidth"))
    if isinstance(width_m, numbers.Real) and width_m > 0:
        height_m = _nested_get(fei, ("Scan", "PixelHeight"))
        height_m = height_m if isinstance(height_m, numbers.Real) and height_m > 0 else width_m
        return _Calibration(
            x_nm=float(width_m) * 1e9, y_nm=float(height_m) * 1e9, source="file:fei-metadata"
        )
    for key in ("ap_image_pixel_size", "ap_pixel_size"):
        entry = (sem or {}).get(key)
        if isinstance(entry, tuple) and len(entry) == 3 and isinstance(entry[1], numbers.Real):
            _, value, unit = entry
            return _calibration_from_scales(
                value, unit, value, unit, path=path, source="file:zeiss-sem-metadata"
            )
    return _Calibration()


def _tiff_generic_calibration(
    *, path: Path, x_res: Any, y_res: Any, res_unit: Any, imagej: dict | None, extras: dict
) -> _Calibration:
    """Pixel size from the ImageJ unit with the resolution tags, or the resolution tags."""
    x_per_unit = _rational(x_res)
    y_per_unit = _rational(y_res) or x_per_unit
    if imagej and "unit" in imagej:
        if x_per_unit is None:
            return _Calibration()
        y_unit = imagej.get("yunit", imagej["unit"])
        return _calibration_from_scales(
            1.0 / x_per_unit, imagej["unit"], 1.0 / y_per_unit, y_unit,
            path=path, source="file:imagej",
        )
    if x_per_unit is None:
        return _Calibration()
    unit_code = int(res_unit) if res_unit is not None else 2
    if unit_code in _NM_PER_TIFF_RESUNIT:
        x_nm = _NM_PER_TIFF_RESUNIT[unit_code] / x_per_unit
        y_nm = _NM_PER_TIFF_RESUNIT[unit_code] / y_per_unit
        if x_nm > _MAX_TIFF_RESOLUTION_PIXEL_NM:
            extras["tiff_print_resolution"] = (x_per_unit, _TIFF_RESUNIT_NAMES[unit_code])
            return _Calibration()
        return _Calibration(x_nm=x_nm, y_nm=y_nm, source="file:tiff-resolution")
    if unit_code == 1 and (x_per_unit != 1.0 or y_per_unit != 1.0):
        return _Calibration(
            error=UnknownUnitsError(
                f"{_name(path)}: the TIFF resolution is {x_per_unit:g} pixels per unit with "
                "ResolutionUnit NONE and no ImageJ unit, so the length unit is unknown. Pass "
                "pixel_size_nm=... (nm per pixel) to read_micrograph."
            )
        )
    if unit_code not in (1, *_NM_PER_TIFF_RESUNIT):
        return _Calibration(
            error=UnknownUnitsError(
                f"{_name(path)}: unknown TIFF ResolutionUnit {unit_code}. Pass "
                "pixel_size_nm=... (nm per pixel) to read_micrograph."
            )
        )
    return _Calibration()


def _read_rsciio(path: Path, fmt: str) -> _RawRead:
    module_name = {"dm3": "digitalmicrograph", "dm4": "digitalmicrograph", "emd": "emd"}.get(
        fmt, "tia"
    )
    try:
        if module_name == "emd":
            from rsciio.emd import file_reader
        elif module_name == "digitalmicrograph":
            from rsciio.digitalmicrograph import file_reader
        else:
            from rsciio.tia import file_reader
    except ImportError as error:
        raise MissingDependencyError(
            f"Reading {_name(path)} ({fmt.upper()}) needs a package that is not installed: "
            f"{error.name or error}. Install it (e.g. `pip install h5py` for EMD) and retry."
        ) from error
    try:
        signals = file_reader(str(path), lazy=False)
    except Exception as error:  # any decoder failure: unreadable file
        raise CorruptFileError(
            f"{_name(path)} could not be read as {fmt.upper()} by RosettaSciIO "
            f"({type(error).__name__}: {error}). The file may be truncated or corrupt."
        ) from error
    images = [s for s in signals if sum(not a.get("navigate", False) for a in s["axes"]) == 2]
    if not images:
        shapes = [np.shape(s["data"]) for s in signals]
        raise NotAnImageError(
            f"{_name(path)} holds no image signal (signals of shape {shapes}: spectra or "
            "line scans?)."
        )
    signal = images[0]
    data = np.asarray(signal["data"])
    meta = signal.get("metadata", {}) or {}
    extras: dict[str, Any] = {
        "n_signals": len(signals),
        "signal_title": _nested_get(meta, ("General", "title")),
        "rsciio_axes": [
            {
                "name": a.get("name"),
                "size": int(a.get("size", 0)),
                "scale": float(a.get("scale", 1.0)),
                "offset": float(a.get("offset", 0.0)),
                "units": str(a.get("units")),
                "navigate": bool(a.get("navigate", False)),
            }
            for a in signal["axes"]
        ],
    }
    for microscope in ("TEM", "SEM"):
        energy = _nested_get(meta, ("Acquisition_instrument", microscope, "beam_energy"))
        if isinstance(energy, numbers.Real) and energy > 0:
            extras["voltage_kv"] = float(energy)
        magnification = _nested_get(meta, ("Acquisition_instrument", microscope, "magnification"))
        if isinstance(magnification, numbers.Real):
            extras["magnification"] = float(magnification)
    signal_axes = [a for a in signal["axes"] if not a.get("navigate", False)]
    y_axis, x_axis = signal_axes[-2], signal_axes[-1]
    calibration = _calibration_from_scales(
        x_axis.get("scale", 1.0), x_axis.get("units"), y_axis.get("scale", 1.0),
        y_axis.get("units"), path=path, source="file:rosettasciio",
    )
    return _RawRead(data=data, calibration=calibration, extras=extras)


def _read_raster(path: Path) -> _RawRead:
    import imageio.v3 as iio

    try:
        data = np.asarray(iio.imread(path))
    except Exception as error:  # any decoder failure: unreadable file
        kind = path.suffix.lstrip(".").upper()
        raise CorruptFileError(
            f"{_name(path)} is not a readable {kind} file: the image decoder could not decode "
            f"its content ({type(error).__name__}). It may be empty, truncated, or another "
            f"format with a .{kind.lower()} extension; re-export it (TIFF or MRC keep the "
            "calibration)."
        ) from error
    is_colour = data.ndim == 3 and data.shape[-1] in (2, 3, 4)
    return _RawRead(data=data, calibration=_Calibration(), extras={}, is_colour=is_colour)


# --------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------
def read_micrograph(
    path: str | os.PathLike,
    *,
    pixel_size_nm: float | None = None,
    frame: int | str | None = None,
    require_calibration: bool = True,
    nan_policy: str = "raise",
) -> Micrograph:
    """Read a micrograph and its pixel-size calibration.

    Parameters
    ----------
    path : str or os.PathLike
        File to read; the format is chosen by extension (see ``SUPPORTED_EXTENSIONS``):
        MRC (.mrc/.mrcs/.map), TIFF (.tif/.tiff), DigitalMicrograph (.dm3/.dm4), EMD (.emd,
        needs h5py), TIA (.ser), PNG and JPEG (.png/.jpg/.jpeg, never calibrated).
    pixel_size_nm : float, optional
        Pixel size in nm per pixel. Overrides the file's calibration (the file's value, if any,
        is kept in ``metadata["file_pixel_size_nm"]``). Must be finite and positive.
    frame : int or {"mean", "sum"}, optional
        For stacks (3-D data, frames first): the frame index (negative counts from the end),
        or combine all frames by mean or sum. Required for stacks; a 2-D image counts as a
        stack of one frame.
    require_calibration : bool, default True
        If True, raise :class:`MissingCalibrationError` (no calibration) or
        :class:`UnknownUnitsError` (unconvertible units) when no pixel size is available.
        If False, return ``pixel_size_nm=None`` with source ``"none"`` instead.
    nan_policy : {"raise", "fill"}, default "raise"
        What to do with NaN/Inf pixels: raise :class:`InvalidPixelValuesError`, or replace
        them by the median of the finite pixels (with a warning).

    Returns
    -------
    Micrograph
        ``(image, pixel_size_nm, metadata)``: ``image`` is 2-D float32, ``pixel_size_nm`` in nm
        per pixel (or None), ``metadata`` has ``path``, ``format``, ``pixel_size_source``
        (``"file:<what>"``, ``"argument"`` or ``"none"``), ``original_dtype``, ``shape`` and
        format-specific extras.

    Raises
    ------
    MicrographNotFoundError
        The file does not exist (also a ``FileNotFoundError``).
    UnsupportedFormatError
        The extension is not supported.
    CorruptFileError
        The file cannot be decoded (truncated, corrupt).
    NotAnImageError
        1-D or >3-D data, or a stack without ``frame``, or a bad ``frame``.
    EmptyImageError
        The data have a dimension of size 0.
    InvalidPixelValuesError
        NaN or Inf pixels with ``nan_policy="raise"``.
    MissingCalibrationError, UnknownUnitsError
        No usable calibration and ``require_calibration=True``.
    InvalidPixelSizeError
        ``pixel_size_nm`` is not a finite positive number.
    MissingDependencyError
        An optional reader dependency is missing (h5py for EMD, imagecodecs for TIFF
        compressions such as LZW or JPEG).

    Examples
    --------
    >>> image, pixel_size_nm, meta = read_micrograph("particles.mrc")  # doctest: +SKIP
    >>> meta["pixel_size_source"]  # doctest: +SKIP
    'file:mrc-header'
    """
    path = as_path(path)
    if pixel_size_nm is not None:
        pixel_size_nm = validate_pixel_size(pixel_size_nm, argument="pixel_size_nm", path=path)
    if nan_policy not in {"raise", "fill"}:
        raise MicrographError(
            f"nan_policy={nan_policy!r} is not valid for {_name(path)}: use 'raise' or 'fill'."
        )
    if not path.exists():
        raise MicrographNotFoundError(
            f"Micrograph file {_name(path)} does not exist (working directory: "
            f"'{Path.cwd()}'). Check the path and file name."
        )
    if path.is_dir():
        raise MicrographNotFoundError(f"{_name(path)} is a directory, not a micrograph file.")
    fmt = _FORMAT_BY_EXTENSION.get(path.suffix.lower())
    if fmt is None:
        raise UnsupportedFormatError(
            f"{_name(path)} has extension {path.suffix!r}, which is not supported. "
            f"Supported extensions: {', '.join(SUPPORTED_EXTENSIONS)}. Convert the file "
            "(e.g. with Fiji) to TIFF or MRC."
        )

    if fmt == "mrc":
        raw = _read_mrc(path)
    elif fmt == "tiff":
        raw = _read_tiff(path)
    elif fmt in {"dm3", "dm4", "emd", "ser"}:
        raw = _read_rsciio(path, fmt)
    else:
        raw = _read_raster(path)

    data = _to_real(raw.data, path=path)
    metadata: dict[str, Any] = {
        "path": str(path),
        "format": fmt,
        "original_dtype": str(raw.data.dtype),
        "shape": tuple(int(n) for n in raw.data.shape),
    }
    metadata.update(raw.extras)
    is_colour = raw.is_colour or data.ndim == raw.data.ndim + 1
    if data.size == 0:
        _squeeze_and_check_shape(data, path=path)  # raises EmptyImageError
    if is_colour:
        data, colour_info = _to_grey(data, path=path)
        metadata.update(colour_info)
    data = _squeeze_and_check_shape(data, path=path)
    image, frame_info = _select_frame(data, frame=frame, path=path)
    metadata.update(frame_info)
    overflow = _float32_overflow_message(np.asarray(image), _name(path))
    if overflow:
        raise InvalidPixelValuesError(overflow)
    image = np.asarray(image, dtype=np.float32)
    image, fill_info = _check_finite(image, nan_policy=nan_policy, path=path)
    metadata.update(fill_info)
    image = np.ascontiguousarray(image, dtype=np.float32)

    calibration = raw.calibration
    if calibration.x_nm is not None:
        metadata["pixel_size_x_nm"] = calibration.x_nm
        metadata["pixel_size_y_nm"] = calibration.y_nm
        if abs(calibration.y_nm - calibration.x_nm) > _NON_SQUARE_TOLERANCE * calibration.x_nm:
            warnings.warn(
                f"{_name(path)} has non-square pixels: x {calibration.x_nm:.6g} nm, "
                f"y {calibration.y_nm:.6g} nm. Using the x pixel size; resample the image "
                "to square pixels before measuring shapes.",
                UserWarning,
                stacklevel=2,
            )

    if pixel_size_nm is not None:
        if calibration.x_nm is not None:
            metadata["file_pixel_size_nm"] = calibration.x_nm
            metadata["file_pixel_size_source"] = calibration.source
        if calibration.error is not None:
            metadata["calibration_error"] = str(calibration.error)
        metadata["pixel_size_source"] = "argument"
        return Micrograph(image=image, pixel_size_nm=pixel_size_nm, metadata=metadata)

    if calibration.x_nm is not None:
        metadata["pixel_size_source"] = calibration.source
        implausible = _implausible_pixel_size(calibration.x_nm)
        if implausible:
            metadata["implausible_pixel_size"] = True
            warnings.warn(
                f"{_name(path)}: the calibrated {implausible}. Check the file's calibration ({calibration.source}), or pass "
                "pixel_size_nm=... (nm per pixel) to read_micrograph.",
                UserWarning,
                stacklevel=2,
            )
        return Micrograph(image=image, pixel_size_nm=calibration.x_nm, metadata=metadata)

    error = calibration.error or MissingCalibrationError(
        f"{_name(path)} has no pixel-size calibration ({fmt.upper()} file"
        + (
            f"; its TIFF resolution {metadata['tiff_print_resolution'][0]:g} per "
            f"{metadata['tiff_print_resolution'][1]} looks like a print resolution"
            if "tiff_print_resolution" in metadata
            else ""
        )
        + "). Pass pixel_size_nm=... (nm per pixel, from the microscope's scale bar or "
        "session log) to read_micrograph, or require_calibration=False to read it uncalibrated."
    )
    if require_calibration:
        raise error
    metadata["pixel_size_source"] = "none"
    metadata["calibration_error"] = str(error)
    return Micrograph(image=image, pixel_size_nm=None, metadata=metadata)


def write_micrograph(
    path: str | os.PathLike,
    image: np.ndarray,
    pixel_size_nm: float,
    *,
    overwrite: bool = False,
    metadata: dict | None = None,
) -> Path:
    """Write a calibrated 2-D micrograph as MRC or ImageJ-compatible TIFF (float32).

    Parameters
    ----------
    path : str or os.PathLike
        Output file; ``.mrc`` (voxel size stored in Å = 10 × nm) or ``.tif``/``.tiff``
        (ImageJ hyperstack with resolution 1/pixel_size_nm per nm and unit "nm", so that Fiji
        shows the calibration). Parent directories are created.
    image : numpy.ndarray
        2-D real array (rows, columns) with finite values; stored as float32.
    pixel_size_nm : float
        Pixel size in nm per pixel, finite and positive.
    overwrite : bool, default False
        Replace an existing file. If False and the file exists, raise ``FileExistsError``.
    metadata : dict, optional
        JSON-serialisable extra metadata, read back as ``metadata["user_metadata"]`` by
        :func:`read_micrograph`. Stored as JSON in the ImageJ ``Info`` property (TIFF) or in
        the header labels (MRC: at most 8 × 79 ASCII characters of JSON).

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    UnsupportedFormatError
        The extension is not .mrc, .tif or .tiff.
    FileExistsError
        The file exists and ``overwrite=False``.
    InvalidPixelSizeError
        ``pixel_size_nm`` is not finite and positive, is outside
        :data:`PLAUSIBLE_PIXEL_SIZE_NM`, or the format cannot store it (the file would read
        back uncalibrated or with another value).

    Notes
    -----
    Everything is checked before the target is touched; the file is written beside it under
    a temporary name, read back, and renamed over ``path`` (atomic): a failed write leaves an
    existing file as it was.
    TypeError, NotAnImageError, EmptyImageError, InvalidPixelValuesError
        ``image`` is not real numbers, not 2-D, is empty, or holds NaN/Inf or values beyond
        float32's range (:func:`check_image`).
    """
    path = as_path(path)
    suffix = path.suffix.lower()
    if suffix not in WRITABLE_EXTENSIONS:
        raise UnsupportedFormatError(
            f"Cannot write {_name(path)}: extension {path.suffix!r} is not supported for "
            f"writing. Use one of {', '.join(WRITABLE_EXTENSIONS)}."
        )
    pixel_size_nm = validate_pixel_size(pixel_size_nm, argument="pixel_size_nm", path=path)
    implausible = _implausible_pixel_size(pixel_size_nm)
    if implausible:
        raise InvalidPixelSizeError(
            f"Cannot write {_name(path)}: the {implausible}; pass pixel_size_nm in nm per pixel "
            "(e.g. 0.05, not 5e-11 in metres)."
        )
    data = _image_to_write(image, path)
    user_json = None
    if metadata is not None:
        try:
            user_json = json.dumps(metadata, ensure_ascii=True, sort_keys=True)
        except (TypeError, ValueError) as error:
            raise MicrographError(
                f"Cannot write {_name(path)}: metadata must be JSON-serialisable ({error})."
            ) from error
    if path.is_dir():
        raise MicrographError(f"Cannot write {_name(path)}: it is a directory; give a file name.")
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"{_name(path)} already exists; pass overwrite=True to replace it or choose "
            "another file name."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    # Everything is checked and written to a temporary file beside the target, read back,
    # and only then renamed over it: a failed write never destroys an existing file.
    with replace_atomically(path) as tmp:
        writer = _write_mrc if suffix == ".mrc" else _write_tiff
        try:
            writer(tmp, data, pixel_size_nm=pixel_size_nm, user_json=user_json)
        except (ValueError, OverflowError, ZeroDivisionError) as error:
            raise InvalidPixelSizeError(
                f"Cannot write {_name(path)}: pixel_size_nm={pixel_size_nm!r} cannot be stored "
                f"in a {suffix} file ({type(error).__name__}: {error})."
            ) from error
        _check_written(tmp, path, pixel_size_nm)
    return path


def _image_to_write(image: Any, path: Path) -> np.ndarray:
    """The float32 array :func:`write_micrograph` stores (:func:`check_image`, naming the file)."""
    array = np.asarray(image)
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)  # a mask is written as 0/1
    return check_image(array, name=f"the image to write to {_name(path)}")


def _check_written(tmp: Path, path: Path, pixel_size_nm: float) -> None:
    """Raise InvalidPixelSizeError unless ``tmp`` reads back with ``pixel_size_nm``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stored = read_micrograph(tmp, require_calibration=False).pixel_size_nm
    if stored is None or not math.isclose(stored, pixel_size_nm, rel_tol=1e-5):
        raise InvalidPixelSizeError(
            f"Cannot write {_name(path)}: pixel_size_nm={pixel_size_nm!r} cannot be stored in a "
            f"{path.suffix} file (it would read back as {stored!r} nm/px); check the value "
            "(nm per pixel) or write another format."
        )


def _write_mrc(path: Path, data: np.ndarray, *, pixel_size_nm: float, user_json: str | None):
    import mrcfile

    labels = []
    if user_json is not None:
        size = _MRC_LABEL_LENGTH - len(_MRC_CHUNK_END)
        chunks = [
            user_json[i : i + size] + _MRC_CHUNK_END for i in range(0, len(user_json), size)
        ]
        # mrcfile adds its own "Created by" label; one more holds the marker.
        if len(chunks) > _MRC_MAX_LABELS - 2:
            raise MicrographError(
                f"Cannot write {_name(path)}: metadata is {len(user_json)} characters of JSON; "
                f"MRC labels hold at most {(_MRC_MAX_LABELS - 2) * (_MRC_LABEL_LENGTH - 1)}. Write a "
                "TIFF or keep the metadata in a side-car file."
            )
        labels = [_MRC_METADATA_MARKER, *chunks]
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = pixel_size_nm * 10.0  # MRC stores Å
        for label in labels:
            mrc.add_label(label)


def _write_tiff(path: Path, data: np.ndarray, *, pixel_size_nm: float, user_json: str | None):
    import tifffile

    imagej_metadata: dict[str, Any] = {"unit": "nm"}
    if user_json is not None:
        imagej_metadata["Info"] = user_json
    tifffile.imwrite(
        path,
        data,
        imagej=True,
        resolution=(1.0 / pixel_size_nm, 1.0 / pixel_size_nm),
        metadata=imagej_metadata,
    )
