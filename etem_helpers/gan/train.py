"""Training the mask-conditioned GAN: losses, loop, checkpoints, and the reproducing command.

Losses (pix2pix with a least-squares adversarial term, Mao et al. 2017, which trains more
steadily than the original cross-entropy):

* discriminator: ``mean((D(c, x) - 1)^2) + mean(D(c, G(c))^2)`` over patches, halved;
* generator: ``mean((D(c, G(c)) - 1)^2) + l1_weight * mean(|B G(c) - B x|)``, ``B`` a
  Gaussian blur of ``l1_blur_sigma_px`` (0: the plain L1 of pix2pix).

The L1 term alone would give the average image of a mask (smooth, no grain); the adversarial
term alone could ignore the mask. Together: a faithful layout with real-looking texture. The
blur keeps the L1 term from punishing grain: random grain can never match the real image's
grain pixel by pixel, so an unblurred L1 pushes the generator towards smooth images.

From a shell (the shipped ``light`` generator; its report lies beside it)::

    etem gan train --real-dir ../shared/real/msa-em-sintering \\
        --config etem_helpers/models/gan_light_config.json --out etem_helpers/models/gan_light.pt

(``python -m etem_helpers.gan.train`` takes the same options.)

Nothing runs at import.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from etem_helpers._version import __version__
from etem_helpers.device import get_device
from etem_helpers.gan.conditioning import BASE_CHANNELS, n_condition_channels
from etem_helpers.gan.data import PairedCrops, TrainingImage
from etem_helpers.gan.model import GAN_PRESETS, build_discriminator, build_generator
from etem_helpers.io import read_settings, replace_atomically

__all__ = [
    "DEFAULT_GAN_CONFIG",
    "DEFAULT_GENERATOR_PATH",
    "TRAIN_GENERATOR_COMMAND",
    "gaussian_blur",
    "GAN_FORMAT",
    "GanCard",
    "load_generator",
    "run_gan_training",
    "save_generator",
    "train_gan",
]

#: The ``light`` generator shipped with the package (trained on the real calibration images).
DEFAULT_GENERATOR_PATH = Path(__file__).resolve().parents[1] / "models" / "gan_light.pt"
#: The command that reproduces it.
TRAIN_GENERATOR_COMMAND = (
    "etem gan train --real-dir ../shared/real/msa-em-sintering "
    "--config etem_helpers/models/gan_light_config.json --out etem_helpers/models/gan_light.pt"
)

#: Identifies files written by :func:`save_generator`.
GAN_FORMAT = "etem_helpers.gan_generator"
GAN_FORMAT_VERSION = 1

DEFAULT_GAN_CONFIG: Mapping[str, Any] = {
    "preset": "light",
    "crop_px": 128,
    "crops_per_epoch": 128,
    "batch_size": 8,
    "epochs": 100,
    "lr": 2e-4,
    "beta1": 0.5,
    "l1_weight": 50.0,
    "l1_blur_sigma_px": 2.0,
    "disc_layers": None,
    "min_foreground": 0.05,
    "seed": 0,
    "pixel_size_nm": 0.5,
    "device": "auto",
    "weights_dtype": "float16",
}


@dataclass(frozen=True)
class GanCard:
    """What a generator is and how it was made (saved with its weights).

    Attributes
    ----------
    preset : str
        Architecture preset (:data:`etem_helpers.gan.model.GAN_PRESETS`).
    channels : tuple of str
        Its conditioning planes, in order.
    pixel_size_nm : float
        Pixel size of the real images it learned from (nm/px): it draws images at this scale.
    training_images : tuple of str
        Names of the annotated micrographs it learned from.
    config : dict
        The training configuration.
    metrics : dict
        Final losses and training time.
    etem_helpers_version : str
        Package version that wrote it.
    """

    preset: str
    channels: tuple[str, ...]
    pixel_size_nm: float
    training_images: tuple[str, ...] = ()
    config: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    etem_helpers_version: str = __version__

    @property
    def with_simulation(self) -> bool:
        """True when the generator also sees the simulator's image."""
        return "simulated" in self.channels


def _lsgan(scores, target: float):
    return ((scores - target) ** 2).mean()


