"""Micrograph simulator for (E-)TEM / HRTEM images with exact ground truth.

Main entry points:

* :class:`SimulationParams` and :func:`sample_params`: one validated parameter set;
* :func:`simulate_micrograph`: one image with its label map and particle table;
* :func:`generate_dataset`, :func:`load_manifest`, :func:`load_sample`: datasets on disk.

Submodules: ``params``, ``specimen`` (particles, placement, projected phase), ``optics``,
``support`` (carbon film), ``detector``, ``micrograph``, ``dataset``. Nothing runs at import.
"""

from .dataset import SIMULATOR_REVISION, generate_dataset, load_manifest, load_sample
from .micrograph import SimulatedMicrograph, simulate_from_particles, simulate_micrograph
from .params import KINDS, MATERIALS, REGIMES, SimulationParams, sample_params
from .specimen import Particle

__all__ = [
    "KINDS",
    "MATERIALS",
    "REGIMES",
    "SIMULATOR_REVISION",
    "Particle",
    "SimulatedMicrograph",
    "SimulationParams",
    "generate_dataset",
    "load_manifest",
    "load_sample",
    "sample_params",
    "simulate_from_particles",
    "simulate_micrograph",
]
