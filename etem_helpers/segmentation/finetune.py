"""Adapt a trained U-Net to a few of the user's own annotated micrographs.

No simulator covers every specimen; the practical answer (cellpose 2.0's human-in-the-loop
result) is to fine-tune on a handful of annotated images. :func:`finetune` writes the images and
masks as a dataset folder, holds some of them out for validation, trains the model further at a
low learning rate, chooses the post-processing again on the held-out images, and saves a
checkpoint whose model card says where it came from. ``etem finetune`` is its command line.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from etem_helpers.datasets.annotated import pair_files, write_annotated_dataset
from etem_helpers.datasets.folders import read_manifest
from etem_helpers.datasets.splits import split_by_micrograph
from etem_helpers.device import get_device, seed_everything
from etem_helpers.segmentation.checkpoint import load_checkpoint, model_file, save_checkpoint
from etem_helpers.segmentation.data import SegmentationDataset
from etem_helpers.segmentation.train import train_segmentation, tune_on_validation

__all__ = ["FinetuneSettings", "finetune", "main"]


@dataclass(frozen=True)
class FinetuneSettings:
    """How :func:`finetune` trains (defaults: about a minute per image on a 2-core CPU).

    Attributes
    ----------
    epochs : int
        Passes over the training crops.
    lr : float
        AdamW learning rate (low: the model is adapted, not retrained).
    tile_px : int
        Crop side in pixels.
    tiles_per_image : int
        Random crops per training image per epoch.
    batch_size : int
    val_fraction : float
        Share of the images held out for validation (at least one image).
    seed : int
    """

    epochs: int = 12
    lr: float = 3e-4
    tile_px: int = 256
    tiles_per_image: int = 16
    batch_size: int = 8
    val_fraction: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "tile_px", "tiles_per_image", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be a positive integer.")
        if not 0.0 < self.lr < 1.0:
            raise ValueError(f"lr={self.lr!r} must be a learning rate in (0, 1).")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction={self.val_fraction!r} must be in (0, 1).")


def _split(ids: Sequence[str], settings: FinetuneSettings) -> dict[str, list[str]]:
    if len(ids) < 2:
        raise ValueError(f"fine-tuning needs at least 2 annotated images (one is held out for "
                         f"validation); got {len(ids)}.")
    n_val = max(1, math.floor(settings.val_fraction * len(ids) + 0.5))
    fractions = (1.0 - n_val / len(ids), n_val / len(ids), 0.0)
    return split_by_micrograph(list(ids), fractions=fractions, seed=settings.seed)


def _loaders(dataset_dir: Path, split, card, settings: FinetuneSettings, pixel_size_nm: float):
    import torch
    from torch.utils.data import DataLoader

    low, high = card.pixel_size_range_nm
    common = dict(tile_px=settings.tile_px, normalize=card.normalization.method,
                  target_pixel_size_nm=min(max(pixel_size_nm, low), high), seed=settings.seed)
    train_set = SegmentationDataset(dataset_dir, split["train"], mode="random", augment=True,
                                    tiles_per_image=settings.tiles_per_image, **common)
    val_set = SegmentationDataset(dataset_dir, split["val"], mode="grid", **common)
    generator = torch.Generator().manual_seed(settings.seed)
    return (DataLoader(train_set, batch_size=settings.batch_size, shuffle=True,
                       generator=generator),
            DataLoader(val_set, batch_size=settings.batch_size, shuffle=False))


def finetune(images_dir: str | os.PathLike, masks_dir: str | os.PathLike,
             out_path: str | os.PathLike, *, base_model: str | os.PathLike = "default",
             pixel_size_nm: float | None = None, settings: FinetuneSettings | None = None,
             device="auto", overwrite: bool = False, progress: bool = False) -> dict[str, Any]:
    """Fine-tune a segmentation model on annotated micrographs and save it with a report.

    Parameters
    ----------
    images_dir, masks_dir : str or path-like
        Micrographs and their masks (paired by file name; see
        :func:`etem_helpers.datasets.annotated.pair_files`).
    out_path : str or path-like
        Checkpoint to write (``.pt``); the report goes beside it as ``<stem>_report.md`` and
        ``<stem>_report.json``.
    base_model : "default" or path
        Model to start from.
    pixel_size_nm : float, optional
        nm/px of the images when their files carry no calibration (never assumed).
    settings : FinetuneSettings, optional
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"mps"``.
    overwrite : bool
        Replace existing output files.
    progress : bool
        Show progress bars.

    Returns
    -------
    dict
        The report: images, split, validation instance F1 and Dice before and after, the chosen
        post-processing, seconds.
    """
    settings = settings or FinetuneSettings()
    out_path = Path(out_path)
    report_md = out_path.with_name(out_path.stem + "_report.md")
    report_json = report_md.with_suffix(".json")
    existing = [str(p) for p in (out_path, report_md, report_json) if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]} exists; pass overwrite=True to replace it.")
    pairs = pair_files(images_dir, masks_dir)
    base_path = model_file(base_model)
    torch_device = get_device(device)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="etem-finetune-") as tmp:
        dataset_dir = write_annotated_dataset(pairs, Path(tmp) / "data",
                                              pixel_size_nm=pixel_size_nm)
        ids = [p.name for p in pairs]
        split = _split(ids, settings)
        model, card = load_checkpoint(base_path, device=torch_device)
        pixel_size = float(read_manifest(dataset_dir)["pixel_size_nm"].median())
        train_loader, val_loader = _loaders(dataset_dir, split, card, settings, pixel_size)
        _, before = tune_on_validation(model, card.normalization, dataset_dir, split["val"],
                                       device=torch_device)
        seed_everything(settings.seed)
        history = train_segmentation(model, train_loader, val_loader, epochs=settings.epochs,
                                     lr=settings.lr, device=torch_device, scheduler="cosine",
                                     early_stopping_patience=None, progress=progress)
        model = model.cpu().eval()
        postprocess, val_scores = tune_on_validation(model, card.normalization, dataset_dir,
                                                     split["val"])
    seconds = time.perf_counter() - started
    report = {
        "base_model": str(base_path), "images": [str(p.image_path) for p in pairs],
        "split": split, "settings": asdict(settings), "pixel_size_nm": pixel_size,
        "val_f1_before": before["f1"], "val_f1_after": val_scores["f1"],
        "val_dice_after": history["val_dice"][history["best_epoch"] - 1],
        "best_epoch": history["best_epoch"], "postprocess": postprocess, "seconds": seconds,
    }
    config = {"finetuned_from": str(base_path), **{k: report[k] for k in
                                                   ("images", "split", "settings")}}
    new_card = card.replace(postprocess=postprocess, config=config,
                            metrics={k: report[k] for k in ("val_f1_before", "val_f1_after",
                                                            "val_dice_after", "seconds")})
    save_checkpoint(out_path, model, new_card, overwrite=overwrite)
    report_json.write_text(json.dumps(report, indent=1) + "\n")
    report_md.write_text(_report_markdown(report, out_path))
    return report


def _report_markdown(report: dict[str, Any], out_path: Path) -> str:
    split = report["split"]
    return "\n".join([
        f"# Fine-tuned model `{out_path.name}`",
        "",
        f"- Started from `{report['base_model']}`; {len(report['images'])} annotated images at "
        f"{report['pixel_size_nm']:.4g} nm/px.",
        f"- Trained on {split['train']}, validated on {split['val']} (held out from training).",
        f"- Validation instance F1: {report['val_f1_before']:.3f} before, "
        f"{report['val_f1_after']:.3f} after (post-processing chosen on the validation images "
        "each time); validation Dice after: "
        f"{report['val_dice_after']:.3f} (best epoch {report['best_epoch']}).",
        f"- Post-processing stored with the model: {report['postprocess']}.",
        f"- {report['seconds']:.0f} s. Settings: {report['settings']}.",
        "- The validation images are few: judge the model on images it has not seen "
        "(`python benchmarks/eval_finetune.py` does so for the real sample).",
        "",
    ])


def main(argv: Sequence[str] | None = None) -> int:
    """``etem finetune --images DIR --masks DIR --out model.pt``."""
    parser = argparse.ArgumentParser(prog="etem finetune", description=__doc__.splitlines()[0])
    parser.add_argument("--images", required=True, help="folder of micrographs")
    parser.add_argument("--masks", required=True, help="folder of masks (same file names)")
    parser.add_argument("--out", required=True, help="checkpoint to write, e.g. model.pt")
    parser.add_argument("--base-model", default="default", help="model to start from")
    parser.add_argument("--pixel-size-nm", type=float, default=None,
                        help="nm/px, when the image files carry no calibration")
    parser.add_argument("--epochs", type=int, default=FinetuneSettings.epochs)
    parser.add_argument("--seed", type=int, default=FinetuneSettings.seed)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    args = parser.parse_args(argv)
    report = finetune(args.images, args.masks, args.out, base_model=args.base_model,
                      pixel_size_nm=args.pixel_size_nm, device=args.device,
                      settings=FinetuneSettings(epochs=args.epochs, seed=args.seed),
                      overwrite=args.overwrite, progress=True)
    print(f"Saved {args.out}: validation F1 {report['val_f1_before']:.3f} -> "
          f"{report['val_f1_after']:.3f} in {report['seconds']:.0f} s.")
    return 0