def gaussian_blur(images, sigma_px: float):
    """Gaussian blur of a batch ``(N, 1, H, W)`` (reflected edges); ``sigma_px <= 0``: unchanged.

    The L1 term compares blurred images: it anchors where particles and grey levels are, while
    the grain (which no L1 can match: it is random) is left to the discriminator.
    """
    import math

    import torch

    if sigma_px <= 0:
        return images
    radius = max(1, math.ceil(3 * sigma_px))
    x = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-0.5 * (x / sigma_px) ** 2)
    kernel = kernel / kernel.sum()
    padded = torch.nn.functional.pad(images, (radius, radius, radius, radius), mode="reflect")
    out = torch.nn.functional.conv2d(padded, kernel.view(1, 1, 1, -1))
    return torch.nn.functional.conv2d(out, kernel.view(1, 1, -1, 1))


def train_gan(
    generator,
    discriminator,
    loader,
    *,
    epochs: int,
    lr: float = 2e-4,
    beta1: float = 0.5,
    l1_weight: float = 50.0,
    l1_blur_sigma_px: float = 2.0,
    device="auto",
    progress: bool = True,
    callback: Callable[[int, dict], Any] | None = None,
) -> dict[str, list]:
    """Train generator and discriminator in turns (one step each per batch).

    Parameters
    ----------
    generator, discriminator : torch.nn.Module
        From :func:`etem_helpers.gan.model.build_generator` / ``build_discriminator``.
    loader : torch.utils.data.DataLoader
        Yields ``(conditioning, image)`` batches (:class:`~etem_helpers.gan.data.PairedCrops`);
        its dataset's ``set_epoch`` is called before each epoch when it has one.
    epochs : int
        Passes over the loader.
    lr, beta1 : float
        Adam settings (pix2pix: 2e-4, 0.5).
    l1_weight : float
        Weight of the L1 term of the generator loss.
    l1_blur_sigma_px : float
        The L1 term compares the images blurred by a Gaussian of this sigma (px)
        (:func:`gaussian_blur`); 0: plain L1 as in pix2pix.
    device : str or torch.device
        "auto" picks a GPU when there is one.
    progress : bool
        Show a progress bar.
    callback : callable, optional
        ``callback(epoch, history)`` after every epoch (live loss plots, sample grids).

    Returns
    -------
    dict
        Per-epoch means: ``epoch``, ``loss_d``, ``loss_g_adv``, ``loss_g_l1``, and
        ``seconds`` (cumulative).
    """
    import torch
    from tqdm.auto import tqdm

    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}.")
    if not l1_weight >= 0:
        raise ValueError(f"l1_weight must be >= 0, got {l1_weight!r}.")
    device = get_device(device)
    generator.to(device).train()
    discriminator.to(device).train()
    opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=(beta1, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=(beta1, 0.999))
    history: dict[str, list] = {"epoch": [], "loss_d": [], "loss_g_adv": [], "loss_g_l1": [],
                                "seconds": []}
    started = time.perf_counter()
    bar = tqdm(range(1, epochs + 1), disable=not progress, desc="GAN", unit="epoch")
    for epoch in bar:
        if hasattr(loader.dataset, "set_epoch"):
            loader.dataset.set_epoch(epoch - 1)
        sums = {"loss_d": 0.0, "loss_g_adv": 0.0, "loss_g_l1": 0.0}
        n_batches = 0
        for cond, real in loader:
            cond, real = cond.to(device), real.to(device)
            fake = generator(cond)
            opt_d.zero_grad(set_to_none=True)
            loss_d = 0.5 * (_lsgan(discriminator(torch.cat([cond, real], 1)), 1.0)
                            + _lsgan(discriminator(torch.cat([cond, fake.detach()], 1)), 0.0))
            loss_d.backward()
            opt_d.step()
            opt_g.zero_grad(set_to_none=True)
            loss_adv = _lsgan(discriminator(torch.cat([cond, fake], 1)), 1.0)
            loss_l1 = (gaussian_blur(fake, l1_blur_sigma_px)
                       - gaussian_blur(real, l1_blur_sigma_px)).abs().mean()
            (loss_adv + l1_weight * loss_l1).backward()
            opt_g.step()
            sums["loss_d"] += float(loss_d.detach())
            sums["loss_g_adv"] += float(loss_adv.detach())
            sums["loss_g_l1"] += float(loss_l1.detach())
            n_batches += 1
        history["epoch"].append(epoch)
        for key, total in sums.items():
            history[key].append(total / max(n_batches, 1))
        history["seconds"].append(time.perf_counter() - started)
        bar.set_postfix(d=f"{history['loss_d'][-1]:.3f}", g=f"{history['loss_g_adv'][-1]:.3f}",
                        l1=f"{history['loss_g_l1'][-1]:.3f}")
        if callback is not None:
            callback(epoch, history)
    generator.eval()
    discriminator.eval()
    return history


