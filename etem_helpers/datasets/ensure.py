"""One dataset-reuse check: simulate a dataset folder once, reuse it only if it is the same one.

Simulating takes time, so training, notebooks and benchmarks reuse a dataset folder when it was
made by the same simulator revision, package version and arguments. A folder holding anything
else is never overwritten: the error says what differs and what to do.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from etem_helpers._version import __version__
from etem_helpers.io import as_path
from etem_helpers.simulate import SIMULATOR_REVISION, generate_dataset

__all__ = ["DatasetStatus", "dataset_identity", "ensure_dataset"]

#: Arguments of ``generate_dataset`` that do not change the images (so never compared).
_IGNORED_ARGUMENTS = ("n_jobs", "progress")
#: Arguments added after datasets were first written, with the value older datasets had.
_ARGUMENT_DEFAULTS = {"dense_fraction": 0.0}


@dataclass(frozen=True)
class DatasetStatus:
    """What :func:`ensure_dataset` did.

    Attributes
    ----------
    path : pathlib.Path
        The dataset folder.
    reused : bool
        True if an identical dataset was found and reused, False if it was simulated now.
    seconds : float
        Time spent simulating (0 when reused).
    """

    path: Path
    reused: bool
    seconds: float


def dataset_identity(arguments: dict[str, Any]) -> dict[str, Any]:
    """What makes a simulated dataset the one asked for: revision, version and arguments.

    Parameters
    ----------
    arguments : dict
        Keyword arguments of :func:`etem_helpers.simulate.generate_dataset`, with ``n_images``
        and ``seed``.

    Returns
    -------
    dict
        ``simulator_revision``, ``generator_version`` and the arguments that change the images.
    """
    kept = {k: v for k, v in arguments.items() if k not in _IGNORED_ARGUMENTS}
    return {"simulator_revision": SIMULATOR_REVISION, "generator_version": __version__, **kept}


def _found_identity(info: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    arguments = info.get("arguments", {})
    found = {key: arguments.get(key, _ARGUMENT_DEFAULTS.get(key)) for key in wanted}
    found["simulator_revision"] = info.get("simulator_revision", 1)
    found["generator_version"] = info.get("generator_version")
    return found


def ensure_dataset(out_dir: str | os.PathLike, n_images: int, *, seed: int,
                   progress: bool = False, **simulate_settings) -> DatasetStatus:
    """Simulate a dataset into ``out_dir``, or reuse the identical one already there.

    Parameters
    ----------
    out_dir : str or path-like
        Dataset folder.
    n_images : int
        Number of micrographs.
    seed : int
        Seed of :func:`etem_helpers.simulate.generate_dataset`.
    progress : bool
        Show a progress bar while simulating.
    **simulate_settings
        Other arguments of ``generate_dataset`` (``regime``, ``image_size_px``, ``n_jobs``, ...).

    Returns
    -------
    DatasetStatus

    Raises
    ------
    FileExistsError
        ``out_dir`` holds a different dataset (another simulator revision, package version or
        arguments), or files that are not a dataset. Nothing is deleted.
    """
    out_dir = as_path(out_dir, argument="out_dir")
    wanted = dataset_identity({"n_images": int(n_images), "seed": int(seed), **simulate_settings})
    info_path = out_dir / "dataset.json"
    if info_path.is_file():
        try:
            info = json.loads(info_path.read_text())
        except (OSError, ValueError) as error:
            raise FileExistsError(
                f"{info_path} is unreadable ({error}); cannot tell which dataset {out_dir} holds. "
                "Delete that folder or choose another one."
            ) from error
        found = _found_identity(info, wanted)
        if found != wanted:
            differs = {k: (found.get(k), v) for k, v in wanted.items() if found.get(k) != v}
            raise FileExistsError(
                f"{out_dir} holds another dataset (found, wanted): {differs}. It is never "
                "overwritten automatically: delete that folder or choose another one."
            )
        return DatasetStatus(out_dir, reused=True, seconds=0.0)
    start = time.perf_counter()
    generate_dataset(int(n_images), out_dir, seed=int(seed), overwrite=False,
                     progress=progress, **simulate_settings)
    return DatasetStatus(out_dir, reused=False, seconds=time.perf_counter() - start)
