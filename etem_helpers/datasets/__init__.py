"""Dataset folders: manifest and particle table, leakage-free splits, reuse check, cards; real samples.

A dataset folder is what :func:`etem_helpers.simulate.generate_dataset` writes (images, labels,
``manifest.csv``, ``particles.csv``, ``dataset.json``). The real public sample lives in
:mod:`etem_helpers.datasets.real` (hash-checked download).
"""

from .card import dataset_card, plot_dataset_card, save_dataset_card
from .ensure import DatasetStatus, ensure_dataset
from .folders import iter_samples, read_labels, read_manifest, read_particles
from .splits import SPLIT_NAMES, assign_split_column, split_by_micrograph

__all__ = [
    "SPLIT_NAMES",
    "DatasetStatus",
    "assign_split_column",
    "ensure_dataset",
    "iter_samples",
    "read_labels",
    "dataset_card",
    "plot_dataset_card",
    "read_manifest",
    "read_particles",
    "save_dataset_card",
    "split_by_micrograph",
]