def save_generator(path, generator, card: GanCard, *, overwrite: bool = False,
                   weights_dtype: str = "float32") -> Path:
    """Save a generator with its card: a plain dict, loadable with ``weights_only=True``.

    Parameters
    ----------
    path : str or path-like
        Output ``.pt`` file (written atomically).
    generator : torch.nn.Module
        Built with ``card.preset`` and ``len(card.channels)`` input planes.
    card : GanCard
        What it is.
    overwrite : bool
        Replace an existing file.
    weights_dtype : {"float32", "float16"}
        Storage precision of the floating-point weights (float16 halves the file).
    """
    import torch

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it.")
    if not isinstance(card, GanCard):
        raise TypeError(f"card must be a GanCard, got {type(card).__name__}.")
    if weights_dtype not in ("float32", "float16"):
        raise ValueError(f"weights_dtype must be 'float32' or 'float16', got {weights_dtype!r}.")
    reference = build_generator(card.preset, in_channels=len(card.channels)).state_dict()
    state = {k: v.detach().cpu().clone() for k, v in generator.state_dict().items()}
    if set(reference) != set(state) or any(reference[k].shape != state[k].shape for k in state):
        raise ValueError(
            f"The generator does not match preset={card.preset!r} with {len(card.channels)} "
            "conditioning planes; pass the card it was built with."
        )
    if weights_dtype == "float16":
        state = {k: (v.half() if v.is_floating_point() else v) for k, v in state.items()}
    payload = {"format": GAN_FORMAT, "format_version": GAN_FORMAT_VERSION,
               "card": json.loads(json.dumps(asdict(card))), "state_dict": state}
    with replace_atomically(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_generator(path="default", *, device="cpu"):
    """Load a generator saved by :func:`save_generator` (no code is executed).

    ``path="default"`` loads the shipped ``light`` generator (:data:`DEFAULT_GENERATOR_PATH`).

    Returns
    -------
    generator : torch.nn.Module
        float32, in eval mode, on ``device``.
    card : GanCard
    """
    import torch

    path = DEFAULT_GENERATOR_PATH if isinstance(path, str) and path == "default" else Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"GAN generator {path} not found; train one with `etem gan train` "
            "or pass the path of a file written by etem_helpers.gan.save_generator."
        )
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != GAN_FORMAT:
        raise ValueError(f"{path} is not a GAN generator written by etem_helpers.gan.")
    if payload.get("format_version") != GAN_FORMAT_VERSION:
        raise ValueError(
            f"{path} has GAN format version {payload.get('format_version')}; this package "
            f"reads version {GAN_FORMAT_VERSION}. Retrain it with this version."
        )
    raw = dict(payload["card"])
    raw["channels"] = tuple(raw["channels"])
    raw["training_images"] = tuple(raw.get("training_images", ()))
    card = GanCard(**raw)
    generator = build_generator(card.preset, in_channels=len(card.channels))
    generator.load_state_dict({k: v.float() if v.is_floating_point() else v
                               for k, v in payload["state_dict"].items()})
    return generator.to(get_device(device)).eval(), card


def load_gan_config(source: str | Path | Mapping[str, Any] | None) -> dict[str, Any]:
    """A training configuration (JSON file, dict or None) with defaults filled in.

    Unknown keys raise ``ValueError`` naming them (usually typos).
    """
    config, origin = read_settings(source, DEFAULT_GAN_CONFIG, what="GAN configuration")
    if config["preset"] not in GAN_PRESETS:
        raise ValueError(f"preset={config['preset']!r} in {origin}; use one of {sorted(GAN_PRESETS)}.")
    return config


