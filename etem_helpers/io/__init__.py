"""Read and write calibrated micrographs (MRC, TIFF, DM3/DM4, EMD, SER, PNG/JPEG) and their errors.

:func:`check_image` is the package's one check of an image array, :func:`as_path` of a path
argument, and :func:`replace_atomically` is how files are replaced (never half-written).

``read_micrograph(path)`` returns the image, its pixel size in nm and where the calibration came
from; a missing calibration is an error, never a silent 1 nm/px.
"""

from .files import as_path, replace_atomically
from .micrograph import (
    PLAUSIBLE_PIXEL_SIZE_NM,
    SUPPORTED_EXTENSIONS,
    WRITABLE_EXTENSIONS,
    CorruptFileError,
    EmptyImageError,
    ImageTooSmallError,
    InvalidPixelSizeError,
    InvalidPixelValuesError,
    Micrograph,
    MicrographError,
    MicrographNotFoundError,
    MissingCalibrationError,
    MissingDependencyError,
    NotAnImageError,
    UnknownUnitsError,
    UnsupportedFormatError,
    check_image,
    read_micrograph,
    validate_pixel_size,
    write_micrograph,
)

__all__ = [
    "PLAUSIBLE_PIXEL_SIZE_NM",
    "SUPPORTED_EXTENSIONS",
    "WRITABLE_EXTENSIONS",
    "CorruptFileError",
    "EmptyImageError",
    "ImageTooSmallError",
    "InvalidPixelSizeError",
    "InvalidPixelValuesError",
    "Micrograph",
    "MicrographError",
    "MicrographNotFoundError",
    "MissingCalibrationError",
    "MissingDependencyError",
    "NotAnImageError",
    "UnknownUnitsError",
    "UnsupportedFormatError",
    "as_path",
    "check_image",
    "read_micrograph",
    "replace_atomically",
    "validate_pixel_size",
    "write_micrograph",
]
