"""Training loop for the particle-segmentation U-Net, and a command-line entry point.

From Python (e.g. a notebook)::

    from etem_helpers.segmentation import build_unet
    from etem_helpers.segmentation.train import train_segmentation

    model = build_unet("light", seed=0)
    history = train_segmentation(model, train_loader, val_loader, epochs=20)

From a shell::

    etem train --config config.json --out model.pt

where ``config.json`` names a dataset directory written by :mod:`etem_helpers.simulate` (or
simulator settings to create one) and the training settings; see :data:`DEFAULT_CONFIG`.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from etem_helpers.datasets.ensure import ensure_dataset
from etem_helpers.datasets.folders import read_manifest
from etem_helpers.datasets.splits import split_by_micrograph
from etem_helpers.device import get_device
from etem_helpers.io import read_micrograph, read_settings
from etem_helpers.preprocess.normalize import Normalization
from etem_helpers.segmentation.checkpoint import ModelCard, load_checkpoint, save_checkpoint
from etem_helpers.segmentation.data import SegmentationDataset
from etem_helpers.segmentation.model import build_unet, dice_bce_loss
from etem_helpers.segmentation.postprocess import DEFAULT_POSTPROCESS, tune_postprocess
from etem_helpers.segmentation.predict import predict_probabilities
from etem_helpers.segmentation.scale import dataset_diameter_range_px

__all__ = [
    "DEFAULT_CONFIG",
    "checkpoint_dataset_split",
    "evaluate_segmentation",
    "load_config",
    "main",
    "retune_checkpoint",
    "run_training",
    "train_segmentation",
    "tune_on_validation",
]

_SCHEDULERS = ("cosine", "plateau", None)
_WEIGHTS_DTYPES = ("float32", "float16")


def _batch_to_device(batch, device):
    """(image, target) from a DataLoader batch (extra items such as ids are ignored)."""
    if not isinstance(batch, list | tuple) or len(batch) < 2:
        raise ValueError(
            "Each batch must be (images (B, 1, H, W), targets (B, 2, H, W)); got "
            f"{type(batch).__name__}. Use etem_helpers.segmentation.data.SegmentationDataset or a "
            "TensorDataset of (image, target)."
        )
    import torch

    images, targets = batch[0], batch[1]
    return (
        images.to(device=device, dtype=torch.float32),
        targets.to(device=device, dtype=torch.float32),
    )


def evaluate_segmentation(
    model,
    loader,
    *,
    device="cpu",
    loss_kwargs: Mapping[str, Any] | None = None,
    threshold: float = 0.5,
) -> dict[str, float]:
    """Mean loss and foreground Dice of a model over a data loader (no gradients).

    Parameters
    ----------
    model : torch.nn.Module
        Segmentation network (2 output logits).
    loader : iterable of (images, targets)
        Batches of images (B, 1, H, W) and targets (B, 2, H, W) (or (B, 1, H, W)).
    device : str or torch.device
        Where to compute.
    loss_kwargs : dict, optional
        Keyword arguments of :func:`etem_helpers.segmentation.dice_bce_loss`.
    threshold : float
        Probability threshold (0–1) for the hard foreground mask of the Dice score.

    Returns
    -------
    dict
        ``{"loss": mean loss per image, "dice": foreground Dice over all pixels of the loader}``
        (Dice is 1.0 when neither prediction nor target has foreground).
    """
    import torch

    device = get_device(device)
    was_training = model.training
    model.eval()
    loss_sum, n_images, intersection, total = 0.0, 0, 0.0, 0.0
    try:
        with torch.inference_mode():
            for batch in loader:
                images, targets = _batch_to_device(batch, device)
                logits = model(images)
                loss = dice_bce_loss(logits, targets, **dict(loss_kwargs or {}))
                loss_sum += float(loss) * images.shape[0]
                n_images += images.shape[0]
                predicted = torch.sigmoid(logits[:, 0]) > threshold
                truth = targets[:, 0] > 0.5
                intersection += float((predicted & truth).sum())
                total += float(predicted.sum() + truth.sum())
    finally:
        model.train(was_training)
    if n_images == 0:
        raise ValueError("The loader yielded no batches; check the dataset and batch size.")
    dice = 1.0 if total == 0 else 2.0 * intersection / total
    return {"loss": loss_sum / n_images, "dice": dice}


def _make_scheduler(optimizer, scheduler: str | None, *, epochs: int, patience: int | None):
    import torch

    if scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(int(epochs), 1))
    if scheduler == "plateau":
        plateau_patience = max(1, (patience or 4) // 2)
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=0.5, patience=plateau_patience
        )
    return None


def train_segmentation(
    model,
    train_loader,
    val_loader=None,
    *,
    epochs: int,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    device="cpu",
    early_stopping_patience: int | None = 5,
    scheduler: str | None = "cosine",
    amp: bool | str = "auto",
    loss_kwargs: Mapping[str, Any] | None = None,
    progress: bool = True,
    callback: Callable[[int, dict], Any] | None = None,
) -> dict[str, Any]:
    """Train a segmentation U-Net with AdamW, keep the best epoch and restore its weights.

    Parameters
    ----------
    model : torch.nn.Module
        Network from :func:`etem_helpers.segmentation.build_unet` (trained in place).
    train_loader : torch.utils.data.DataLoader
        Batches ``(images (B, 1, H, W), targets (B, 2, H, W))``. If its dataset has
        ``set_epoch(epoch)`` (as :class:`etem_helpers.segmentation.data.SegmentationDataset`), it is called
        before every epoch so that random crops change between epochs.
    val_loader : torch.utils.data.DataLoader, optional
        Validation batches; the best epoch is the one with the lowest validation loss. Without
        it, the lowest training loss decides (and the Dice is NaN).
    epochs : int
        Maximum number of passes over ``train_loader``.
    lr : float
        Initial learning rate of AdamW.
    weight_decay : float
        AdamW weight decay.
    device : str or torch.device
        ``"cpu"``, ``"cuda"``, ``"mps"`` or ``"auto"``; the model is moved there.
    early_stopping_patience : int or None
        Stop after this many epochs without improvement of the monitored loss; None never stops
        early.
    scheduler : {"cosine", "plateau", None}
        Cosine annealing over ``epochs``; halve the learning rate when the monitored loss stalls
        for ``early_stopping_patience // 2`` epochs; or a constant learning rate.
    amp : {"auto", True, False}
        Mixed precision (float16 autocast with gradient scaling), CUDA only. ``"auto"`` enables
        it on CUDA devices.
    loss_kwargs : dict, optional
        Keyword arguments of :func:`etem_helpers.segmentation.dice_bce_loss`.
    progress : bool
        Show a tqdm progress bar over epochs.
    callback : callable, optional
        ``callback(epoch, history)`` after every epoch (epoch counts from 1), e.g. to redraw a
        live loss curve in a notebook.

    Returns
    -------
    dict
        History (plain Python types, JSON-serialisable): ``epoch``, ``train_loss``,
        ``val_loss``, ``val_dice``, ``lr``, ``seconds`` (lists, one entry per epoch),
        ``best_epoch``, ``best_loss``, ``monitor`` ("val_loss" or "train_loss"),
        ``stopped_early``. The model holds the weights of ``best_epoch`` on return.

    Notes
    -----
    On the CPU the run is deterministic when the model weights (``build_unet(seed=...)``) and
    the loader order (``DataLoader(generator=torch.Generator().manual_seed(...))``, dataset
    seed) are fixed.
    """
    import torch
    from tqdm.auto import tqdm

    if int(epochs) != epochs or epochs < 1:
        raise ValueError(f"epochs={epochs} must be a positive integer.")
    if scheduler not in _SCHEDULERS:
        raise ValueError(f"scheduler={scheduler!r} is not known; use 'cosine', 'plateau' or None.")
    if early_stopping_patience is not None and early_stopping_patience < 1:
        raise ValueError(
            f"early_stopping_patience={early_stopping_patience} must be >= 1 or None (no stop)."
        )
    device = get_device(device)
    if amp == "auto":
        use_amp = device.type == "cuda"
    elif amp in (True, False):
        use_amp = bool(amp)
        if use_amp and device.type != "cuda":
            raise ValueError(f"amp=True needs a CUDA device (got {device}); use amp='auto'.")
    else:
        raise ValueError(f"amp={amp!r} must be 'auto', True or False.")
    loss_kwargs = dict(loss_kwargs or {})

    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    lr_scheduler = _make_scheduler(
        optimizer, scheduler, epochs=int(epochs), patience=early_stopping_patience
    )
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    monitor = "val_loss" if val_loader is not None else "train_loss"
    history: dict[str, Any] = {
        "epoch": [], "train_loss": [], "val_loss": [], "val_dice": [], "lr": [], "seconds": [],
        "best_epoch": None, "best_loss": None, "monitor": monitor, "stopped_early": False,
    }  # fmt: skip
    best_loss, best_state, epochs_without_improvement = math.inf, None, 0

    bar = tqdm(range(1, int(epochs) + 1), desc="training", unit="epoch", disable=not progress)
    for epoch in bar:
        started = time.perf_counter()
        dataset = getattr(train_loader, "dataset", None)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch - 1)
        model.train()
        loss_sum, n_images = 0.0, 0
        for batch in train_loader:
            images, targets = _batch_to_device(batch, device)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
                logits = model(images)
            loss = dice_bce_loss(logits.float(), targets, **loss_kwargs)
            if not torch.isfinite(loss):
                raise RuntimeError(
                    f"The training loss became {float(loss)} at epoch {epoch}; lower lr "
                    f"(now {optimizer.param_groups[0]['lr']:.2g}) or check the inputs for NaN."
                )
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            loss_sum += float(loss.detach()) * images.shape[0]
            n_images += images.shape[0]
        if n_images == 0:
            raise ValueError("train_loader yielded no batches; check the dataset and batch size.")
        train_loss = loss_sum / n_images
        if val_loader is not None:
            scores = evaluate_segmentation(model, val_loader, device=device, loss_kwargs=loss_kwargs)
            val_loss, val_dice = scores["loss"], scores["dice"]
        else:
            val_loss, val_dice = math.nan, math.nan
        monitored = val_loss if val_loader is not None else train_loss

        history["epoch"].append(epoch)
        history["train_loss"].append(float(train_loss))
        history["val_loss"].append(float(val_loss))
        history["val_dice"].append(float(val_dice))
        history["lr"].append(float(optimizer.param_groups[0]["lr"]))
        history["seconds"].append(time.perf_counter() - started)

        if monitored < best_loss:
            best_loss, epochs_without_improvement = monitored, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            history["best_epoch"], history["best_loss"] = epoch, float(monitored)
        else:
            epochs_without_improvement += 1
        if lr_scheduler is not None:
            if scheduler == "plateau":
                lr_scheduler.step(monitored)
            else:
                lr_scheduler.step()
        bar.set_postfix(train=f"{train_loss:.3f}", val=f"{val_loss:.3f}", dice=f"{val_dice:.3f}")
        if callback is not None:
            callback(epoch, history)
        if (
            early_stopping_patience is not None
            and epochs_without_improvement >= early_stopping_patience
        ):
            history["stopped_early"] = True
            break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    return history


# --------------------------------------------------------------------------------------------
# Command line: configuration -> dataset -> training -> checkpoint
# --------------------------------------------------------------------------------------------

#: Defaults of the JSON configuration read by :func:`load_config` (read-only).
DEFAULT_CONFIG: Mapping[str, Any] = MappingProxyType(
    {
        # data: an existing dataset directory, or simulator settings to write one
        "dataset_dir": None,
        "simulate": None,  # {"n_images", "out_dir", "regime", "image_size_px", "n_jobs"}
        # more simulated images for the training split only (its own "seed"; validation,
        # test and the post-processing choice stay those of the main dataset)
        "extra_train_simulate": None,  # {"n_images", "out_dir", "seed", "dense_fraction", ...}
        "split_fractions": [0.70, 0.15, 0.15],
        "target_pixel_size_nm": None,  # None keeps each micrograph's own pixel size
        "pixel_size_range_nm": None,  # None: range of the dataset's pixel sizes
        "normalize": "percentile",
        # model and training
        "preset": "light",
        "encoder_weights": None,
        "epochs": 30,
        "batch_size": 8,
        "tile_px": 256,
        "tiles_per_image": 8,
        "augment": True,
        "blur_probability": 0.3,  # intensity augmentation: Gaussian blur of the image only
        "max_blur_sigma_px": 1.2,
        "lr": 1e-3,
        "weight_decay": 1e-4,
        "early_stopping_patience": 5,
        "scheduler": "cosine",
        "num_workers": 0,
        "device": "auto",
        "seed": 0,
        # instances: choose split/filter settings on the validation split (stored in the model)
        "tune_postprocess": True,
        # checkpoint
        "weights_dtype": "float32",  # "float16" halves the file; cast back to float32 at load
    }
)


def _check_config_types(config: Mapping[str, Any], origin: str) -> None:
    """Each setting has the type of its default (None allowed where the default is None)."""
    for key, default in DEFAULT_CONFIG.items():
        value = config[key]
        if value is None or default is None:
            continue
        expected = (int, float) if isinstance(default, float) else type(default)
        if isinstance(default, list):
            expected = (list, tuple)
        if isinstance(value, bool) != isinstance(default, bool) or not isinstance(value, expected):
            raise ValueError(
                f"'{key}' in {origin} is {value!r} ({type(value).__name__}); it must be like the "
                f"default {default!r} ({type(default).__name__})."
            )


def load_config(source: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """Read a training configuration (JSON file or dict) and fill in the defaults.

    Parameters
    ----------
    source : str, pathlib.Path or dict
        Path of a JSON file, or the configuration itself.

    Returns
    -------
    dict
        :data:`DEFAULT_CONFIG` updated with ``source``. Unknown keys raise ``ValueError`` (they
        are usually typos); exactly one of ``dataset_dir`` and ``simulate`` must be given.
    """
    config, origin = read_settings(source, DEFAULT_CONFIG)
    if (config["dataset_dir"] is None) == (config["simulate"] is None):
        raise ValueError(
            f"{origin} must give exactly one of 'dataset_dir' (an existing dataset) or "
            "'simulate' (settings for etem_helpers.simulate.generate_dataset)."
        )
    _check_config_types(config, origin)
    _check_extra_train_settings(config, origin)
    if config["weights_dtype"] not in _WEIGHTS_DTYPES:
        raise ValueError(
            f"weights_dtype={config['weights_dtype']!r} in {origin} is not known; use "
            f"one of {list(_WEIGHTS_DTYPES)}."
        )
    return config


def _check_extra_train_settings(config: Mapping[str, Any], origin: str) -> None:
    """``extra_train_simulate`` names its size, folder and a seed of its own."""
    settings = config["extra_train_simulate"]
    if settings is None:
        return
    missing = [key for key in ("n_images", "out_dir", "seed") if key not in settings]
    if missing:
        raise ValueError(
            f"'extra_train_simulate' in {origin} needs {missing}: give 'n_images', 'out_dir' "
            "and a 'seed' different from the main dataset's (its images are training-only)."
        )
    if int(settings["seed"]) == int(config["seed"]) and config["simulate"] is not None:
        raise ValueError(
            f"'extra_train_simulate' in {origin} has the main dataset's seed; its images would "
            "repeat the main dataset's validation and test images. Give it another 'seed'."
        )


def _simulated_dataset(settings: Mapping[str, Any], seed: int, *, progress: bool) -> Path:
    """:func:`ensure_dataset` from a config's simulator settings (``n_images``, ``out_dir``, ...)."""
    settings = dict(settings)
    out_dir = settings.pop("out_dir")
    n_images = int(settings.pop("n_images"))
    settings.setdefault("progress", progress)
    return ensure_dataset(out_dir, n_images, seed=int(seed), **settings).path


