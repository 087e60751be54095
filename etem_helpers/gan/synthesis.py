"""Controlled synthesis: masks of chosen size and shape, drawn into images by a generator.

The masks come from the simulator's own shape sampler and particle placement
(:func:`etem_helpers.simulate.specimen.place_particles`), so every shape the simulator knows
is available, rare ones included (rods, aggregates, touching pairs), with an exact
ground-truth particle table. Only the grey levels come from the GAN.

:func:`generate` writes a dataset in the folder format of
:func:`etem_helpers.simulate.generate_dataset` (``images/``, ``labels/``, ``manifest.csv``,
``particles.csv``, ``dataset.json``), so it trains a U-Net (``etem train`` with
``dataset_dir``) or feeds any evaluation exactly as a simulated set does.

Nothing runs at import.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from etem_helpers._version import __version__
from etem_helpers.gan.conditioning import condition_planes
from etem_helpers.io import as_path, write_micrograph
from etem_helpers.simulate.dataset import check_out_dir, write_labels
from etem_helpers.simulate.micrograph import ground_truth_table, simulate_from_particles
from etem_helpers.simulate.params import KINDS, SimulationParams
from etem_helpers.simulate.specimen import place_particles, render_labels

__all__ = ["GAN_GENERATOR_TAG", "MaskRequest", "draw_masks", "generate", "render"]

#: The ``generator`` tag of the ``dataset.json`` that :func:`generate` writes.
GAN_GENERATOR_TAG = "etem_helpers.gan.generate"


@dataclass(frozen=True)
class MaskRequest:
    """What the drawn masks should hold.

    Attributes
    ----------
    diameter_range_nm : (float, float)
        Particle diameters, within 1-100 nm (for rods: the width; aggregates: overall size).
    kinds : tuple of str
        Shapes (:data:`etem_helpers.simulate.params.KINDS`): "round", "faceted",
        "decahedral", "rod", "nanotube", "aggregate".
    round_fraction : float or None
        Probability of "round" when it is among ``kinds`` (None: all kinds equally likely).
    n_particles : int
        Objects to place per image (fewer when they do not fit).
    touching_fraction : float
        Fraction placed in contact with a neighbour (aggregated assemblies: high).
    outline_roughness : float
        Round particles: 0 = ellipses (aspect ratio 1-1.25), up to 0.3 = irregular outlines
        (lower roundness).
    diameter_distribution : {"log-uniform", "uniform"}
        Within ``diameter_range_nm``.
    """

    diameter_range_nm: tuple[float, float] = (15.0, 45.0)
    kinds: tuple[str, ...] = ("round",)
    round_fraction: float | None = None
    n_particles: int = 15
    touching_fraction: float = 0.3
    outline_roughness: float = 0.1
    diameter_distribution: str = "log-uniform"

    def params(self, image_size_px: int, pixel_size_nm: float) -> SimulationParams:
        """The simulator parameters that place these particles (validated there)."""
        unknown = sorted(set(self.kinds) - set(KINDS))
        if unknown:
            raise ValueError(f"kinds {unknown} are not known; use some of {list(KINDS)}.")
        return SimulationParams(
            regime="lowmag", image_size_px=int(image_size_px), pixel_size_nm=float(pixel_size_nm),
            n_particles=int(self.n_particles),
            diameter_range_nm=tuple(float(d) for d in self.diameter_range_nm),
            diameter_distribution=self.diameter_distribution, kinds=tuple(self.kinds),
            round_fraction=self.round_fraction, touching_fraction=float(self.touching_fraction),
            outline_roughness=float(self.outline_roughness), edge_fraction=0.3,
            defocus_nm=-2000.0,
        )


def draw_masks(
    n_images: int,
    request: MaskRequest | None = None,
    *,
    image_size_px: int = 512,
    pixel_size_nm: float = 0.5,
    seed: int = 0,
) -> list[tuple[np.ndarray, pd.DataFrame, SimulationParams, list]]:
    """Draw ``n_images`` instance masks with the simulator's sampler.

    Parameters
    ----------
    n_images : int
        Number of masks.
    request : MaskRequest, optional
        Sizes and shapes (default: :class:`MaskRequest`()).
    image_size_px : int
        Side of each mask (64-4096; a multiple of 16 for the ``light`` generator).
    pixel_size_nm : float
        nm/px of the masks (use the generator's ``card.pixel_size_nm``).
    seed : int
        Mask ``i`` comes from ``SeedSequence(seed, spawn_key=(i,))``.

    Returns
    -------
    list of (labels, particles, params, objects)
        int32 labels, the ground-truth particle table (contract columns + kind), the
        simulator parameters and the placed objects (for :func:`simulate_from_particles`).
    """
    if isinstance(n_images, bool) or not isinstance(n_images, int) or n_images < 1:
        raise ValueError(f"n_images must be a positive integer, got {n_images!r}.")
    request = request or MaskRequest()
    params = request.params(image_size_px, pixel_size_nm)
    out = []
    for i in range(n_images):
        rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(i,)))
        particles = place_particles(params, rng)
        labels, kept = render_labels(particles, params)
        objects = [particles[k] for k in kept]
        table = ground_truth_table(labels, objects, params)
        out.append((labels, table, params, objects))
    return out


def render(generator, labels: np.ndarray, pixel_size_nm: float, *, seed: int = 0,
           simulated: np.ndarray | None = None, device="cpu") -> np.ndarray:
    """Draw the image of one mask with a generator (pass it in eval mode, as load_generator does).

    Parameters
    ----------
    generator : torch.nn.Module
        From :func:`etem_helpers.gan.load_generator`.
    labels : numpy.ndarray
        2-D instance labels; sides must be multiples of 16 (``light``) / 32 (``paper``).
    pixel_size_nm : float
        nm/px (the ``scale`` plane).
    seed : int
        Seed of the ``noise`` plane.
    simulated : numpy.ndarray, optional
        The simulator's image of the mask, for generators trained with it.
    device : str
        Torch device.

    Returns
    -------
    numpy.ndarray
        float32 image in [-1, 1].
    """
    import torch

    cond = condition_planes(labels, pixel_size_nm, rng=np.random.default_rng(seed),
                            simulated=simulated)
    with torch.inference_mode():
        out = generator(torch.from_numpy(cond)[None].to(device))
    return out[0, 0].float().cpu().numpy()


def _gan_units_to_counts(image: np.ndarray) -> np.ndarray:
    """[-1, 1] to the 0-255 grey range of 8-bit micrographs (float32, not quantised)."""
    return ((image + 1.0) * 127.5).astype(np.float32)


def generate(
    generator_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    n_images: int,
    *,
    request: MaskRequest | None = None,
    image_size_px: int = 512,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
    device="cpu",
) -> Path:
    """Draw masks and let a trained generator render them: a dataset folder.

    Parameters
    ----------
    generator_path : str or path-like
        A generator file (:func:`etem_helpers.gan.save_generator`), or "default" for the
        shipped ``light`` generator.
    out_dir : str or path-like
        Dataset folder to write (the layout of :func:`etem_helpers.simulate.generate_dataset`).
    n_images : int
        Number of images.
    request : MaskRequest, optional
        Sizes and shapes of the particles.
    image_size_px : int
        Image side (a multiple of 32).
    seed : int
        Masks and noise planes follow from it.
    overwrite : bool
        Replace a dataset that :func:`generate` wrote in ``out_dir`` (only its own files);
        a non-empty folder holding anything else is refused.
    progress : bool
        Show a progress bar.
    device : str
        Torch device for the generator.

    Returns
    -------
    pathlib.Path
        ``out_dir``.
    """
    from tqdm.auto import tqdm

    from etem_helpers.gan.train import load_generator

    if isinstance(image_size_px, bool) or not isinstance(image_size_px, int) \
            or image_size_px % 32 or not 64 <= image_size_px <= 4096:
        raise ValueError(
            f"image_size_px must be a multiple of 32 in [64, 4096], got {image_size_px!r}."
        )
    generator, card = load_generator(generator_path, device=device)
    out_dir = as_path(out_dir, argument="out_dir")
    masks = draw_masks(n_images, request, image_size_px=image_size_px,
                       pixel_size_nm=card.pixel_size_nm, seed=seed)
    check_out_dir(out_dir, overwrite, generator_tag=GAN_GENERATOR_TAG)
    for name in ("images", "labels"):
        (out_dir / name).mkdir(parents=True, exist_ok=True)
    rows, tables = [], []
    for i, (labels, table, params, objects) in enumerate(
            tqdm(masks, disable=not progress, desc="generating", unit="img")):
        simulated = None
        if card.with_simulation:
            simulated = simulate_from_particles(params, objects, seed=seed * 100003 + i).image
        image = _gan_units_to_counts(render(generator, labels, card.pixel_size_nm,
                                            seed=seed * 100003 + i, simulated=simulated,
                                            device=device))
        mid = f"gan_{i:05d}"
        write_micrograph(out_dir / f"images/{mid}.mrc", image, card.pixel_size_nm,
                         overwrite=True, metadata={"renderer": "gan"})
        write_labels(out_dir / f"labels/{mid}.tif", labels, card.pixel_size_nm)
        rows.append({"micrograph_id": mid, "image_path": f"images/{mid}.mrc",
                     "labels_path": f"labels/{mid}.tif", "regime": "lowmag",
                     "pixel_size_nm": card.pixel_size_nm, "renderer": "gan",
                     "seed": seed * 100003 + i, "n_particles": int(labels.max(initial=0)),
                     "image_units": "grey level (0-255 scale)", "image_size_px": image_size_px})
        tables.append(table.assign(micrograph_id=mid))
    pd.DataFrame(rows).to_csv(out_dir / "manifest.csv", index=False)
    particles = pd.concat(tables, ignore_index=True)
    particles = particles[["micrograph_id"] + [c for c in particles if c != "micrograph_id"]]
    particles.to_csv(out_dir / "particles.csv", index=False)
    info = {
        "generator": GAN_GENERATOR_TAG, "generator_version": __version__,
        "arguments": {"generator_path": str(generator_path), "n_images": int(n_images),
                      "image_size_px": image_size_px, "seed": int(seed),
                      "request": asdict(request or MaskRequest())},
        "gan_card": {"preset": card.preset, "channels": list(card.channels),
                     "pixel_size_nm": card.pixel_size_nm,
                     "training_images": list(card.training_images)},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "n_particles_total": int(len(particles)),
    }
    (out_dir / "dataset.json").write_text(json.dumps(info, indent=2))
    return out_dir
