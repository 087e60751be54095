"""Judging a generator by what it does: conditioning fidelity and the downstream test.

* :func:`conditioning_fidelity`: draw images from masks, segment them with a trained U-Net
  (the shipped one by default) and compare with the masks they were drawn from (pixel Dice,
  instance F1, diameter error). A generator that ignores or blurs its mask fails here, however
  real its texture looks.
* :func:`downstream_config` and :func:`score_on_real`: train U-Nets on (a) simulation only,
  (b) simulation + GAN images, (c) GAN images only, and score them on real annotated images
  (``benchmarks/gan_downstream.py`` runs the whole comparison with several seeds). Pixel Dice
  can look fine while instance detection collapses, so instance F1 and the size bias (area
  ratio predicted / true) are reported beside it.

Nothing runs at import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from etem_helpers.gan.synthesis import MaskRequest, draw_masks, render
from etem_helpers.metrics.matching import relative_size_errors
from etem_helpers.metrics.scoring import evaluate

__all__ = ["CONDITIONS", "SEGMENTATION_ONLY", "conditioning_fidelity", "decide_downstream",
           "downstream_config", "real_summary", "score_on_real", "summarise_downstream"]

#: The three training sets of the downstream test.
CONDITIONS = {"a": "simulation only", "b": "simulation + GAN", "c": "GAN only"}

#: Analyzer settings that stop after the instance labels (no sizing network, no faults, no
#: scale-bar search): the labels scored here do not depend on those stages.
SEGMENTATION_ONLY = {"size_estimator": None, "faults": False, "annotations": False}


def _size_errors(evaluation) -> dict[str, float]:
    """:func:`~etem_helpers.metrics.relative_size_errors` over the matched pairs of every image."""
    import pandas as pd

    frames = [r["errors"] for records in evaluation.records.values() for r in records
              if len(r["errors"])]
    errors = (pd.concat(frames, ignore_index=True) if frames
              else pd.DataFrame({"true_diameter_nm": [], "pred_diameter_nm": []}))
    return relative_size_errors(errors)


def real_summary(evaluation, names: Iterable[str] | None = None) -> dict[str, float]:
    """Pooled pixel Dice, instance P/R/F1, foreground and matched size ratios of one method.

    Parameters
    ----------
    evaluation : etem_helpers.metrics.Evaluation
        From :func:`etem_helpers.metrics.evaluate` with exactly one method.
    names : iterable of str, optional
        Images to pool (all by default).
    """
    (method,) = evaluation.records
    keep = None if names is None else set(names)
    records = [r for r in evaluation.records[method] if keep is None or r["name"] in keep]
    pooled = evaluation.pooled(keep)[method]
    predicted = sum(r["pixel_tp"] + r["pixel_fp"] for r in records)
    true = sum(r["pixel_tp"] + r["pixel_fn"] for r in records)
    from etem_helpers.metrics.scoring import Evaluation

    sizes = _size_errors(Evaluation({method: records}))
    return {"n_images": len(records), "pixel_dice": float(pooled["pixel_dice"]),
            "precision": float(pooled["precision"]), "recall": float(pooled["recall"]),
            "f1": float(pooled["f1"]), "foreground_ratio": predicted / max(true, 1), **sizes}


def conditioning_fidelity(
    generator,
    segment: Callable[[np.ndarray, float], np.ndarray],
    *,
    pixel_size_nm: float,
    n_images: int = 8,
    request: MaskRequest | None = None,
    image_size_px: int = 256,
    seed: int = 0,
) -> dict[str, Any]:
    """Segment generated images and compare with the masks they were drawn from.

    Parameters
    ----------
    generator : torch.nn.Module
        From :func:`etem_helpers.gan.load_generator` (eval mode).
    segment : callable
        ``segment(image, pixel_size_nm) -> instance labels``, e.g.
        ``lambda im, px: Analyzer("default", **SEGMENTATION_ONLY)(im, px).labels``.
    pixel_size_nm : float
        The generator's pixel size (``card.pixel_size_nm``).
    n_images, request, image_size_px, seed
        Masks drawn with :func:`etem_helpers.gan.draw_masks` (mask ``i``'s noise seed is
        ``seed * 1000 + i``).

    Returns
    -------
    dict
        :func:`real_summary` of the comparison (``pixel_dice``, ``f1``, ``diameter_error``
        = mean |d_pred - d_true| / d_true over matched particles, ``diameter_bias``,
        ``median_area_ratio``, ...), plus ``images`` and ``masks`` for plotting.
    """
    masks = draw_masks(n_images, request, image_size_px=image_size_px,
                       pixel_size_nm=pixel_size_nm, seed=seed)
    images = [render(generator, labels, pixel_size_nm, seed=seed * 1000 + i)
              for i, (labels, *_rest) in enumerate(masks)]
    samples = [(f"mask_{i}", image, labels, pixel_size_nm)
               for i, (image, (labels, *_rest)) in enumerate(zip(images, masks, strict=True))]
    evaluation = evaluate(samples, {"segmentation": segment})
    return {**real_summary(evaluation), "images": images,
            "masks": [labels for labels, *_rest in masks]}


def downstream_config(dataset_dir, *, seed: int, epochs: int, tile_px: int,
                      tiles_per_image: int, pixel_size_nm: float) -> dict[str, Any]:
    """The U-Net training configuration of one downstream run (only data and seed vary).

    Every image is resampled to the real images' ``pixel_size_nm``; 85 % of the micrographs
    train, 15 % validate (early stopping and the post-processing choice); the real images
    are the test.
    """
    return {"dataset_dir": str(dataset_dir), "split_fractions": [0.85, 0.15, 0.0],
            "target_pixel_size_nm": float(pixel_size_nm), "pixel_size_range_nm": [0.025, 1.0],
            "preset": "light", "epochs": int(epochs), "tile_px": int(tile_px),
            "tiles_per_image": int(tiles_per_image), "early_stopping_patience": 4,
            "device": "cpu", "seed": int(seed), "weights_dtype": "float32",
            "blur_probability": 0.5, "max_blur_sigma_px": 3.0}


def score_on_real(checkpoint, samples: list, *, evaluation_ids: Iterable[str],
                  device: str = "cpu") -> Mapping[str, float]:
    """:func:`real_summary` of a U-Net checkpoint on real ``(name, image, labels, px)`` samples."""
    from etem_helpers.pipeline import Analyzer

    analyzer = Analyzer(checkpoint, device=device, **SEGMENTATION_ONLY)
    evaluation = evaluate(samples, {"unet": lambda image, px: analyzer(image, px).labels})
    return real_summary(evaluation, evaluation_ids)


def summarise_downstream(runs: list[dict]) -> dict[str, dict]:
    """Mean, min, max and range (max - min) over seeds of each real score, per condition.

    Parameters
    ----------
    runs : list of dict
        ``{"condition": "a" | "b" | "c", "seed": int, "real": real_summary(...)}`` per run.
    """
    out: dict[str, dict] = {}
    for condition in CONDITIONS:
        rows = [r for r in runs if r["condition"] == condition]
        if not rows:
            continue
        stats = {}
        for key in ("pixel_dice", "f1", "precision", "recall", "foreground_ratio",
                    "median_area_ratio", "diameter_bias"):
            values = np.array([r["real"][key] for r in rows], dtype=float)
            stats[key] = {"mean": float(values.mean()), "min": float(values.min()),
                          "max": float(values.max()), "range": float(np.ptp(values))}
        out[condition] = {"n_seeds": len(rows), **stats}
    return out


def decide_downstream(summary: dict[str, dict]) -> str:
    """The pre-registered decision rule of the downstream test, as a sentence.

    (b) beats (a) only if mean F1(b) - mean F1(a) exceeds the larger of the two F1 seed ranges
    and mean Dice(b) is not lower than Dice(a) by more than the larger Dice seed range
    (``BENCHMARKS.md``, written before the runs).
    """
    if "a" not in summary or "b" not in summary:
        return "undecided: (a) and (b) were not both run"
    a, b = summary["a"], summary["b"]
    f1_margin = max(a["f1"]["range"], b["f1"]["range"])
    dice_margin = max(a["pixel_dice"]["range"], b["pixel_dice"]["range"])
    gain = b["f1"]["mean"] - a["f1"]["mean"]
    dice_change = b["pixel_dice"]["mean"] - a["pixel_dice"]["mean"]
    if gain > f1_margin and dice_change >= -dice_margin:
        return (f"(b) beats (a): F1 {gain:+.3f} > seed range {f1_margin:.3f}, Dice change "
                f"{dice_change:+.3f}: retrain the shipped model with GAN augmentation")
    return (f"(b) does not beat (a): F1 {gain:+.3f} against a seed range of {f1_margin:.3f} "
            f"(Dice change {dice_change:+.3f}): keep the shipped model")
