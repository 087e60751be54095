"""Run segmentation and sizing methods on a dataset and compare them with its reference.

A *sample* is ``(image_id, image, true_labels, pixel_size_nm)``, exactly what
:func:`etem_helpers.datasets.iter_samples` (simulated folders) and
:func:`etem_helpers.datasets.real.sintering_samples` (the real sample and its hand outlines)
yield. A *method* is a function ``method(image, pixel_size_nm)`` returning either

* an instance label map (the particles are then measured by
  :func:`etem_helpers.measure.measure_particles`, like the reference), or
* an object with ``labels`` and ``particles`` (an :class:`~etem_helpers.AnalysisResult`), or a
  ``(labels, particles)`` pair: the method's own particle table is compared. This is how a
  sizing estimator (contour, FeatureNet) that measures the same particles differently
  enters the comparison.

Adding a method is one entry in the ``methods`` dict (or in :data:`METHOD_BUILDERS` for the
command line). Matching and counting are those of :func:`compare_methods`
(:func:`etem_helpers.metrics.match_instances`, IoU >= 0.5).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from .compare import QUANTITIES, ComparisonImage, ComparisonTables, compare_methods

__all__ = ["METHOD_BUILDERS", "Method", "compare_on_dataset", "default_methods"]

Method = Callable[[np.ndarray, float], object]


def _unet(device, model="default"):
    from etem_helpers.pipeline import Analyzer

    analyzer = Analyzer(model, device=device)
    return lambda image, pixel_size_nm: analyzer(image, pixel_size_nm).labels


def _otsu(device, model="default"):
    from etem_helpers.pipeline import otsu_watershed

    return lambda image, pixel_size_nm: otsu_watershed(image, pixel_size_nm).labels


def _adaptive(device, model="default"):
    from etem_helpers.pipeline import adaptive_threshold_watershed

    return lambda image, pixel_size_nm: adaptive_threshold_watershed(image, pixel_size_nm).labels


#: Methods known by name: ``name -> builder(device, model) -> method``. The sizing estimators
#: of notebook 04 (contour, FeatureNet) are added here as one entry each; a builder may return
#: a method that gives an AnalysisResult, whose own ``particles`` table is then compared.
METHOD_BUILDERS: dict[str, Callable[..., Method]] = {
    "unet": _unet,
    "otsu_watershed": _otsu,
    "adaptive_threshold_watershed": _adaptive,
}


def default_methods(device="cpu", *, names: Sequence[str] | None = None,
                    model="default") -> dict[str, Method]:
    """The methods of the comparison: the shipped U-Net, Otsu and adaptive threshold.

    Parameters
    ----------
    device : str, optional
        Device of the U-Net (``"cpu"``, ``"cuda"``, ``"mps"``, ``"auto"``).
    names : sequence of str, optional
        Which of :data:`METHOD_BUILDERS` to build, in this order; None: all.
    model : str or path-like, optional
        The U-Net checkpoint (``"default"``: the shipped model).

    Returns
    -------
    dict
        ``{name: function(image, pixel_size_nm) -> labels}``.
    """
    names = list(METHOD_BUILDERS) if names is None else list(names)
    unknown = [n for n in names if n not in METHOD_BUILDERS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; choose from {sorted(METHOD_BUILDERS)}.")
    return {name: METHOD_BUILDERS[name](device, model) for name in names}


def _labels_and_table(output, method: str, shape) -> tuple[np.ndarray, pd.DataFrame | None]:
    """A method's label map and (optionally) its own particle table, checked."""
    table = None
    if hasattr(output, "labels") and hasattr(output, "particles"):
        labels, table = output.labels, output.particles
    elif isinstance(output, tuple) and len(output) == 2:
        labels, table = output
    else:
        labels = output
    labels = np.asarray(labels)
    if labels.shape != tuple(shape) or labels.dtype == bool or not np.issubdtype(
            labels.dtype, np.integer):
        raise ValueError(
            f"method {method!r} returned {labels.dtype} labels of shape {labels.shape} for an "
            f"image of shape {tuple(shape)}; it must return an integer label map of the "
            "image's shape (or an object with .labels and .particles)."
        )
    if table is not None:
        ids = set(np.unique(labels[labels > 0]).tolist())
        missing = ids - set(pd.Series(table["particle_id"]).astype(int))
        if missing:
            raise ValueError(
                f"method {method!r} returned a particle table without the ids "
                f"{sorted(missing)[:5]} of its labels; give one row per label id."
            )
    return labels, table


def _run_methods(samples, methods, timings: list):
    """Yield a ComparisonImage per sample; append (image, method, seconds, px) to timings."""
    for image_id, image, true_labels, pixel_size_nm in samples:
        predictions, measurements = {}, {}
        for name, function in methods.items():
            started = time.perf_counter()
            output = function(image, pixel_size_nm)
            timings.append((str(image_id), name, time.perf_counter() - started,
                            float(pixel_size_nm)))
            labels, table = _labels_and_table(output, name, np.shape(true_labels))
            predictions[name] = labels
            if table is not None:
                measurements[name] = table
        yield ComparisonImage(str(image_id), np.asarray(true_labels), predictions,
                              float(pixel_size_nm), measurements)


def compare_on_dataset(
    samples: Iterable[tuple[str, np.ndarray, np.ndarray, float]],
    methods: Mapping[str, Method],
    *,
    iou_threshold: float = 0.5,
    quantities: tuple[str, ...] = QUANTITIES,
) -> ComparisonTables:
    """Run every method on every sample and compare it with the sample's true labels.

    Parameters
    ----------
    samples : iterable of (image_id, image, true_labels, pixel_size_nm)
        E.g. ``iter_samples(dataset_dir, ids)`` or ``sintering_samples(0.5, ids=...)``.
        Streamed: only one image's label maps are held at a time.
    methods : dict
        ``{name: function(image, pixel_size_nm) -> labels}`` (see the module notes for
        methods that return their own particle table), e.g. :func:`default_methods`.
    iou_threshold : float, optional
        IoU a pair needs to match. Default 0.5.
    quantities : tuple of str, optional
        Particle-table columns compared. Default :data:`~etem_helpers.stats.compare.QUANTITIES`.

    Returns
    -------
    ComparisonTables
        As :func:`compare_methods`; its ``detections`` table also has ``seconds`` (wall
        time of the method call) and ``pixel_size_nm`` per image and method.
    """
    if not methods:
        raise ValueError("methods is empty; pass {name: function(image, pixel_size_nm)}.")
    timings: list = []
    tables = compare_methods(_run_methods(samples, methods, timings),
                             iou_threshold=iou_threshold, quantities=quantities)
    extra = pd.DataFrame(timings, columns=["image", "method", "seconds", "pixel_size_nm"])
    detections = tables.detections.merge(extra, on=["image", "method"], how="left")
    return replace(tables, detections=detections)