def _prepare_dataset(config: Mapping[str, Any], *, progress: bool = True) -> Path:
    """Dataset directory from the config, simulated first unless the same one is there already."""
    if config["dataset_dir"] is not None:
        return Path(config["dataset_dir"])
    settings = config["simulate"]
    if "out_dir" not in settings or "n_images" not in settings:
        raise ValueError("'simulate' in the config needs at least 'n_images' and 'out_dir'.")
    return _simulated_dataset(settings, config["seed"], progress=progress)


def _prepare_extra_train_dataset(config: Mapping[str, Any], *, progress: bool = True) -> Path | None:
    """The training-only dataset of ``extra_train_simulate`` (simulated first if needed), or None."""
    settings = config["extra_train_simulate"]
    if settings is None:
        return None
    settings = dict(settings)
    seed = settings.pop("seed")
    return _simulated_dataset(settings, seed, progress=progress)


def _concat_training_sets(parts: Sequence[Any]):
    """One training set of several :class:`SegmentationDataset` (main, then training-only).

    A :class:`torch.utils.data.ConcatDataset` whose ``set_epoch`` is forwarded to each part, so
    that every part draws new random crops each epoch as a single dataset does.
    """
    from torch.utils.data import ConcatDataset

    class _Concat(ConcatDataset):
        def set_epoch(self, epoch: int) -> None:
            for part in self.datasets:
                part.set_epoch(epoch)

    return _Concat(list(parts))


