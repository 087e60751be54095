"""One dataset folder from several: e.g. simulated + GAN images, to train a U-Net on both.

Each source's images and labels are copied (never moved) into the new folder under their
own micrograph ids prefixed by the source's name (``sim/sim_00003`` becomes
``sim_sim_00003``), with a ``source`` column in the manifest and the particle table, so a
mixed training set stays traceable and splits by micrograph as usual.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from etem_helpers._version import __version__
from etem_helpers.datasets.folders import read_manifest, read_particles
from etem_helpers.io import as_path
from etem_helpers.simulate.dataset import check_out_dir

__all__ = ["COMBINED_TAG", "combine_datasets"]

#: The ``generator`` tag of the ``dataset.json`` of combined folders.
COMBINED_TAG = "etem_helpers.datasets.combine_datasets"


def combine_datasets(
    sources: Mapping[str, str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    overwrite: bool = False,
) -> Path:
    """Copy several dataset folders into one.

    Parameters
    ----------
    sources : dict
        ``{name: dataset folder}``; ``name`` (letters, digits, ``-``) prefixes the ids.
    out_dir : str or path-like
        New dataset folder.
    overwrite : bool
        Replace a folder that :func:`combine_datasets` wrote before (only its own files).

    Returns
    -------
    pathlib.Path
        ``out_dir``.
    """
    if not sources:
        raise ValueError("sources is empty; pass {name: dataset folder, ...}.")
    for name in sources:
        if not str(name).replace("-", "").isalnum():
            raise ValueError(f"source name {name!r} must be letters, digits or '-'.")
    manifests, tables = [], []
    for name, folder in sources.items():
        folder = as_path(folder, argument=f"sources[{name!r}]")
        manifest = read_manifest(folder)
        particles = read_particles(folder)
        manifests.append((name, folder, manifest))
        tables.append((name, particles))
    out_dir = as_path(out_dir, argument="out_dir")
    check_out_dir(out_dir, overwrite, generator_tag=COMBINED_TAG)
    for sub in ("images", "labels"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    rows = []
    for name, folder, manifest in manifests:
        manifest = manifest.copy()
        new_ids = f"{name}_" + manifest["micrograph_id"].astype(str)
        for column, sub in (("image_path", "images"), ("labels_path", "labels")):
            targets = []
            for old, new_id in zip(manifest[column], new_ids, strict=True):
                source = folder / str(old)
                target = f"{sub}/{new_id}{source.suffix}"
                shutil.copyfile(source, out_dir / target)
                targets.append(target)
            manifest[column] = targets
        manifest["micrograph_id"] = new_ids
        manifest.insert(1, "source", name)
        rows.append(manifest)
    pd.concat(rows, ignore_index=True).to_csv(out_dir / "manifest.csv", index=False)
    parts = [t.assign(micrograph_id=f"{name}_" + t["micrograph_id"].astype(str), source=name)
             for name, t in tables]
    pd.concat(parts, ignore_index=True).to_csv(out_dir / "particles.csv", index=False)
    info = {"generator": COMBINED_TAG, "generator_version": __version__,
            "sources": {name: str(Path(folder).resolve()) for name, folder in sources.items()},
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    (out_dir / "dataset.json").write_text(json.dumps(info, indent=2))
    return out_dir