def run_gan_training(
    images: Sequence[TrainingImage],
    config: Mapping[str, Any] | str | Path | None = None,
    out_path: str | Path | None = None,
    *,
    overwrite: bool = False,
    progress: bool = True,
    callback: Callable[[int, dict], Any] | None = None,
):
    """Train a generator on annotated micrographs as a configuration says, and save it.

    Parameters
    ----------
    images : sequence of TrainingImage
        :func:`etem_helpers.gan.data.training_images` of the annotated micrographs.
    config : dict, path or None
        :data:`DEFAULT_GAN_CONFIG` overrides.
    out_path : str or pathlib.Path, optional
        Where to save the generator (and ``<stem>.history.json``); None: do not save.
    overwrite, progress, callback
        As for :func:`save_generator` / :func:`train_gan`.

    Returns
    -------
    generator : torch.nn.Module
    card : GanCard
    history : dict
    """
    import torch
    from torch.utils.data import DataLoader

    config = load_gan_config(config)
    if out_path is not None:
        out_path = Path(out_path)
        for path in (out_path, out_path.with_name(out_path.stem + ".history.json")):
            if path.exists() and not overwrite:
                raise FileExistsError(f"{path} exists; pass --overwrite (overwrite=True).")
    seed = int(config["seed"])
    with_simulation = any(im.simulated is not None for im in images)
    crops = PairedCrops(images, crop_px=int(config["crop_px"]),
                        crops_per_epoch=int(config["crops_per_epoch"]), seed=seed,
                        min_foreground=float(config["min_foreground"]),
                        with_simulation=with_simulation)
    loader = DataLoader(crops, batch_size=int(config["batch_size"]), shuffle=False,
                        drop_last=True)
    channels = BASE_CHANNELS + (("simulated",) if with_simulation else ())
    in_channels = n_condition_channels(with_simulation)
    generator = build_generator(config["preset"], in_channels=in_channels, seed=seed)
    discriminator = build_discriminator(config["preset"], in_channels=in_channels, seed=seed + 1,
                                        n_layers=config["disc_layers"])
    torch.manual_seed(seed)
    history = train_gan(generator, discriminator, loader, epochs=int(config["epochs"]),
                        lr=float(config["lr"]), beta1=float(config["beta1"]),
                        l1_weight=float(config["l1_weight"]),
                        l1_blur_sigma_px=float(config["l1_blur_sigma_px"]), device=config["device"],
                        progress=progress, callback=callback)
    card = GanCard(
        preset=config["preset"], channels=channels, pixel_size_nm=float(config["pixel_size_nm"]),
        training_images=tuple(im.name for im in images), config=dict(config),
        metrics={"train_seconds": history["seconds"][-1], "loss_d": history["loss_d"][-1],
                 "loss_g_adv": history["loss_g_adv"][-1], "loss_g_l1": history["loss_g_l1"][-1],
                 "steps": int(config["epochs"]) * len(loader)},
    )
    generator = generator.cpu()
    if out_path is not None:
        save_generator(out_path, generator, card, overwrite=overwrite,
                       weights_dtype=config["weights_dtype"])
        out_path.with_name(out_path.stem + ".history.json").write_text(json.dumps(history))
    return generator, card, history


def real_training_images(real_dir: str | Path | None, pixel_size_nm: float) -> list[TrainingImage]:
    """The real sample's calibration images (image_0..4, never its evaluation images).

    ``real_dir``: a local copy to check and cache from (no network); None: the download cache.
    """
    from etem_helpers.datasets.real import SINTERING_CALIBRATION_IDS, sintering_samples
    from etem_helpers.gan.data import training_images

    samples = sintering_samples(pixel_size_nm, ids=SINTERING_CALIBRATION_IDS, source_dir=real_dir)
    return training_images(samples)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m etem_helpers.gan.train``: the same as ``etem gan train``."""
    from etem_helpers.gan.cli import gan_command

    return gan_command(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
