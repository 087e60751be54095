"""From predicted probabilities to particle instances, and tuning of that step on validation data.

A segmentation network outputs two probability maps (foreground and contact boundary, see
:mod:`etem_helpers.segmentation.instances`). Turning them into separate particles needs a few settings:
the foreground threshold, the boundary threshold and seed rules of the watershed, and the
smallest size and confidence an instance must have. Their best values depend on the model,
so :func:`tune_postprocess` chooses them on the *validation* split (never the test split) by
maximising instance F1, and the training command stores them in the checkpoint
(``meta["postprocess"]``), where :func:`etem_helpers.analyze` finds them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from etem_helpers.measure import SPLIT_BLOCK_PX, relabel_sequential, uses_blocks
from etem_helpers.metrics.matching import detection_scores, instance_scores
from etem_helpers.metrics.visibility import ROSE_THRESHOLD, particle_visibility
from etem_helpers.segmentation.instances import (
    filter_instances,
    split_instances,
    split_instances_blocked,
)

__all__ = [
    "DEFAULT_POSTPROCESS",
    "POSTPROCESS_GRID",
    "VISIBILITY_FLOOR_PX",
    "filter_visible",
    "postprocess_settings",
    "probabilities_to_instances",
    "score_postprocess",
    "tune_postprocess",
]

#: Settings used when a checkpoint stores none (models trained before tuning existed).
DEFAULT_POSTPROCESS: Mapping[str, float] = MappingProxyType(
    {
        "threshold": 0.5,
        "boundary_threshold": 0.5,
        "min_distance_px": 3,
        "h_px": 1.0,
        "min_size_px": 10,
        "min_confidence": 0.0,
        "h_fraction": 1.0,
    }
)

#: Values tried for each setting by :func:`tune_postprocess` (coordinate search).
POSTPROCESS_GRID: Mapping[str, tuple] = MappingProxyType(
    {
        "threshold": (0.3, 0.4, 0.5, 0.6, 0.7),
        "boundary_threshold": (0.2, 0.3, 0.5, 0.7),
        "h_px": (0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 12.0, 16.0),
        "min_distance_px": (2, 3, 5, 8),
        "min_size_px": (5, 10, 20, 40, 80, 160),
        "min_confidence": (0.0, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95),
    }
)

_SPLIT_KEYS = ("threshold", "boundary_threshold", "min_distance_px", "h_px", "h_fraction")

#: Smallest area (pixels) the visibility filter keeps: below about 4 pixels no size or shape
#: can be measured, whatever the contrast (:func:`filter_visible`).
VISIBILITY_FLOOR_PX = 4


def postprocess_settings(stored: Mapping[str, Any] | None = None, **overrides) -> dict[str, Any]:
    """Complete post-processing settings: defaults, then stored values, then overrides.

    Parameters
    ----------
    stored : dict, optional
        Settings saved with a model (``meta.get("postprocess")``).
    **overrides
        Settings given explicitly by the caller; ``None`` values are ignored.

    Returns
    -------
    dict
        Every key of :data:`DEFAULT_POSTPROCESS`.

    Raises
    ------
    ValueError
        An unknown key.
    """
    settings = dict(DEFAULT_POSTPROCESS)
    for source in (stored or {}), overrides:
        unknown = sorted(set(source) - set(DEFAULT_POSTPROCESS))
        if unknown:
            raise ValueError(
                f"Unknown post-processing setting(s) {unknown}; known: {sorted(DEFAULT_POSTPROCESS)}."
            )
        settings.update({k: v for k, v in source.items() if v is not None})
    return settings


def _split(foreground_prob, boundary_prob, settings) -> np.ndarray:
    """The watershed part of the post-processing (no size or confidence filter)."""

    split = split_instances_blocked if uses_blocks(np.shape(foreground_prob)) else split_instances
    return split(
        foreground_prob, boundary_prob, **{k: settings[k] for k in _SPLIT_KEYS}, min_size_px=1
    )


def _filter(labels, foreground_prob, settings) -> np.ndarray:
    """The size and confidence filter of the post-processing."""

    return filter_instances(
        labels,
        foreground_prob,
        min_size_px=int(settings["min_size_px"]),
        min_confidence=float(settings["min_confidence"]),
    )


def probabilities_to_instances(
    foreground_prob: np.ndarray, boundary_prob: np.ndarray | None = None, **settings
) -> np.ndarray:
    """Instance labels from probability maps: :func:`split_instances` then :func:`filter_instances`.

    Images larger than 2048² are split block by block (:func:`split_instances_blocked`,
    bounded memory).

    Parameters
    ----------
    foreground_prob, boundary_prob : ndarray of float, shape (H, W)
        Channel 0 and 1 of a prediction (probabilities 0–1); ``boundary_prob`` may be None.
    **settings
        Keys of :data:`DEFAULT_POSTPROCESS`; missing ones take the default.

    Returns
    -------
    ndarray of int32, shape (H, W)
        0 background, 1..N particles.
    """
    settings = postprocess_settings(None, **settings)
    return _filter(_split(foreground_prob, boundary_prob, settings), foreground_prob, settings)


def score_postprocess(
    probabilities: Sequence[np.ndarray],
    true_labels: Sequence[np.ndarray],
    settings: Mapping[str, Any],
    *,
    _split_cache: dict | None = None,
) -> dict[str, float]:
    """Pooled instance precision, recall and F1 (IoU >= 0.5) of one set of settings.

    Parameters
    ----------
    probabilities : sequence of ndarray, each (2, H, W)
        Foreground and boundary probabilities per image.
    true_labels : sequence of ndarray of int, each (H, W)
        True instance label maps, same shapes.
    settings : dict
        Post-processing settings (see :data:`DEFAULT_POSTPROCESS`).

    Returns
    -------
    dict
        ``tp``, ``fp``, ``fn`` summed over the images, and ``precision``, ``recall``, ``f1``.
    """

    if len(probabilities) != len(true_labels):
        raise ValueError(
            f"{len(probabilities)} probability maps but {len(true_labels)} label maps; pass one "
            "of each per image."
        )
    settings = postprocess_settings(None, **settings)
    split_key = tuple(settings[k] for k in _SPLIT_KEYS)
    cache = {} if _split_cache is None else _split_cache
    counts = {"tp": 0, "fp": 0, "fn": 0}
    for index, (prob, truth) in enumerate(zip(probabilities, true_labels, strict=True)):
        if (index, split_key) not in cache:
            cache[index, split_key] = _split(prob[0], prob[1], settings)
        scores = instance_scores(_filter(cache[index, split_key], prob[0], settings), truth)
        counts = {k: counts[k] + scores[k] for k in counts}
    return {**counts, **detection_scores(**counts)}


def tune_postprocess(
    probabilities: Sequence[np.ndarray],
    true_labels: Sequence[np.ndarray],
    *,
    grid: Mapping[str, Sequence] | None = None,
    start: Mapping[str, Any] | None = None,
    rounds: int = 2,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Choose post-processing settings that maximise pooled instance F1 (coordinate search).

    Each round tries, one setting at a time, every value in ``grid`` while the others stay
    fixed, and keeps a value only if it raises F1 (ties keep the current value, so the
    result does not depend on the grid order within ties). Use validation images only: the
    chosen settings are part of the model and must not see the test split.

    Parameters
    ----------
    probabilities : sequence of ndarray, each (2, H, W)
        Predicted foreground and boundary probabilities of the validation images.
    true_labels : sequence of ndarray of int, each (H, W)
        Their true instance label maps.
    grid : dict of str to sequence, optional
        Values to try per setting (default :data:`POSTPROCESS_GRID`).
    start : dict, optional
        Starting settings (default :data:`DEFAULT_POSTPROCESS`).
    rounds : int
        Passes over all settings (>= 1).

    Returns
    -------
    best : dict
        The chosen settings (every key of :data:`DEFAULT_POSTPROCESS`).
    trials : list of dict
        Every evaluated setting with its ``tp``, ``fp``, ``fn``, ``precision``, ``recall``,
        ``f1``, in evaluation order: ``trials[0]`` is ``start``, and the scores of ``best``
        are the first trial with the highest F1 (``max(trials, key=lambda t: t["f1"])``),
        since a setting replaces the current best only when it raises F1.
    """
    if int(rounds) != rounds or rounds < 1:
        raise ValueError(f"rounds={rounds!r} must be an integer >= 1.")
    if not probabilities:
        raise ValueError("No validation images were given; tuning needs at least one.")
    grid = dict(POSTPROCESS_GRID if grid is None else grid)
    postprocess_settings(None, **{k: None for k in grid})  # reject unknown keys early
    best = postprocess_settings(start)
    cache: dict = {}
    trials: list[dict[str, Any]] = []

    def evaluate(settings):
        scores = score_postprocess(probabilities, true_labels, settings, _split_cache=cache)
        trials.append({**settings, **scores})
        return scores["f1"]

    best_f1 = evaluate(best)
    for _ in range(int(rounds)):
        improved = False
        for key, values in grid.items():
            for value in values:
                if value == best[key]:
                    continue
                candidate = {**best, key: value}
                f1 = evaluate(candidate)
                if f1 > best_f1 + 1e-12:
                    best, best_f1, improved = candidate, f1, True
            # free split results that the remaining search cannot reuse
            if key in _SPLIT_KEYS:
                current = tuple(best[k] for k in _SPLIT_KEYS)
                for cache_key in [c for c in cache if c[1] != current]:
                    del cache[cache_key]
        if not improved:
            break
    return best, trials


