"""Micrograph simulator for (E-)TEM / HRTEM images with exact ground truth.

Main entry points:

* :class:`SimulationParams` and :func:`sample_params`: one validated parameter set;
* :func:`simulate_micrograph`: one image with its label map and particle table;
* :func:`generate_dataset`, :func:`load_manifest`, :func:`load_sample`: datasets on disk;
* :class:`DenseSimulationParams` and :func:`sample_dense_params`: dense assemblies of faceted
  particles (``generate_dataset(..., dense_fraction=...)`` mixes them into a dataset).

Submodules: ``params``, ``specimen`` (particles, placement, projected phase), ``optics``,
``support`` (carbon film), ``detector``, ``micrograph``, ``dataset``, ``dense``. Nothing runs at import.
"""

from .dataset import SIMULATOR_REVISION, generate_dataset, load_manifest, load_sample
from .dense import DenseSimulationParams, sample_dense_params
from .micrograph import SimulatedMicrograph, simulate_from_particles, simulate_micrograph
from .params import KINDS, MATERIALS, REGIMES, SimulationParams, sample_params
from .specimen import Particle

__all__ = [
    "KINDS",
    "MATERIALS",
    "REGIMES",
    "SIMULATOR_REVISION",
    "DenseSimulationParams",
    "Particle",
    "SimulatedMicrograph",
    "SimulationParams",
    "generate_dataset",
    "load_manifest",
    "load_sample",
    "sample_dense_params",
    "sample_params",
    "simulate_from_particles",
    "simulate_micrograph",
]
