"""Write a simulated training / evaluation dataset to disk, and read it back.

Layout of ``out_dir``::

    images/sim_00000.mrc      calibrated image (etem_helpers.io.write_micrograph, Å header)
    labels/sim_00000.tif      uint16 instance labels (ImageJ TIFF, same calibration)
    particles.csv             micrograph_id + the ground-truth particle table of every image
    manifest.csv              one row per micrograph: paths, regime and imaging metadata
    dataset.json              generator version, arguments, creation time

Image ``i`` is simulated from the seed sequence ``SeedSequence(seed).spawn(...)[i]`` (its
parameters, when drawn, and its noise), so the result does not depend on ``n_jobs``.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from .._version import __version__
from ..io import as_path, write_micrograph
from .micrograph import simulate_micrograph
from .params import REGIMES, SimulationParams, sample_params

__all__ = [
    "SIMULATOR_REVISION", "check_out_dir", "generate_dataset", "load_manifest", "load_sample",
    "image_params", "write_labels", "check_dense_fraction",
]

#: Revision of the simulator's output. It is raised whenever the images or labels drawn for
#: a given seed change (new physics, new parameter sampling), and is written into every
#: ``dataset.json``, so that a dataset simulated by an older revision is not silently reused
#: as if it were what a configuration and seed describe now. Revision 2: low-magnification
#: realism (outline roughness, soft edges, interior texture, mottled support). Revision 3:
#: diffuse low-magnification particle edges (`edge_softness_nm`) with the true outline at
#: the middle of the edge rise, as hand-drawn outlines are.
SIMULATOR_REVISION = 3

_FILES = ("particles.csv", "manifest.csv", "dataset.json")
_DIRS = ("images", "labels")
_MANIFEST_FIRST = (
    "micrograph_id", "image_path", "labels_path", "regime", "pixel_size_nm", "voltage_kv",
    "cs_mm", "defocus_nm", "dose_e_per_a2", "gas_fraction", "seed", "n_particles",
)


def image_params(
    index: int,
    *,
    seed: int,
    regime: str = "mixed",
    image_size_px: int = 512,
    params: SimulationParams | None = None,
    dense_fraction: float = 0.0,
) -> tuple[SimulationParams, int]:
    """Parameters and simulation seed of image ``index`` of a dataset.

    Parameters
    ----------
    index : int
        Image index (0-based).
    seed : int
        Dataset seed.
    regime : {"mixed", "hrtem", "lowmag"}
        "mixed" draws HRTEM or low magnification with probability 1/2 each.
    image_size_px : int
        Image side in pixels (when the parameters are drawn).
    params : SimulationParams, optional
        Fixed parameters for every image (only the seed changes).
    dense_fraction : float
        Probability (0-1) that the image is a dense assembly of faceted particles
        (:func:`etem_helpers.simulate.dense.sample_dense_params`, low magnification). The
        choice and the dense parameters come from their own stream of ``(seed, index)``, so
        the other images are exactly those of a dataset with ``dense_fraction=0``.

    Returns
    -------
    params : SimulationParams
    image_seed : int
        Seed for :func:`simulate_micrograph`.
    """
    child = np.random.SeedSequence(int(seed), spawn_key=(int(index),))
    rng = np.random.default_rng(child)
    image_seed = int(rng.integers(0, 2**31 - 1))
    if params is not None:
        return params, image_seed
    if dense_fraction > 0:
        from .dense import sample_dense_params

        dense_rng = np.random.default_rng(
            np.random.SeedSequence(int(seed), spawn_key=(int(index), 1)))
        if dense_rng.random() < dense_fraction:
            return sample_dense_params(dense_rng, image_size_px=image_size_px), image_seed
    this_regime = regime
    if regime == "mixed":
        this_regime = "hrtem" if rng.random() < 0.5 else "lowmag"
    return sample_params(rng, this_regime, image_size_px=image_size_px), image_seed


def _micrograph_id(index: int) -> str:
    return f"sim_{index:05d}"


def _flat_params(params: SimulationParams) -> dict:
    out = {}
    for key, value in params.to_dict().items():
        out[f"param_{key}"] = json.dumps(list(value)) if isinstance(value, tuple) else value
    return out


def write_labels(path: Path, labels: np.ndarray, pixel_size_nm: float) -> None:
    """Write an instance label map as a calibrated uint16 ImageJ TIFF (the dataset format).

    Parameters
    ----------
    path : pathlib.Path
        ``labels/<id>.tif`` of a dataset folder.
    labels : numpy.ndarray
        Integer label map, 0 = background, at most 65535 particles.
    pixel_size_nm : float
        Its pixel size, stored as the TIFF resolution in nm.
    """
    import tifffile

    if labels.max(initial=0) > np.iinfo(np.uint16).max:
        raise ValueError(f"{path.name}: more than 65535 particles do not fit in uint16 labels.")
    tifffile.imwrite(
        path,
        labels.astype(np.uint16),
        imagej=True,
        resolution=(1.0 / pixel_size_nm, 1.0 / pixel_size_nm),
        metadata={"unit": "nm"},
    )


def _make_one(task: tuple) -> tuple[dict, pd.DataFrame]:
    """Simulate and write image ``index`` (runs in a worker process when n_jobs > 1)."""
    index, out_dir, seed, regime, image_size_px, params, dense_fraction = task
    out_dir = Path(out_dir)
    this_params, image_seed = image_params(
        index, seed=seed, regime=regime, image_size_px=image_size_px, params=params,
        dense_fraction=dense_fraction,
    )
    sim = simulate_micrograph(this_params, image_seed)
    mid = _micrograph_id(index)
    image_rel = f"images/{mid}.mrc"
    labels_rel = f"labels/{mid}.tif"
    meta = sim.metadata
    compact = {k: meta[k] for k in ("regime", "voltage_kv", "cs_mm", "defocus_nm",
                                    "dose_e_per_a2", "seed")}
    write_micrograph(out_dir / image_rel, sim.image, this_params.pixel_size_nm,
                     overwrite=True, metadata=compact)
    write_labels(out_dir / labels_rel, sim.labels, this_params.pixel_size_nm)
    row = {
        "micrograph_id": mid,
        "image_path": image_rel,
        "labels_path": labels_rel,
        "regime": meta["regime"],
        "pixel_size_nm": meta["pixel_size_nm"],
        "voltage_kv": meta["voltage_kv"],
        "cs_mm": meta["cs_mm"],
        "defocus_nm": meta["defocus_nm"],
        "dose_e_per_a2": meta["dose_e_per_a2"],
        "gas_fraction": meta["gas_fraction"],
        "seed": meta["seed"],
        "n_particles": meta["n_particles"],
        "image_units": meta["image_units"],
        "image_size_px": this_params.image_size_px,
    }
    if dense_fraction > 0:  # only datasets that ask for dense images get this column
        row["packing"] = this_params.packing
    row.update(_flat_params(this_params))
    table = sim.particles.copy()
    table.insert(0, "micrograph_id", mid)
    return row, table


#: The ``generator`` tag of ``dataset.json``: only folders carrying it are ever overwritten.
GENERATOR_TAG = "etem_helpers.simulate.generate_dataset"


def _own_files(out_dir: Path, generator_tag: str = GENERATOR_TAG) -> list[Path]:
    """The files a previous dataset writer wrote in ``out_dir`` (per its records).

    Raises ``FileExistsError`` unless ``out_dir/dataset.json`` carries ``generator_tag``.
    """
    refuse = (
        f"{out_dir} is not empty and holds no dataset written by etem_helpers ({{why}}); "
        "nothing was deleted. Choose an empty or new folder, or remove its files yourself."
    )
    try:
        info = json.loads((out_dir / "dataset.json").read_text())
    except FileNotFoundError:
        raise FileExistsError(refuse.format(why="no dataset.json")) from None
    except (OSError, ValueError) as error:
        raise FileExistsError(refuse.format(why=f"dataset.json is unreadable: {error}")) from None
    if not isinstance(info, dict) or info.get("generator") != generator_tag:
        raise FileExistsError(refuse.format(why=f"dataset.json lacks generator={generator_tag!r}"))
    files = [out_dir / name for name in _FILES]
    manifest_path = out_dir / "manifest.csv"
    if manifest_path.is_file():
        try:
            manifest = pd.read_csv(manifest_path, usecols=["image_path", "labels_path"])
        except (ValueError, OSError) as error:
            raise FileExistsError(
                f"{manifest_path} is unreadable ({error}), so which files the dataset owns is "
                "unknown; nothing was deleted. Choose another folder."
            ) from None
        for relative in pd.concat([manifest["image_path"], manifest["labels_path"]]).dropna():
            candidate = (out_dir / str(relative)).resolve()
            if candidate.parent.parent == out_dir.resolve() and candidate.parent.name in _DIRS:
                files.append(candidate)  # only images/<file> and labels/<file>
    return files


def check_out_dir(out_dir: Path, overwrite: bool, *, generator_tag: str = GENERATOR_TAG) -> None:
    """Refuse a non-empty ``out_dir``, or with ``overwrite`` remove only the dataset's own files.

    Parameters
    ----------
    out_dir : pathlib.Path
        Dataset folder about to be written.
    overwrite : bool
        Remove the files of a dataset that the writer ``generator_tag`` made there before.
    generator_tag : str
        The ``generator`` of ``dataset.json`` that marks a folder as this writer's own (the
        simulator's :data:`GENERATOR_TAG` by default; the GAN's writer passes its own).
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"out_dir {out_dir} exists and is not a directory.")
    if not (out_dir.is_dir() and any(out_dir.iterdir())):
        return
    if not overwrite:
        raise FileExistsError(
            f"Dataset directory {out_dir} exists and is not empty; pass overwrite=True to "
            "replace the dataset in it, or choose another directory."
        )
    for path in _own_files(out_dir, generator_tag):
        path.unlink(missing_ok=True)
    for name in _DIRS:
        folder = out_dir / name
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def generate_dataset(
    n_images: int,
    out_dir: str | os.PathLike,
    *,
    regime: str = "mixed",
    image_size_px: int = 512,
    seed: int = 0,
    n_jobs: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    params: SimulationParams | None = None,
    dense_fraction: float = 0.0,
) -> Path:
    """Simulate ``n_images`` micrographs with ground truth and write them to ``out_dir``.

    Parameters
    ----------
    n_images : int
        Number of micrographs (>= 1).
    out_dir : str or os.PathLike
        Dataset directory (created). Layout in the module docstring.
    regime : {"mixed", "hrtem", "lowmag"}
        Imaging regime of the drawn parameters ("mixed": each image 50/50).
    image_size_px : int
        Image side in pixels (64-4096).
    seed : int
        Dataset seed; image i uses a seed derived from (seed, i), independent of ``n_jobs``.
    n_jobs : int
        Worker processes (1 = in this process).
    overwrite : bool
        Replace a dataset that :func:`generate_dataset` wrote in ``out_dir`` (its
        ``dataset.json`` carries :data:`GENERATOR_TAG`): only the files listed in its records
        (``dataset.json``, ``manifest.csv``, ``particles.csv`` and the manifest's images and
        labels) are removed, never anything else. A non-empty folder holding no such dataset
        raises ``FileExistsError`` even with ``overwrite=True``; without ``overwrite`` any
        non-empty folder does.
    progress : bool
        Show a tqdm progress bar.
    params : SimulationParams, optional
        Use these fixed parameters for every image instead of drawing them (``regime`` and
        ``image_size_px`` are then taken from ``params``).
    dense_fraction : float
        Fraction (0-1, default 0) of images drawn as dense assemblies of faceted particles
        (monolayers of touching triangles, squares, hexagons, rods or discs separated by thin
        bright gaps; :mod:`etem_helpers.simulate.dense`), always at low magnification. Each
        image is dense with this probability, decided from its own stream, so the other
        images are identical to those of ``dense_fraction=0``. The manifest then gets a
        ``packing`` column ("dense" or "random") and the dense settings as ``param_*``
        columns. Not allowed with ``params`` or ``regime="hrtem"``.

    Returns
    -------
    pathlib.Path
        ``out_dir``.

    Examples
    --------
    >>> from etem_helpers.simulate import generate_dataset, load_manifest
    >>> path = generate_dataset(2, "sim_data", image_size_px=128, progress=False)  # doctest: +SKIP
    >>> load_manifest(path)[["micrograph_id", "regime", "n_particles"]]  # doctest: +SKIP
    """
    from tqdm.auto import tqdm

    if isinstance(n_images, bool) or not isinstance(n_images, int | np.integer) or n_images < 1:
        raise ValueError(f"n_images must be a positive integer, got {n_images!r}.")
    if regime not in (*REGIMES, "mixed"):
        raise ValueError(f"regime={regime!r} is not supported; use 'mixed', 'hrtem' or 'lowmag'.")
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int | np.integer) or n_jobs < 1:
        raise ValueError(f"n_jobs must be a positive integer, got {n_jobs!r}.")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    if params is not None and not isinstance(params, SimulationParams):
        raise TypeError(f"params must be a SimulationParams or None, got {type(params).__name__}.")
    dense_fraction = check_dense_fraction(dense_fraction, regime=regime, params=params)
    if params is None and (
        isinstance(image_size_px, bool)
        or not isinstance(image_size_px, int | np.integer)
        or not 64 <= image_size_px <= 4096
    ):
        raise ValueError(f"image_size_px must be an integer in [64, 4096], got {image_size_px!r}.")
    out_dir = as_path(out_dir, argument="out_dir")
    check_out_dir(out_dir, overwrite)
    for name in _DIRS:
        (out_dir / name).mkdir(parents=True, exist_ok=True)

    tasks = [(i, str(out_dir), int(seed), regime, int(image_size_px), params, dense_fraction)
             for i in range(int(n_images))]
    rows: list[dict] = []
    tables: list[pd.DataFrame] = []
    bar = tqdm(total=len(tasks), disable=not progress, desc="simulating", unit="img")
    try:
        if n_jobs == 1:
            for task in tasks:
                row, table = _make_one(task)
                rows.append(row)
                tables.append(table)
                bar.update(1)
        else:
            chunksize = max(1, len(tasks) // (4 * int(n_jobs)))
            with ProcessPoolExecutor(max_workers=int(n_jobs)) as pool:
                for row, table in pool.map(_make_one, tasks, chunksize=chunksize):
                    rows.append(row)
                    tables.append(table)
                    bar.update(1)
    finally:
        bar.close()

    manifest = pd.DataFrame(rows)
    manifest = manifest[list(_MANIFEST_FIRST)
                        + [c for c in manifest.columns if c not in _MANIFEST_FIRST]]
    manifest.to_csv(out_dir / "manifest.csv", index=False)
    non_empty = [t for t in tables if len(t)]
    particles = pd.concat(non_empty, ignore_index=True) if non_empty else tables[0]
    particles.to_csv(out_dir / "particles.csv", index=False)
    info = {
        "generator": GENERATOR_TAG,
        "generator_version": __version__,
        "simulator_revision": SIMULATOR_REVISION,
        "arguments": {
            "n_images": int(n_images), "regime": regime, "image_size_px": int(image_size_px),
            "seed": int(seed), "n_jobs": int(n_jobs), "dense_fraction": dense_fraction,
            "params": None if params is None else {
                k: (list(v) if isinstance(v, tuple) else v) for k, v in params.to_dict().items()
            },
        },
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "n_particles_total": int(len(particles)),
    }
    (out_dir / "dataset.json").write_text(json.dumps(info, indent=2))
    return out_dir


def check_dense_fraction(dense_fraction, *, regime: str = "mixed",
                         params: SimulationParams | None = None) -> float:
    """Check the ``dense_fraction`` of :func:`generate_dataset`; returns it as a float.

    Parameters
    ----------
    dense_fraction : float
        Fraction of dense-assembly images, 0-1.
    regime : str
        The dataset's regime: dense images are low magnification, so ``"hrtem"`` refuses
        ``dense_fraction > 0``.
    params : SimulationParams, optional
        Fixed parameters: they leave nothing to draw, so ``dense_fraction > 0`` is refused.

    Returns
    -------
    float
    """
    if isinstance(dense_fraction, bool) or not isinstance(
        dense_fraction, int | float | np.integer | np.floating
    ) or not 0.0 <= float(dense_fraction) <= 1.0:
        raise ValueError(
            f"dense_fraction={dense_fraction!r} must be a number between 0 and 1 (the fraction "
            "of images that are dense assemblies; 0 = none)."
        )
    dense_fraction = float(dense_fraction)
    if dense_fraction > 0 and regime == "hrtem":
        raise ValueError(
            "dense_fraction > 0 needs regime='lowmag' or 'mixed': dense assemblies are "
            "simulated at low magnification."
        )
    if dense_fraction > 0 and params is not None:
        raise ValueError(
            "dense_fraction > 0 cannot be combined with fixed params; pass "
            "params=DenseSimulationParams(...) (etem_helpers.simulate.dense) for fixed dense "
            "images, or leave params=None to draw them."
        )
    return dense_fraction


def load_manifest(out_dir: str | os.PathLike) -> pd.DataFrame:
    """Read the manifest of a dataset written by :func:`generate_dataset`.

    Parameters
    ----------
    out_dir : str or os.PathLike
        Dataset directory.

    Returns
    -------
    pandas.DataFrame
        One row per micrograph.
    """
    path = as_path(out_dir, argument="out_dir") / "manifest.csv"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: {out_dir} is not a simulated dataset. Create one with "
            "etem_helpers.simulate.generate_dataset(n_images, out_dir)."
        )
    return pd.read_csv(path)


