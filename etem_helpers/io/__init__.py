"""Read and write calibrated micrographs (MRC, TIFF, DM3/DM4, EMD, SER, PNG/JPEG) and their errors.

``read_micrograph(path)`` returns the image, its pixel size in nm and where the calibration came
from; a missing calibration is an error, never a silent 1 nm/px.
"""

from . import micrograph
from .micrograph import *  # noqa: F403 - the public names of micrograph.py are the package's

__all__ = list(micrograph.__all__)