def filter_visible(
    labels: np.ndarray,
    image: np.ndarray,
    *,
    min_snr: float = ROSE_THRESHOLD,
    min_size_px: int = VISIBILITY_FLOOR_PX,
    ring_px: int = 3,
    keep_area_px: int | None = None,
) -> np.ndarray:
    """Keep the instances that are visible by Rose's criterion, whatever their size.

    Instead of a fixed smallest area, an instance is kept when its contrast to the
    background ring around it is at least ``min_snr`` times the noise of a particle-sized
    patch of the background (:func:`etem_helpers.metrics.visibility.particle_visibility`,
    measured on ``image`` with every *other* instance excluded from the background; ring
    level and noise measured robustly, by the median and the median absolute deviation, since
    particles the network missed are still in that background), and it
    has at least ``min_size_px`` pixels (below a few pixels no size can be measured). An
    instance whose visibility cannot be measured (no background ring or too little
    background, SNR NaN) is kept. With ``keep_area_px``, instances of at least that area are
    kept whatever their SNR, so that the criterion only decides below a model's own smallest
    area (see Notes).

    Parameters
    ----------
    labels : ndarray of int, shape (H, W)
        Candidate instances (0 background), e.g. :func:`probabilities_to_instances` with a
        small ``min_size_px``.
    image : ndarray of float, shape (H, W)
        The micrograph on the same grid (any gain and offset; raw or normalised).
    min_snr : float
        Smallest contrast-to-noise ratio kept (> 0; Rose: 5, :data:`ROSE_THRESHOLD`).
    min_size_px : int
        Absolute floor on the area, pixels (>= 1; default :data:`VISIBILITY_FLOOR_PX`).
    ring_px : int
        Gap between an instance and its background ring, pixels (>= 0).
    keep_area_px : int, optional
        Instances with at least this many pixels are kept without the SNR test (>= 1);
        None: every instance is tested.

    Returns
    -------
    ndarray of int32, shape (H, W)
        The kept instances renumbered 1..N in the order of their old ids.

    Raises
    ------
    ValueError
        Shapes differ, ``min_snr`` not a finite positive number, ``min_size_px`` not an
        integer >= 1, or ``image`` not finite.

    Notes
    -----
    Measured on a *predicted* mask, the SNR is lower than on the true outline (the mask takes
    in the particle's diffuse edge, and missed neighbours raise the noise): on simulated
    coarse small particles the median SNR of matched predictions was 0.7-0.8 of the true
    particles' (validation images of ``benchmarks/eval_small_particles.py``). Tested on every
    instance, the criterion then removes faint but real particles that the U-Net found; with
    ``keep_area_px`` set to the model's smallest area it only adds small visible particles.
    """
    labels = np.asarray(labels)
    image = np.asarray(image)
    if labels.ndim != 2 or image.shape != labels.shape:
        raise ValueError(
            f"`labels` {labels.shape} and `image` {image.shape} must be 2-D arrays of the same "
            "shape; pass the micrograph on the grid the labels were made on."
        )
    if not np.issubdtype(labels.dtype, np.integer) or labels.min(initial=0) < 0:
        raise ValueError("`labels` must be a non-negative integer label map (0 = background).")
    number = isinstance(min_snr, int | float | np.number) and not isinstance(min_snr, bool)
    if not (number and np.isfinite(min_snr) and min_snr > 0):
        raise ValueError(f"`min_snr` must be a finite number > 0 (Rose: 5); got {min_snr!r}.")
    for name, value in (("min_size_px", min_size_px), ("keep_area_px", keep_area_px)):
        if value is None and name == "keep_area_px":
            continue
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ValueError(f"`{name}` must be an integer >= 1; got {value!r}.")
    if not np.all(np.isfinite(image)):
        raise ValueError("`image` contains NaN or inf; pass finite pixel values.")
    n_ids = int(labels.max(initial=0)) + 1
    area = np.bincount(labels.ravel(), minlength=n_ids)
    keep = area >= int(min_size_px)
    keep[0] = False
    large = np.zeros(n_ids, bool) if keep_area_px is None else keep & (area >= int(keep_area_px))
    tested = np.flatnonzero(keep & ~large)
    if tested.size:
        candidates = np.where(keep[labels], labels, 0)
        for window, ids in _visibility_windows(candidates, tested):
            table = particle_visibility(image[window], candidates[window], ring_px=ring_px,
                                        robust=True, ids=ids)
            measured = table["particle_id"].to_numpy(dtype=np.int64)
            snr = table["snr"].to_numpy(dtype=np.float64)
            keep[measured] = ~(snr < float(min_snr))  # NaN (not measurable) is kept
    return relabel_sequential(labels, keep=keep)


def _visibility_windows(labels: np.ndarray, ids: np.ndarray, margin_px: int = 256):
    """``(window, ids)`` pairs that bound the memory of :func:`filter_visible` on large images.

    Small images: one window, the whole image. Images above the blocked-split size: each id
    goes to the ``SPLIT_BLOCK_PX`` block holding the top-left corner of its bounding box, and
    is measured in that block grown by ``margin_px`` (its ring and the local background noise).
    """
    if not uses_blocks(labels.shape):
        return [((slice(None), slice(None)), ids)]
    boxes = ndi.find_objects(labels)
    starts = np.array([(boxes[i - 1][0].start, boxes[i - 1][1].start) for i in ids])
    block = starts // SPLIT_BLOCK_PX
    windows = []
    for by, bx in np.unique(block, axis=0):
        members = ids[(block[:, 0] == by) & (block[:, 1] == bx)]
        y0, x0 = by * SPLIT_BLOCK_PX, bx * SPLIT_BLOCK_PX
        window = (slice(max(0, y0 - margin_px), y0 + SPLIT_BLOCK_PX + margin_px),
                  slice(max(0, x0 - margin_px), x0 + SPLIT_BLOCK_PX + margin_px))
        windows.append((window, members))
    return windows
