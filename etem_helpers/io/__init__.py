"""Read and write calibrated micrographs (MRC, TIFF, DM3/DM4, EMD, SER, PNG/JPEG) and their errors.

:func:`check_image` is the package's one check of an image array, :func:`as_path` of a path
argument, and :func:`replace_atomically` is how files are replaced (never half-written).

``read_micrograph(path)`` returns the image, its pixel size in nm and where the calibration came
from; a missing calibration is an error, never a silent 1 nm/px.
"""

from . import files, micrograph
from .files import *  # noqa: F403 - the public names of the modules are the package's
from .micrograph import *  # noqa: F403

__all__ = [*files.__all__, *micrograph.__all__]