def load_sample(out_dir: str | os.PathLike, micrograph_id: str | int):
    """Load one micrograph of a simulated dataset with its ground truth.

    Parameters
    ----------
    out_dir : str or os.PathLike
        Dataset directory.
    micrograph_id : str or int
        E.g. ``"sim_00003"`` or ``3``.

    Returns
    -------
    image : numpy.ndarray
        float32 image.
    labels : numpy.ndarray
        int32 instance labels.
    particles : pandas.DataFrame
        Ground-truth rows of this micrograph.
    metadata : dict
        The manifest row plus ``pixel_size_nm`` read from the image file.
    """
    import tifffile

    from ..io import read_micrograph

    out_dir = Path(out_dir)
    mid = _micrograph_id(int(micrograph_id)) if not isinstance(micrograph_id, str) \
        else micrograph_id
    manifest = load_manifest(out_dir)
    match = manifest[manifest["micrograph_id"] == mid]
    if match.empty:
        raise KeyError(
            f"micrograph_id {mid!r} is not in {out_dir / 'manifest.csv'}; available ids run "
            f"from {manifest['micrograph_id'].iloc[0]} to {manifest['micrograph_id'].iloc[-1]}."
        )
    row = match.iloc[0].to_dict()
    image, pixel_size_nm, _ = read_micrograph(out_dir / row["image_path"])
    labels = tifffile.imread(out_dir / row["labels_path"]).astype(np.int32)
    particles = pd.read_csv(out_dir / "particles.csv")
    particles = particles[particles["micrograph_id"] == mid].reset_index(drop=True)
    row["pixel_size_nm"] = pixel_size_nm
    return image, labels, particles, row
