"""Real micrographs for sim-to-real validation, downloaded on demand with pooch.

The only real set so far: 20 bright-field TEM patches (512 × 512, 8-bit) of metal
nanoparticles sintering on a carbon support at 800 °C, with hand-drawn binary particle masks,
from the training half of ``msa-em/microscopy-seg-track`` (CC-BY-4.0). The files are not
part of this package: :func:`fetch_sintering` downloads them from their public source at a
fixed commit and checks every file against the SHA-256 hashes in
``etem_helpers/registry/sintering.txt``.

Credit :data:`ATTRIBUTION` wherever these images are shown.

Pixel size: the source does not state one, so :data:`SINTERING_PIXEL_SIZE_NM` is None. Work
in pixels on these images, or pass an explicit ``pixel_size_nm`` you can justify (and say
where it comes from) to any analysis that reports nm.

Nothing runs at import (no download, no directory creation).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np

__all__ = [
    "sintering_samples",
    "ATTRIBUTION",
    "SINTERING_BASE_URL",
    "SINTERING_CALIBRATION_IDS",
    "SINTERING_EVALUATION_IDS",
    "SINTERING_COMMIT",
    "SINTERING_LICENSE",
    "SINTERING_PIXEL_SIZE_NM",
    "RealDataUnavailableError",
    "compute_registry",
    "data_cache_dir",
    "fetch_sintering",
    "load_sintering",
    "populate_cache_from",
    "sintering_registry",
]

SINTERING_COMMIT = "657a8d122c81b8abe262deb96b10d3b5beeae7f2"
SINTERING_BASE_URL = (
    "https://raw.githubusercontent.com/msa-em/microscopy-seg-track/"
    f"{SINTERING_COMMIT}/notebooks/dataset/train/"
)
SINTERING_LICENSE = "CC-BY-4.0"
#: Not stated by the source; do not invent one (see the module docstring).
SINTERING_PIXEL_SIZE_NM: float | None = None
#: The only real images that may be looked at or measured while tuning the simulator.
SINTERING_CALIBRATION_IDS: tuple[str, ...] = tuple(f"image_{i}" for i in range(5))
#: Held-out real images (image_5 ... image_19): report on them, never tune on them.
SINTERING_EVALUATION_IDS: tuple[str, ...] = tuple(f"image_{i}" for i in range(5, 20))
ATTRIBUTION = (
    "Real TEM images and masks: 'Deep Learning Applications in Microscopy: Segmentation and "
    "Tracking', Elemental Microscopy (2024), doi:10.69761/HDTA8338; data from "
    "github.com/msa-em/microscopy-seg-track (notebooks/dataset/train, commit "
    f"{SINTERING_COMMIT[:7]}), licensed CC-BY-4.0."
)

ENV_VAR = "ETEM_DATA_DIR"
_SUBDIR = "msa-em-sintering"
_REGISTRY_FILE = "registry/sintering.txt"


class RealDataUnavailableError(RuntimeError):
    """The real data could not be downloaded (offline, blocked, or server error)."""


def data_cache_dir() -> Path:
    """Root folder for downloaded data.

    Returns
    -------
    pathlib.Path
        ``$ETEM_DATA_DIR`` if that environment variable is set and not empty, otherwise the
        operating system's cache folder for ``etem-notebooks``
        (``pooch.os_cache("etem-notebooks")``, e.g. ``~/.cache/etem-notebooks`` on Linux).
        The folder is not created here.
    """
    value = os.environ.get(ENV_VAR, "").strip()
    if value:
        return Path(value).expanduser()
    import pooch

    return Path(pooch.os_cache("etem-notebooks"))


def _dataset_dir(cache_dir: str | Path | None) -> Path:
    root = data_cache_dir() if cache_dir is None else Path(cache_dir).expanduser()
    return root / _SUBDIR


def sintering_registry() -> dict[str, str]:
    """Registered files and hashes: ``{"images/image_0.png": "sha256:...", ...}``."""
    text = resources.files("etem_helpers").joinpath(_REGISTRY_FILE).read_text(encoding="utf-8")
    registry = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, checksum = line.split()[:2]
        registry[name] = checksum.lower()
    return registry


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def compute_registry(source_dir: str | Path) -> dict[str, str]:
    """Hash the files of a local copy laid out like the source (to write a registry).

    Parameters
    ----------
    source_dir : str or pathlib.Path
        Folder containing ``images/image_N.png`` and ``labels/label_N.png``.

    Returns
    -------
    dict
        ``{"images/image_0.png": "sha256:<hex>", ...}`` in natural order (0, 1, 2, ..., 10).
    """
    source_dir = Path(source_dir)
    files = sorted(
        [*source_dir.glob("images/*.png"), *source_dir.glob("labels/*.png")],
        key=lambda p: (p.parent.name, _index(p.name)),
    )
    if not files:
        raise FileNotFoundError(f"No images/*.png or labels/*.png under {source_dir}.")
    return {p.relative_to(source_dir).as_posix(): f"sha256:{_sha256(p)}" for p in files}


def _index(name: str) -> int:
    match = re.search(r"(\d+)", name)
    return int(match.group(1)) if match else -1


def _pairs(registry: dict[str, str]) -> list[tuple[str, str]]:
    images = sorted((n for n in registry if n.startswith("images/")), key=_index)
    pairs = []
    for image in images:
        label = f"labels/label_{_index(image)}.png"
        if label not in registry:
            raise ValueError(f"The registry lists {image} but not its mask {label}.")
        pairs.append((image, label))
    return pairs


def populate_cache_from(
    source_dir: str | Path, cache_dir: str | Path | None = None
) -> list[Path]:
    """Fill the download cache from a local copy, checking every hash (no network).

    Used by the tests (and on machines with a shared copy) so that :func:`fetch_sintering`
    finds the files already in place.

    Parameters
    ----------
    source_dir : str or pathlib.Path
        Folder laid out like the source: ``images/image_N.png``, ``labels/label_N.png``.
    cache_dir : str, pathlib.Path or None
        Cache root as for :func:`fetch_sintering` (None: :func:`data_cache_dir`).

    Returns
    -------
    list of pathlib.Path
        The cached files (all registered files).

    Raises
    ------
    FileNotFoundError
        A registered file is missing from ``source_dir``.
    ValueError
        A file's SHA-256 differs from the registry (the file is not copied).
    """
    source_dir = Path(source_dir)
    target_dir = _dataset_dir(cache_dir)
    cached = []
    for name, checksum in sintering_registry().items():
        expected = checksum.split(":", 1)[-1]
        destination = target_dir / name
        if destination.is_file() and _sha256(destination) == expected:
            cached.append(destination)
            continue
        source = source_dir / name
        if not source.is_file():
            raise FileNotFoundError(
                f"{source} is missing; source_dir must be laid out like the source "
                "(images/image_N.png, labels/label_N.png)."
            )
        actual = _sha256(source)
        if actual != expected:
            raise ValueError(
                f"SHA-256 of {source} is {actual}, the registry expects {expected}; the local "
                "copy differs from the registered source files."
            )
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, destination)
        cached.append(destination)
    return cached


def fetch_sintering(
    *,
    cache_dir: str | Path | None = None,
    progress: bool = False,
    base_url: str = SINTERING_BASE_URL,
) -> list[tuple[Path, Path]]:
    """Download (once) and verify the 20 real image/mask pairs.

    Files already in the cache with the right hash are not downloaded again.

    Parameters
    ----------
    cache_dir : str, pathlib.Path or None
        Cache root; the files go to ``<cache_dir>/msa-em-sintering/``. None uses
        :func:`data_cache_dir` (``$ETEM_DATA_DIR`` or the OS cache folder).
    progress : bool
        Show a download progress bar (needs tqdm).
    base_url : str
        Where the ``images/`` and ``labels/`` folders are; the default is the source
        repository at a fixed commit. Change only for mirrors (or tests).

    Returns
    -------
    list of (pathlib.Path, pathlib.Path)
        (image, mask) paths, ordered by index N.

    Raises
    ------
    RealDataUnavailableError
        A file is not cached and cannot be downloaded. Notebooks catch it and carry on with
        simulated data only.
    ValueError
        A downloaded file does not match its registered hash (raised by pooch).
    """
    import pooch
    import requests

    registry = sintering_registry()
    path = _dataset_dir(cache_dir)
    # ETEM_DATA_DIR is honoured through data_cache_dir(); pooch's own ``env`` argument is not
    # used because it would override an explicit cache_dir and drop the per-dataset subfolder.
    fetcher = pooch.create(
        path=path,
        base_url=base_url if base_url.endswith("/") else base_url + "/",
        registry=registry,
        retry_if_failed=0,
    )
    try:
        pairs = [
            (
                Path(fetcher.fetch(image, progressbar=progress)),
                Path(fetcher.fetch(label, progressbar=progress)),
            )
            for image, label in _pairs(registry)
        ]
    except (requests.exceptions.RequestException, OSError) as err:
        raise RealDataUnavailableError(
            f"Could not download the real sintering images from {base_url} into {path} "
            f"({type(err).__name__}: {err}). To use them: connect to the internet and run "
            "etem_helpers.datasets.real.fetch_sintering() once, or copy the files "
            "(images/image_N.png, labels/label_N.png) into that folder or with "
            f"populate_cache_from(source_dir), or set {ENV_VAR} to a folder that holds "
            f"{_SUBDIR}/. The notebooks carry on with simulated data without them."
        ) from err
    return pairs


def _read_channel0(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as handle:
        array = np.asarray(handle)
    return array[..., 0] if array.ndim == 3 else array


def load_sintering(
    *,
    cache_dir: str | Path | None = None,
    progress: bool = False,
    base_url: str = SINTERING_BASE_URL,
) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """Load the 20 real image/mask pairs (downloading them first if needed).

    The PNGs are RGBA with three identical colour channels; channel 0 is read. Masks are
    0/255 and become bool. The pixel size is unknown (:data:`SINTERING_PIXEL_SIZE_NM` is
    None): measure in pixels, or pass an explicit ``pixel_size_nm`` you can justify.

    Parameters
    ----------
    cache_dir, progress, base_url
        As for :func:`fetch_sintering`.

    Returns
    -------
    list of (numpy.ndarray, numpy.ndarray, str)
        (image float32 (H, W) with the original 0–255 grey values, mask bool (H, W),
        name such as ``"image_0"``), ordered by index.

    Raises
    ------
    RealDataUnavailableError
        As for :func:`fetch_sintering`.
    """
    out = []
    for image_path, mask_path in fetch_sintering(
        cache_dir=cache_dir, progress=progress, base_url=base_url
    ):
        image = _read_channel0(image_path).astype(np.float32)
        mask = _read_channel0(mask_path) > 127
        out.append((image, mask, image_path.stem))
    return out


def sintering_samples(
    pixel_size_nm: float, *, ids: Sequence[str] | None = None, cache_dir: str | Path | None = None,
    source_dir: str | Path | None = None,
) -> list[tuple[str, np.ndarray, np.ndarray, float]]:
    """The real sample as ``(name, image, true instance labels, pixel_size_nm)`` for evaluation.

    The source has binary masks, not instances: the true particles are the 8-connected
    components of each mask, so touching particles drawn as one blob count as one.

    Parameters
    ----------
    pixel_size_nm : float
        The pixel size to assume (the source gives none; nm/px).
    ids : sequence of str, optional
        Names to keep, e.g. :data:`SINTERING_EVALUATION_IDS`; None: all 20.
    cache_dir : str or pathlib.Path, optional
        As for :func:`fetch_sintering`.
    source_dir : str or pathlib.Path, optional
        A local copy of the sample (``images/``, ``labels/``) to read instead of the cache: its
        files are checked against the registry in a temporary cache (no network; ``cache_dir``
        is then ignored and nothing is written to it).

    Raises
    ------
    RealDataUnavailableError
        As for :func:`fetch_sintering`.
    """
    from scipy import ndimage

    if source_dir is not None:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            populate_cache_from(source_dir, cache_dir=tmp)
            return sintering_samples(pixel_size_nm, ids=ids, cache_dir=tmp)
    keep = None if ids is None else set(ids)
    out = []
    for image, mask, name in load_sintering(cache_dir=cache_dir):
        if keep is None or name in keep:
            labels, _ = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
            out.append((name, image, labels.astype(np.int32), float(pixel_size_nm)))
    return out