def _training_set(config: Mapping[str, Any], dataset_dir: Path, train_ids: Sequence[str],
                  extra_dir: Path | None, common: Mapping[str, Any]):
    """Random training crops of the main dataset's training split, then of ``extra_dir``'s images.

    ``common`` holds the :class:`SegmentationDataset` settings shared with validation (tile size,
    resampling, normalisation, seed); the training-only images draw their crops with seed + 1.
    """
    random_crops = dict(
        mode="random",
        tiles_per_image=int(config["tiles_per_image"]),
        augment=bool(config["augment"]),
        blur_probability=float(config["blur_probability"]),
        max_blur_sigma_px=float(config["max_blur_sigma_px"]),
    )
    main = SegmentationDataset(dataset_dir, train_ids, **random_crops, **common)
    if extra_dir is None:
        return main
    extra = SegmentationDataset(extra_dir, None, **random_crops,
                                **{**common, "seed": int(common["seed"]) + 1})
    return _concat_training_sets([main, extra])


def tune_on_validation(
    model,
    normalization: Normalization,
    dataset_dir: str | Path,
    val_ids: Sequence[str],
    *,
    tile_px: int = 512,
    device="cpu",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Post-processing settings that maximise instance F1 on whole validation micrographs.

    Parameters
    ----------
    model : torch.nn.Module
        The trained network (as it will be saved, e.g. with float16-rounded weights).
    normalization : Normalization
        How images are normalised before the network (the model card's).
    dataset_dir : str or pathlib.Path
        Dataset written by :func:`etem_helpers.simulate.generate_dataset`.
    val_ids : sequence of str
        Validation micrograph ids (never the test split).
    tile_px : int
        Inference tile side in pixels.
    device : str or torch.device
        Where to predict.

    Returns
    -------
    settings : dict
        See :func:`etem_helpers.segmentation.postprocess.tune_postprocess`.
    scores : dict
        Validation ``tp``, ``fp``, ``fn``, ``precision``, ``recall``, ``f1`` with the chosen
        settings and with :data:`etem_helpers.segmentation.DEFAULT_POSTPROCESS`
        (``default_f1``), and ``n_images``.
    """
    import numpy as np
    import tifffile

    dataset_dir = Path(dataset_dir)
    manifest = read_manifest(dataset_dir).set_index("micrograph_id")
    probabilities, truths = [], []
    for micrograph_id in val_ids:
        row = manifest.loc[micrograph_id]
        image = read_micrograph(dataset_dir / row["image_path"]).image
        normalized = normalization.apply(np.asarray(image, dtype=np.float32))
        probabilities.append(
            predict_probabilities(
                model, normalized, tile_px=int(tile_px), overlap_px=64, device=device
            )
        )
        truths.append(tifffile.imread(dataset_dir / row["labels_path"]).astype(np.int32))
    settings, trials = tune_postprocess(probabilities, truths, start=DEFAULT_POSTPROCESS)
    best = max(trials, key=lambda trial: trial["f1"])  # the first trial with the top F1
    scores = {key: best[key] for key in ("tp", "fp", "fn", "precision", "recall", "f1")}
    scores.update(default_f1=trials[0]["f1"], n_images=len(val_ids), n_trials=len(trials))
    return settings, scores


def _float_copy(model):
    """A float32 copy of a (possibly float16) model: what load_checkpoint will give back."""
    return copy.deepcopy(model).float().eval()


def run_training(
    config: Mapping[str, Any],
    out_path: str | Path,
    *,
    overwrite: bool = False,
    progress: bool = True,
    callback: Callable[[int, dict], Any] | None = None,
) -> tuple[dict[str, Any], Path]:
    """Train a U-Net as described by a configuration and save the checkpoint.

    Parameters
    ----------
    config : dict
        Output of :func:`load_config`.
    out_path : str or pathlib.Path
        Checkpoint to write (``.pt``); the history goes beside it as ``<name>.history.json``.
    overwrite : bool
        Replace existing output files.
    progress : bool
        Show progress bars.
    callback : callable, optional
        ``callback(epoch, history)`` after every epoch (see :func:`train_segmentation`).

    Returns
    -------
    history : dict
        From :func:`train_segmentation`, plus ``test`` scores on the test split when it is
        non-empty and ``train_seconds`` (wall-clock time of the training loop).

    Notes
    -----
    With ``weights_dtype="float16"`` the weights are stored in half precision (half the file
    size); :func:`etem_helpers.segmentation.load_checkpoint` copies them into a float32 model, so
    inference runs in float32 as usual.
    checkpoint_path : pathlib.Path
        The file written by :func:`etem_helpers.segmentation.save_checkpoint`.
    """
    import torch
    from torch.utils.data import DataLoader

    config = load_config(config)
    out_path = Path(out_path)
    history_path = out_path.with_name(out_path.stem + ".history.json")
    for path in (out_path, history_path):
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; pass --overwrite (overwrite=True) to replace it.")
    seed = int(config["seed"])
    dataset_dir = _prepare_dataset(config, progress=progress)
    manifest = read_manifest(dataset_dir)
    split = split_by_micrograph(
        manifest["micrograph_id"], fractions=config["split_fractions"], seed=seed
    )
    common = dict(
        tile_px=int(config["tile_px"]),
        target_pixel_size_nm=config["target_pixel_size_nm"],
        normalize=config["normalize"],
        seed=seed,
    )
    extra_dir = _prepare_extra_train_dataset(config, progress=progress)
    train_set = _training_set(config, dataset_dir, split["train"], extra_dir, common)
    loader_kwargs = dict(batch_size=int(config["batch_size"]), num_workers=int(config["num_workers"]))
    train_loader = DataLoader(
        train_set, shuffle=True, generator=torch.Generator().manual_seed(seed), **loader_kwargs
    )
    val_loader = None
    if split["val"]:
        val_set = SegmentationDataset(dataset_dir, split["val"], mode="grid", **common)
        val_loader = DataLoader(val_set, shuffle=False, **loader_kwargs)

    model = build_unet(config["preset"], encoder_weights=config["encoder_weights"], seed=seed)
    started = time.perf_counter()
    history = train_segmentation(
        model,
        train_loader,
        val_loader,
        epochs=int(config["epochs"]),
        lr=float(config["lr"]),
        weight_decay=float(config["weight_decay"]),
        device=config["device"],
        early_stopping_patience=config["early_stopping_patience"],
        scheduler=config["scheduler"],
        progress=progress,
        callback=callback,
    )
    history["train_seconds"] = time.perf_counter() - started
    metrics: dict[str, Any] = {
        "train_seconds": history["train_seconds"],
        "epochs_run": len(history["epoch"]),
        "best_epoch": history["best_epoch"],
        "best_loss": history["best_loss"],
        "monitor": history["monitor"],
    }
    if val_loader is not None:
        metrics["val_dice"] = history["val_dice"][history["best_epoch"] - 1]
    if split["test"]:
        test_set = SegmentationDataset(dataset_dir, split["test"], mode="grid", **common)
        test_scores = evaluate_segmentation(
            model, DataLoader(test_set, shuffle=False, **loader_kwargs), device=config["device"]
        )
        metrics.update(test_loss=test_scores["loss"], test_dice=test_scores["dice"])
        history["test"] = test_scores

    pixel_sizes = manifest["pixel_size_nm"].astype(float)
    if config["target_pixel_size_nm"] is not None:
        pixel_size_nm = float(config["target_pixel_size_nm"])
    else:
        pixel_size_nm = float(pixel_sizes.median())
    pixel_size_range_nm = config["pixel_size_range_nm"] or [
        float(pixel_sizes.min()),
        float(pixel_sizes.max()),
    ]
    model = model.cpu()
    if config["weights_dtype"] == "float16":
        model = model.half()  # integer buffers (BatchNorm counters) are left as they are
    postprocess = None
    if config["tune_postprocess"] and split["val"]:
        tuned_started = time.perf_counter()
        postprocess, val_scores = tune_on_validation(
            _float_copy(model), Normalization(method=config["normalize"]), dataset_dir,
            split["val"], device=config["device"],
        )
        metrics.update(
            val_instance_f1=val_scores["f1"],
            val_instance_f1_default_postprocess=val_scores["default_f1"],
            tune_seconds=time.perf_counter() - tuned_started,
        )
        history["postprocess"] = {"settings": postprocess, "val_scores": val_scores}
    card = ModelCard(
        preset=config["preset"],
        normalization=Normalization(method=config["normalize"]),
        pixel_size_nm=pixel_size_nm,
        pixel_size_range_nm=tuple(pixel_size_range_nm),
        tile_px=int(config["tile_px"]),
        metrics=metrics,
        config={**config, "dataset_dir": str(dataset_dir), "split": split,
                **({"extra_train_dataset_dir": str(extra_dir)} if extra_dir is not None else {})},
        postprocess=postprocess or {},
        diameter_range_px=dataset_diameter_range_px(
            dataset_dir, split["train"], target_pixel_size_nm=config["target_pixel_size_nm"]),
    )
    checkpoint_path = save_checkpoint(out_path, model, card, overwrite=overwrite)
    history_path.write_text(json.dumps(history, indent=2))
    return history, checkpoint_path


def checkpoint_dataset_split(config: Mapping[str, Any]) -> tuple[Path, dict[str, list]]:
    """The dataset and train/val/test split a checkpoint was trained on.

    Re-simulates the dataset if its folder is gone (deterministic from the config's seed; a
    folder made by another simulator revision is refused, see :func:`_prepare_dataset`) and
    recomputes the split with :func:`etem_helpers.datasets.split_by_micrograph`.

    Parameters
    ----------
    config : dict
        ``meta["config"]`` of a checkpoint written by :func:`run_training`.

    Returns
    -------
    dataset_dir : pathlib.Path
    split : dict
        ``{"train": [...], "val": [...], "test": [...]}`` micrograph ids.

    Raises
    ------
    RuntimeError
        The recomputed split differs from the one stored in the config: the folder does not
        hold the data the model was trained on.
    """

    # "split" and "extra_train_dataset_dir" are records written by run_training, not settings
    records = ("split", "extra_train_dataset_dir")
    settings = {k: v for k, v in config.items() if k not in records}
    if settings.get("simulate") is not None:
        settings["dataset_dir"] = None  # the stored path is where it was simulated to
    settings = load_config(settings)
    dataset_dir = Path(_prepare_dataset(settings, progress=False))
    manifest = read_manifest(dataset_dir)
    split = split_by_micrograph(
        manifest["micrograph_id"], fractions=settings["split_fractions"],
        seed=int(settings["seed"]),
    )
    stored = config.get("split")
    if stored is not None and any(list(stored[k]) != list(split[k]) for k in stored):
        raise RuntimeError(
            f"The split recomputed from {dataset_dir} differs from the one stored in the "
            "checkpoint; the folder does not hold the dataset the model was trained on. Delete "
            "it to have it regenerated from the config."
        )
    return dataset_dir, split


def retune_checkpoint(
    checkpoint: str | Path, out_path: str | Path, *, overwrite: bool = False
) -> tuple[dict[str, Any], Path]:
    """Choose post-processing settings for an existing checkpoint and save a copy with them.

    The weights and all other metadata are kept; only ``postprocess`` and the validation
    instance scores in ``metrics`` are (re)written. The dataset and split come from the
    checkpoint's own training configuration, so the result is what
    ``etem train`` with ``"tune_postprocess": true`` would have stored.

    Parameters
    ----------
    checkpoint : str or pathlib.Path
        Checkpoint written by :func:`run_training`.
    out_path : str or pathlib.Path
        Where to write the tuned checkpoint (may equal ``checkpoint`` with ``overwrite``).
    overwrite : bool
        Replace ``out_path`` if it exists.

    Returns
    -------
    scores : dict
        Validation scores (see :func:`tune_on_validation`) and the chosen ``settings``.
    path : pathlib.Path
        The written checkpoint.
    """

    out_path = Path(out_path)
    if out_path.exists() and not overwrite:
        raise FileExistsError(f"{out_path} exists; pass --overwrite (overwrite=True) to replace it.")
    model, card = load_checkpoint(checkpoint, device="cpu")
    dataset_dir, split = checkpoint_dataset_split(card.config)
    settings, scores = tune_on_validation(
        model, card.normalization, dataset_dir, split["val"], device="cpu"
    )
    metrics = {
        **card.metrics,
        "val_instance_f1": scores["f1"],
        "val_instance_f1_default_postprocess": scores["default_f1"],
    }
    if card.config.get("weights_dtype") == "float16":
        model = model.half()
    card = card.replace(metrics=metrics, postprocess=settings)
    path = save_checkpoint(out_path, model, card, overwrite=overwrite)
    return {**scores, "settings": settings}, path


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: ``etem train --config C.json --out M.pt``."""
    parser = argparse.ArgumentParser(
        prog="etem train",
        description="Train the particle-segmentation U-Net from a JSON configuration.",
    )
    parser.add_argument("--config", help="JSON file of settings (see DEFAULT_CONFIG)")
    parser.add_argument("--out", required=True, help="checkpoint to write, e.g. model.pt")
    parser.add_argument(
        "--retune", metavar="CHECKPOINT", default=None,
        help="do not train: choose the post-processing settings of CHECKPOINT on its "
        "validation split and write the result to --out",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument("--device", default=None, help="override the config: auto, cpu, cuda, mps")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    args = parser.parse_args(argv)
    if args.retune is not None:
        scores, path = retune_checkpoint(args.retune, args.out, overwrite=args.overwrite)
        print(
            f"Saved {path}: post-processing {scores['settings']}; validation instance F1 "
            f"{scores['f1']:.3f} (defaults {scores['default_f1']:.3f}, {scores['n_images']} images)."
        )
        return 0
    if args.config is None:
        parser.error("--config is required (unless --retune is given)")
    config = load_config(args.config)
    if args.device is not None:
        config["device"] = args.device

    def log_epoch(epoch: int, history: dict) -> None:
        print(
            f"epoch {epoch}: train loss {history['train_loss'][-1]:.4f}, val loss "
            f"{history['val_loss'][-1]:.4f}, val Dice {history['val_dice'][-1]:.4f}, "
            f"lr {history['lr'][-1]:.2e}, {history['seconds'][-1]:.0f} s",
            flush=True,
        )

    history, path = run_training(
        config,
        args.out,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        callback=log_epoch if args.no_progress else None,
    )
    best = history["best_epoch"]
    print(
        f"Saved {path} (best epoch {best}, {history['monitor']} {history['best_loss']:.4f}, "
        f"val Dice {history['val_dice'][best - 1]:.3f})."
    )
    if "postprocess" in history:
        tuned = history["postprocess"]
        print(
            f"Post-processing chosen on validation: {tuned['settings']}; instance F1 "
            f"{tuned['val_scores']['f1']:.3f} (defaults {tuned['val_scores']['default_f1']:.3f})."
        )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
