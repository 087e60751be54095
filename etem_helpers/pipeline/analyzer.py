"""The one path a micrograph takes: :class:`Analyzer` and :func:`analyze`.

An :class:`Analyzer` holds a trained U-Net (its :class:`~etem_helpers.segmentation.ModelCard`)
and the analysis settings, and runs each image through the same stages, each one function of
its own package::

    image or file ──read_input──> image + pixel_size_nm (+ where the calibration came from)
      └─ plan_resampling / resample_to_pixel_size (only outside the model's pixel-size range,
         and not for a coarse image whose particles already have trained sizes in pixels:
         plan_by_particle_size after a first pass at its own pixel size)
         └─ has_contrast? (a degenerate frame gives no particles) ── Normalization.apply
            └─ predict_probabilities (tiled; foreground + contact boundary)
               └─ probabilities_to_instances (split touching particles, filter size/confidence)
                  └─ map back to the original grid ── measure_particles (contract columns, nm)
                     └─ AnalysisResult

It is picklable (a Dask worker can hold one) and reusable across images; loaded models are
cached per process (:func:`load_model`, :func:`clear_model_cache`). :func:`analyze` is a thin
call of it.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from etem_helpers._version import __version__
from etem_helpers.device import get_device, inference_precision
from etem_helpers.faults import analyze_faults, check_calibration, load_classifier
from etem_helpers.io import validate_pixel_size
from etem_helpers.measure import (
    PARTICLE_COLUMNS,
    measure_particles,
    relabel_sequential,
    uses_blocks,
)
from etem_helpers.pipeline.result import AnalysisResult
from etem_helpers.preprocess.annotations import drop_masked_particles, strip_annotations
from etem_helpers.preprocess.resample import (
    MIN_BLOBS_FOR_SIZE_ESTIMATE,
    MIN_RESAMPLED_SIDE_PX,
    area_weighted_median,
    has_trained_sizes,
    map_to_grid,
    plan_by_estimated_size,
    plan_by_particle_size,
    plan_for_small_particles,
    plan_resampling,
    resample_to_pixel_size,
)
from etem_helpers.preprocess.tiles import tile_positions
from etem_helpers.preprocess.validate import has_contrast, read_input
from etem_helpers.segmentation.checkpoint import (
    DEFAULT_MODEL_PATH,
    TRAIN_DEFAULT_COMMAND,
    CheckpointError,
    ModelCard,
    load_checkpoint,
    model_file,
)
from etem_helpers.segmentation.model import _size_multiple
from etem_helpers.segmentation.outline import OUTLINES, half_contrast_outlines
from etem_helpers.segmentation.postprocess import (
    VISIBILITY_FLOOR_PX,
    filter_visible,
    postprocess_settings,
    probabilities_to_instances,
)
from etem_helpers.segmentation.predict import (
    auto_tile_px,
    fuse_for_inference,
    inference_tile_shape,
    predict_probabilities,
)
from etem_helpers.segmentation.scale import blob_diameters_px, equivalent_diameters_px
from etem_helpers.simulate.params import MATERIALS
from etem_helpers.sizing import ESTIMATORS, estimate_sizes
from etem_helpers.sizing.featurenet import load_featurenet

__all__ = [
    "DEFAULT_MODEL_PATH",
    "TRAIN_DEFAULT_COMMAND",
    "Analyzer",
    "AnalyzerSettings",
    "analyze",
    "clear_model_cache",
    "load_model",
]

#: The contract's quantities the size estimators estimate.
SIZE_QUANTITIES = ("diameter_nm", "aspect_ratio", "roundness")
_STD_COLUMNS = tuple(f"{q}_std" for q in SIZE_QUANTITIES)
_MAX_CPU_TILE_PX = 544  # per-pixel cost of the light U-Net rises for larger CPU tiles
_MAX_GPU_TILE_PX = 1024
_MODEL_CACHE_SIZE = 4
#: ``h_fraction`` used for a model that stores none (chosen on validation data for small
#: particles, ``benchmarks/eval_small_particles.py``; 1 is the plain h-dome rule).
DEFAULT_H_FRACTION = 0.3
_MODEL_CACHE: OrderedDict[tuple, tuple[Any, ModelCard]] = OrderedDict()


def clear_model_cache() -> None:
    """Forget every model loaded by :func:`load_model` (frees memory)."""
    _MODEL_CACHE.clear()


def load_model(model: str | os.PathLike = "default", *, device="auto") -> tuple[Any, ModelCard]:
    """Load a segmentation checkpoint for inference once and reuse it (small LRU cache).

    Parameters
    ----------
    model : "default" or str or path-like
        ``"default"``: the checkpoint shipped in ``etem_helpers/models/default.pt``;
        otherwise the path of a checkpoint written by
        :func:`etem_helpers.segmentation.save_checkpoint`.
    device : str or torch.device
        ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``, ...

    Returns
    -------
    network : torch.nn.Module
        In eval mode on ``device``, batch norms folded into the convolutions
        (:func:`~etem_helpers.segmentation.fuse_for_inference`); shared with later calls.
    card : ModelCard

    Raises
    ------
    etem_helpers.segmentation.CheckpointError
        Missing, corrupt or incompatible checkpoint (the message says what to do).
    """
    torch_device = get_device(device)
    path = _model_path(model)
    try:
        stat = path.resolve().stat()
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, str(torch_device))
    except OSError:
        key = None  # load_checkpoint raises the informative error
    if key is not None and key in _MODEL_CACHE:
        _MODEL_CACHE.move_to_end(key)
        return _MODEL_CACHE[key]
    network, card = load_checkpoint(path, device=torch_device)
    network = fuse_for_inference(network)
    if key is not None:
        _MODEL_CACHE[key] = (network, card)
        while len(_MODEL_CACHE) > _MODEL_CACHE_SIZE:
            _MODEL_CACHE.popitem(last=False)
    return network, card


def _model_path(model) -> Path:
    """The checkpoint file of ``model`` ("default" is this module's :data:`DEFAULT_MODEL_PATH`)."""
    return model_file(model, default_path=DEFAULT_MODEL_PATH)


def _resolve_model(model, device) -> tuple[Any, ModelCard, str | None]:
    """(network, card, path or None) from "default", a path or a (network, card) tuple."""
    if isinstance(model, tuple):
        if len(model) != 2 or not isinstance(model[1], ModelCard | Mapping):
            raise TypeError(
                "model given as a tuple must be (network, ModelCard) as returned by "
                "etem_helpers.segmentation.load_checkpoint."
            )
        network, card = model
        if not isinstance(card, ModelCard):
            try:
                card = ModelCard.from_dict(card)
            except (TypeError, ValueError) as error:
                raise CheckpointError(f"The model card given with the network is not valid: "
                                      f"{error}") from error
        return network, card, None
    network, card = load_model(model, device=device)
    return network, card, str(_model_path(model).resolve())


def _check_fraction(name: str, value, *, closed: bool) -> None:
    """``value`` is None or a number in (0, 1) (``closed``: [0, 1]); otherwise ValueError."""
    if value is None:
        return
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not (number and ((0.0 <= value <= 1.0) if closed else (0.0 < value < 1.0))):
        interval = "[0, 1]" if closed else "(0, 1)"
        raise ValueError(f"{name}={value!r} must be a number in {interval} or None.")


#: How an image outside the model's pixel-size range is handled: ``"particles"`` keeps it at
#: its own pixel size when a first pass finds particles of the sizes in pixels the model was
#: trained on (``ModelCard.diameter_range_px``), ``"pixel_size"`` always resamples to the range.
SCALE_MODES = ("particles", "pixel_size")


@dataclass(frozen=True)
class AnalyzerSettings:
    """How an :class:`Analyzer` runs (see :func:`analyze` for each setting's meaning)."""

    tile_px: int | None = None
    overlap_px: int = 64
    tta: bool = False
    threshold: float | None = None
    batch_size: int | None = None
    min_diameter_nm: float | None = None
    min_confidence: float | None = None
    min_snr: float | None = 5.0
    h_fraction: float | None = None
    precision: str = "auto"
    progress: bool = False
    faults: bool = True
    material: str | None = None
    annotations: bool = True
    size_estimator: str | None = "featurenet"
    scale: str = "particles"
    outline: str = "physical"

    def __post_init__(self) -> None:
        if self.outline not in OUTLINES:
            raise ValueError(f"outline={self.outline!r} is not known; use one of {OUTLINES}.")
        if self.scale not in SCALE_MODES:
            raise ValueError(f"scale={self.scale!r} is not known; use one of {SCALE_MODES}.")
        _check_fraction("threshold", self.threshold, closed=False)
        _check_fraction("min_confidence", self.min_confidence, closed=True)
        if self.h_fraction is not None and not (
                isinstance(self.h_fraction, int | float) and not isinstance(self.h_fraction, bool)
                and 0.0 < self.h_fraction <= 1.0):
            raise ValueError(f"h_fraction={self.h_fraction!r} must be a number in (0, 1] or None "
                             "(the model's own).")
        if self.min_diameter_nm is not None:
            object.__setattr__(self, "min_diameter_nm", validate_pixel_size(
                self.min_diameter_nm, argument="min_diameter_nm",
                quantity="the smallest particle diameter to keep as a finite positive number "
                "in nm"))
        if self.min_snr is not None:
            number = isinstance(self.min_snr, int | float) and not isinstance(self.min_snr, bool)
            if not (number and math.isfinite(self.min_snr) and self.min_snr > 0):
                raise ValueError(f"min_snr={self.min_snr!r} must be a finite number > 0 (Rose's "
                                 "criterion: 5) or None (keep the model's smallest area).")
        for name in ("tile_px", "overlap_px", "batch_size"):
            value = getattr(self, name)
            if value is None and name != "overlap_px":
                continue
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
                raise ValueError(f"{name}={value!r} must be a non-negative integer (pixels).")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size!r} must be a positive integer.")
        if self.size_estimator is not None and self.size_estimator not in ESTIMATORS:
            raise ValueError(f"size_estimator={self.size_estimator!r} is not known; use one of "
                             f"{ESTIMATORS}.")
        if self.material is not None and self.material not in MATERIALS:
            raise ValueError(f"material={self.material!r} is not known; use one of {MATERIALS}.")
        if self.tile_px is not None and self.overlap_px >= self.tile_px:
            raise ValueError(
                f"overlap_px={self.overlap_px} must be smaller than tile_px={self.tile_px}; "
                "use a smaller overlap or a larger tile."
            )


class Analyzer:
    """A trained U-Net plus settings: finds, separates and measures the particles of micrographs.

    Parameters
    ----------
    model : "default" or str or path-like or (torch.nn.Module, ModelCard)
        ``"default"``: the model shipped with the package; a checkpoint path written by
        :func:`etem_helpers.segmentation.save_checkpoint`; or ``(network, card)`` as returned
        by :func:`etem_helpers.segmentation.load_checkpoint`.
    device : str or torch.device
        ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``, ``"mps"``.
    **settings
        Fields of :class:`AnalyzerSettings`.

    Examples
    --------
    >>> analyzer = Analyzer()  # doctest: +SKIP
    >>> results = [analyzer(path) for path in paths]  # doctest: +SKIP
    """

    def __init__(self, model="default", *, device="auto", **settings):
        unknown = sorted(set(settings) - {f.name for f in fields(AnalyzerSettings)})
        if unknown:
            raise TypeError(
                f"Unknown setting(s) {unknown}; known: "
                f"{sorted(f.name for f in fields(AnalyzerSettings))}."
            )
        self.settings = AnalyzerSettings(**settings)
        self.device = get_device(device)
        self.network, self.card, self.model_path = _resolve_model(model, self.device)
        self._model = model if self.model_path is not None else None
        self.precision = inference_precision(self.settings.precision, self.device)
        self._load_task_models()
        self.postprocess = postprocess_settings(
            self.card.postprocess, threshold=self.settings.threshold,
            min_confidence=self.settings.min_confidence,
            h_fraction=(self.settings.h_fraction if self.settings.h_fraction is not None
                        else self.card.postprocess.get("h_fraction", DEFAULT_H_FRACTION)),
        )

    def _load_task_models(self) -> None:
        """The shipped fault classifier and FeatureNet, when the settings use them."""
        self.fault_classifier = load_classifier() if self.settings.faults else None
        self.featurenet = (load_featurenet() if self.settings.size_estimator == "featurenet"
                           else None)

    # Pickling sends the model's path, not the network, when the model came from a file; the
    # shipped task models are loaded again on the other side.
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.update(device=str(self.device), fault_classifier=None, featurenet=None)
        if self._model is not None:
            state["network"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.device = get_device(state["device"])
        if self.network is None:
            self.network, _ = load_model(self._model, device=self.device)
        self._load_task_models()

    def __call__(self, image, pixel_size_nm: float | None = None, *,
                 scale_bar_nm: float | None = None) -> AnalysisResult:
        """Analyse one micrograph (array + ``pixel_size_nm``, or a file path); see :func:`analyze`."""
        timer = _Timer()
        given = self._read(image, pixel_size_nm, scale_bar_nm)
        array, pixel_size_nm = given.image, given.pixel_size_nm
        timer.lap("read")
        info: dict[str, Any] = {}
        constant = not has_contrast(array)
        plan, native = self._plan(array, pixel_size_nm, info, timer, probe=not constant)
        work, prediction_pixel_size_nm = self._resample(array, plan)
        timer.lap("resample")
        info = {**self._base_info(plan, prediction_pixel_size_nm), **info, **given.info}
        info["constant_image"] = constant or (work is not array and not has_contrast(work))
        if info["constant_image"]:
            # A blank, saturated or hot-pixel frame: no contrast to find particles in (a network
            # would answer the same everywhere, so its output would be meaningless).
            labels = np.zeros(array.shape, dtype=np.int32)
            probability = np.zeros(array.shape, dtype=np.float32)
        else:
            if native is not None:  # the first pass at the image's own pixel size is the result
                labels, probabilities = native
            else:
                labels, probabilities = self._segment(
                    work, prediction_pixel_size_nm, info, timer,
                    zoom=pixel_size_nm / prediction_pixel_size_nm,
                    enlarged=("estimated_diameter_px" in plan
                              and pixel_size_nm <= self.card.pixel_size_range_nm[1]))
            del work
            labels, probability = self._map_back(labels, probabilities[0], plan, array.shape)
            del probabilities
            if given.mask is not None:  # nothing is reported on a scale bar, text or data strip
                labels = drop_masked_particles(labels, given.mask)
                probability[given.mask] = 0.0
            timer.lap("map_back")
            if self.settings.outline == "half_contrast":
                labels = half_contrast_outlines(array, labels)
                timer.lap("outline")
        info["outline"] = self.settings.outline
        particles = measure_particles(labels, pixel_size_nm, probability=probability)
        timer.lap("measure")
        particles = self._sizes(array, labels, probability, pixel_size_nm, particles, info)
        timer.lap("sizing")
        particles = self._faults(array, labels, pixel_size_nm, particles, info)
        timer.lap("faults")
        particles = particles[_ordered_columns(particles.columns)]
        info.update(timing_s=timer.total(), image_shape=[int(n) for n in array.shape])
        return AnalysisResult(
            labels=labels, particles=particles, probability=probability,
            pixel_size_nm=pixel_size_nm, pixel_size_source=given.source,
            method=f"unet:{self.card.preset}", info=info,
        )

    # -- stages ------------------------------------------------------------------------------
    def _read(self, image, pixel_size_nm, scale_bar_nm) -> _Input:
        """The image and its calibration, burned-in overlays replaced (and measured, with a bar)."""
        if scale_bar_nm is not None and pixel_size_nm is not None:
            raise ValueError("Pass either pixel_size_nm or scale_bar_nm, not both: scale_bar_nm "
                             "measures the pixel size from the bar burned into the image.")
        array, pixel_size_nm, source, file_info = read_input(
            image, pixel_size_nm, require_calibration=scale_bar_nm is None)
        info: dict[str, Any] = {"file": file_info} if file_info else {}
        if not (self.settings.annotations or scale_bar_nm is not None):
            return _Input(array, pixel_size_nm, source, None, info)
        stripped = strip_annotations(array, scale_bar_nm=scale_bar_nm)
        info["annotations"] = stripped.to_info()
        if scale_bar_nm is not None:
            from_bar = validate_pixel_size(stripped.pixel_size_nm, argument="scale_bar_nm")
            if pixel_size_nm is not None and abs(pixel_size_nm / from_bar - 1.0) > 0.02:
                info["file_pixel_size_nm"] = pixel_size_nm
                warnings.warn(f"The file says {pixel_size_nm:.4g} nm/px but its {scale_bar_nm:g} nm "
                              f"scale bar gives {from_bar:.4g} nm/px; the scale bar is used.",
                              UserWarning, stacklevel=3)
            pixel_size_nm, source = from_bar, "scale bar"
        mask = stripped.annotations.mask if stripped.annotations.found else None
        return _Input(stripped.image, pixel_size_nm, source, mask, info)

    def _plan(self, array: np.ndarray, pixel_size_nm: float, info: dict, timer: _Timer, *,
              probe: bool):
        """(plan, native result or None): resample only where the network needs it.

        Inside the model's pixel-size range the image is used as it is, unless its particles,
        sized without the network (:func:`blob_diameters_px`), are smaller than twice the
        model's smallest trained size in px: then it is enlarged by :func:`plan_by_estimated_size`
        (within the range), unless the network, looking at the image as it is, finds particles of
        its trained sizes (:func:`has_trained_sizes`; a granular support also gives small blobs),
        in which case that pass is the result. A *coarser* image is
        first segmented at its own pixel size (``scale="particles"``, the model card knowing
        its trained particle sizes in px): when the particles found there have trained sizes,
        that pass is the result and nothing is resampled. Otherwise it is resampled so that
        the particles, sized without the network, land in the middle of the trained sizes
        (:func:`plan_by_estimated_size`; never more than the nm/px path below would). Finer
        images, and coarse ones with too few blobs to size, are resampled to the nearest end
        of the range, which refuses factors beyond ``MAX_RESAMPLING_FACTOR``.
        """
        try:
            plan, refused = plan_resampling(array.shape, pixel_size_nm,
                                            self.card.pixel_size_range_nm), None
        except ValueError as error:
            plan, refused = None, error
        coarse = pixel_size_nm > self.card.pixel_size_range_nm[1]
        trained_px = self.card.diameter_range_px
        if (probe and coarse and trained_px is not None and self.settings.scale == "particles"
                and min(array.shape) >= MIN_RESAMPLED_SIDE_PX):
            labels, probabilities = self._segment(array, pixel_size_nm, info, timer)
            diameters = equivalent_diameters_px(labels)
            info["particle_scale"] = {
                "first_pass_pixel_size_nm": float(pixel_size_nm), "n_particles": int(diameters.size),
                "median_diameter_px": float(np.median(diameters)) if diameters.size else None,
                "trained_diameter_range_px": list(trained_px)}
            independent = blob_diameters_px(array)
            estimate = area_weighted_median(independent)
            info["particle_scale"]["blob_area_weighted_median_px"] = estimate
            sized = plan_by_particle_size(array.shape, pixel_size_nm, diameters, trained_px,
                                          independent_diameters_px=independent)
            if sized is not None:
                return sized, (labels, probabilities)
            if independent.size >= MIN_BLOBS_FOR_SIZE_ESTIMATE:
                by_size = plan_by_estimated_size(
                    array.shape, pixel_size_nm, estimate, trained_px,
                    max_factor=None if plan is None else plan["factor"])
                if by_size is not None:
                    return by_size, None
        elif (probe and plan is not None and not plan["resample"] and trained_px is not None
              and self.settings.scale == "particles"
              and min(array.shape) >= MIN_RESAMPLED_SIDE_PX):
            # inside the nm/px range, particles may still be too small in pixels for the
            # network (it misses 4-12 px ones): sized without it, they are enlarged
            independent = blob_diameters_px(array)
            info["particle_scale"] = {"n_blobs": int(independent.size),
                                      "blob_area_weighted_median_px":
                                          area_weighted_median(independent),
                                      "trained_diameter_range_px": list(trained_px)}
            enlarged = plan_for_small_particles(array.shape, pixel_size_nm, independent,
                                                trained_px, self.card.pixel_size_range_nm)
            if enlarged is not None:
                # a granular support also gives many small blobs: when the network, looking
                # at the image as it is, finds particles of trained sizes, it is trusted
                labels, probabilities = self._segment(array, pixel_size_nm, info, timer)
                diameters = equivalent_diameters_px(labels)
                info["particle_scale"].update(
                    first_pass_n_particles=int(diameters.size),
                    first_pass_median_diameter_px=(float(np.median(diameters))
                                                   if diameters.size else None))
                if has_trained_sizes(diameters, trained_px):
                    return plan, (labels, probabilities)
                return enlarged, None
        if refused is not None:
            raise refused
        return plan, None

    @staticmethod
    def _resample(array: np.ndarray, plan):
        """(image on the prediction grid, its pixel size) for a plan."""
        if not plan["resample"]:
            return array, plan["pixel_size_nm"]
        work, achieved = resample_to_pixel_size(array, plan["pixel_size_nm"],
                                                plan["target_pixel_size_nm"])
        plan.update(achieved_pixel_size_nm=float(achieved),
                    resampled_shape=tuple(int(n) for n in work.shape))
        return work, achieved

    def _segment(self, work: np.ndarray, pixel_size_nm: float, info: dict, timer: _Timer, *,
                 zoom: float = 1.0, enlarged: bool = False):
        """(instance labels, (2, H, W) probabilities) of an image on the prediction grid.

        ``zoom``: the original pixel size over ``pixel_size_nm`` (> 1 when upsampled);
        ``enlarged``: resampled by the particles' estimated size (see :meth:`_instances`).
        """
        normalized = self.card.normalization.apply(work)
        timer.lap("normalize")
        probabilities = self._predict(normalized, info)
        timer.lap("predict")
        labels = self._instances(probabilities, pixel_size_nm, info, image=normalized, zoom=zoom,
                                 enlarged=enlarged)
        del normalized
        timer.lap("split")
        return labels, probabilities

    def _predict(self, normalized: np.ndarray, info: dict) -> np.ndarray:
        """(2, H, W) foreground and boundary probabilities by tiled inference."""
        multiple = _size_multiple(self.network)
        overlap = int(self.settings.overlap_px)
        tile = self.settings.tile_px or auto_tile_px(
            normalized.shape, overlap_px=overlap, multiple=multiple,
            max_tile_px=_MAX_CPU_TILE_PX if self.device.type == "cpu" else _MAX_GPU_TILE_PX,
        )
        if overlap >= tile:
            raise ValueError(
                f"overlap_px={overlap} must be smaller than the tile side ({tile} px); pass a "
                "smaller overlap_px or a larger tile_px."
            )
        probabilities = predict_probabilities(
            self.network, normalized, tile_px=tile, overlap_px=overlap,
            batch_size=self.settings.batch_size, device=self.device, tta=self.settings.tta,
            progress=self.settings.progress, precision=self.precision,
        )
        tile_shape = inference_tile_shape(normalized.shape, tile_px=tile, multiple=multiple)
        n_tiles = len(tile_positions(normalized.shape, tile_px=tile_shape,
                                     overlap_px=min(overlap, min(tile_shape) - 1)))
        info.update(precision=self.precision, tile_px=[int(n) for n in tile_shape],
                    overlap_px=overlap, n_tiles=int(n_tiles))
        return probabilities

    def _instances(self, probabilities, prediction_pixel_size_nm: float, info: dict, *,
                   image: np.ndarray, zoom: float = 1.0, enlarged: bool = False) -> np.ndarray:
        """Instance labels on the prediction grid (touching particles split, small/unsure removed).

        ``image`` is the (normalised) micrograph on the prediction grid, ``zoom`` the original
        pixel size over the prediction pixel size (> 1 when upsampled). With ``min_snr`` (and
        no ``min_diameter_nm``, which is a hard minimum) the candidates go down to
        :data:`VISIBILITY_FLOOR_PX` pixels of the original grid, and those below the model's
        smallest area are kept only when visible by Rose's criterion (:func:`filter_visible`
        with ``keep_area_px``). An image inside the model's pixel-size range ``enlarged`` for
        its small particles (:func:`plan_by_estimated_size`) shows the network particles smaller
        than any it keeps at their own sampling: there the smallest area is counted on the
        original grid (times ``zoom**2`` on the prediction grid), so those must be visible too.
        (Not for coarse images resampled by size: on the small-particle validation split that
        lost more true particles than false ones, ``benchmarks/eval_small_particles.py``.)
        """
        settings = dict(self.postprocess)
        min_snr = self.settings.min_snr
        if self.settings.min_diameter_nm is not None:
            radius_px = 0.5 * self.settings.min_diameter_nm / prediction_pixel_size_nm
            settings["min_size_px"] = max(1, math.ceil(math.pi * radius_px**2))
            min_snr = None
        area_px = int(settings["min_size_px"])
        if enlarged and min_snr is not None:
            area_px = max(area_px, math.ceil(area_px * zoom**2))
        floor_px = max(1, math.ceil(VISIBILITY_FLOOR_PX * zoom**2))
        candidate_px = min(floor_px, area_px) if min_snr is not None else area_px
        labels = probabilities_to_instances(probabilities[0], probabilities[1],
                                            **{**settings, "min_size_px": candidate_px})
        if min_snr is not None:
            n_candidates = int(labels.max(initial=0))
            ring_px = max(1, round(3 * zoom))
            labels = filter_visible(labels, image, min_snr=min_snr, min_size_px=1,
                                    ring_px=ring_px, keep_area_px=area_px)
            info["visibility_filter"] = {
                "min_snr": float(min_snr), "floor_px": candidate_px, "keep_area_px": area_px,
                "ring_px": ring_px, "candidates": n_candidates,
                "kept": int(labels.max(initial=0))}
        split = "blocked" if uses_blocks(labels.shape) else "whole image"
        info.update(min_size_px=area_px, postprocess=settings, split=split)
        return labels

    def _sizes(self, image, labels, probability, pixel_size_nm: float, particles, info: dict):
        """Size and shape by the chosen estimator, each with its calibrated 1-sigma uncertainty.

        ``area_nm2`` stays the pixel count (the contract's definition); ``diameter_nm``,
        ``aspect_ratio`` and ``roundness`` are the estimator's (the contract's quantities,
        estimated from the outline or by FeatureNet), ``feret_max_nm`` the mask's.
        """
        estimator = self.settings.size_estimator
        if estimator is not None and self.settings.outline == "half_contrast":
            estimator = "mask"  # FeatureNet and the probability contour size the physical outline
        info["size_estimator"] = estimator or "mask (no uncertainties)"
        if estimator is None:
            return particles
        sizes = estimate_sizes(image, labels, probability, pixel_size_nm,
                               estimator=estimator, model=self.featurenet,
                               threshold=float(self.postprocess["threshold"]),
                               mask_table=particles)
        estimated = [*SIZE_QUANTITIES, *(f"{q}_std" for q in SIZE_QUANTITIES)]
        return particles.drop(columns=list(SIZE_QUANTITIES)).merge(
            sizes[["particle_id", *estimated]], on="particle_id", how="left")

    def _faults(self, image, labels, pixel_size_nm: float, particles, info: dict):
        """Lattice and fault columns per particle (HRTEM); a calibration check from the fringes."""
        if self.fault_classifier is None:
            info["faults"] = "not classified (faults=False)"
            return particles
        lattice = analyze_faults(image, labels, pixel_size_nm, classifier=self.fault_classifier)
        particles = particles.drop(columns=["fault_probability", "has_fault"]).merge(
            lattice.drop(columns="zone_axis"), on="particle_id", how="left")
        info["faults"] = (f"{int(lattice['lattice_resolved'].sum())} of {len(lattice)} particles "
                          "lattice-resolved; fault columns decided only for those")
        if self.settings.material is not None:
            check = check_calibration(particles, self.settings.material, pixel_size_nm)
            info["calibration_check"] = asdict(check)
            if check.status == "mismatch":
                warnings.warn(check.message, UserWarning, stacklevel=3)
        return particles

    @staticmethod
    def _map_back(labels, foreground, plan, shape) -> tuple[np.ndarray, np.ndarray]:
        """Labels and foreground probability on the original pixel grid."""
        if not plan["resample"]:
            return labels.astype(np.int32, copy=False), np.array(foreground, dtype=np.float32)
        zoom = plan["pixel_size_nm"] / plan["achieved_pixel_size_nm"]
        probability = map_to_grid(foreground, zoom, shape, is_label=False)
        labels = relabel_sequential(map_to_grid(labels, zoom, shape, is_label=True))
        return labels.astype(np.int32, copy=False), probability

    def _base_info(self, plan, prediction_pixel_size_nm: float) -> dict[str, Any]:
        card = self.card
        return {
            "model_path": self.model_path,
            "model_preset": card.preset,
            "model_etem_helpers_version": card.etem_helpers_version,
            "etem_helpers_version": __version__,
            "model_pixel_size_nm": card.pixel_size_nm,
            "model_pixel_size_range_nm": list(card.pixel_size_range_nm),
            "normalization": card.normalization.to_dict(),
            "device": str(self.device),
            "batch_size": self.settings.batch_size,
            "tta": bool(self.settings.tta),
            "threshold": float(self.postprocess["threshold"]),
            "min_size_px": int(self.postprocess["min_size_px"]),
            "postprocess": dict(self.postprocess),
            "resampling": dict(plan),
            "prediction_pixel_size_nm": float(prediction_pixel_size_nm),
            "settings": asdict(self.settings),
        }


def _ordered_columns(columns) -> list[str]:
    """The contract's columns first, then the uncertainties, then the rest in their order."""
    first = [*PARTICLE_COLUMNS, *_STD_COLUMNS]
    return [c for c in first if c in columns] + [c for c in columns if c not in first]


@dataclass(frozen=True)
class _Input:
    """A micrograph ready for analysis: :meth:`Analyzer._read`."""

    image: np.ndarray
    pixel_size_nm: float
    source: str
    mask: np.ndarray | None
    info: dict


class _Timer:
    """Seconds per stage, for ``info["timing_s"]``."""

    def __init__(self) -> None:
        self.started = self.clock = time.perf_counter()
        self.timing: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.timing[stage] = round(self.timing.get(stage, 0.0) + now - self.clock, 4)
        self.clock = now

    def total(self) -> dict[str, float]:
        return {**self.timing, "total": round(time.perf_counter() - self.started, 4)}


_ANALYZERS: OrderedDict[tuple, Analyzer] = OrderedDict()


def _cached_analyzer(model, device, settings: dict) -> Analyzer:
    """An Analyzer per (model file, device, settings), reused by repeated :func:`analyze` calls."""
    if isinstance(model, tuple):
        return Analyzer(model, device=device, **settings)
    path = _model_path(model)
    try:
        stat = path.resolve().stat()
    except OSError:
        return Analyzer(model, device=device, **settings)  # raises the informative error
    key = (str(path.resolve()), stat.st_mtime_ns, str(get_device(device)),
           tuple(sorted(settings.items())))
    if key not in _ANALYZERS:
        _ANALYZERS[key] = Analyzer(model, device=device, **settings)
        while len(_ANALYZERS) > _MODEL_CACHE_SIZE:
            _ANALYZERS.popitem(last=False)
    _ANALYZERS.move_to_end(key)
    return _ANALYZERS[key]


def analyze(image, pixel_size_nm: float | None = None, *, scale_bar_nm: float | None = None,
            model="default", device="auto", **settings) -> AnalysisResult:
    """Find, separate and measure the particles of a micrograph with a trained U-Net.

    Parameters
    ----------
    image : numpy.ndarray or str or path-like
        A 2-D grey-level array (any real dtype, finite values) or the path of a micrograph
        file (MRC, TIFF, DM3/DM4, EMD, SER, PNG/JPEG; read with
        :func:`etem_helpers.io.read_micrograph`, its calibration used).
    pixel_size_nm : float, optional
        Pixel size in nm per pixel. Required for an array (1 nm/px is never assumed) unless
        ``scale_bar_nm`` is given; for a file it overrides the file's calibration.
    scale_bar_nm : float, optional
        Length (nm) of the scale bar burned into the image: the pixel size is measured from
        the bar (``pixel_size_source="scale bar"``; a file calibration that differs by more
        than 2 % is reported and warned about). Not together with ``pixel_size_nm``.
    model : "default" or str or path-like or (torch.nn.Module, ModelCard)
        The shipped model, a checkpoint path, or ``(network, card)`` from
        :func:`etem_helpers.segmentation.load_checkpoint`.
    device : str or torch.device
        ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``, ``"mps"``.
    **settings
        :class:`AnalyzerSettings`: ``tile_px`` (inference tile side, a multiple of 32; None
        chooses the side that sends the fewest pixels through the network, up to 544 px on
        the CPU, 1024 px on GPUs), ``overlap_px`` (64, blended with a raised cosine), ``tta``
        (average over 4 flips), ``threshold`` (foreground probability in (0, 1); None: the
        model's own, chosen on its validation data), ``batch_size`` (tiles per forward pass),
        ``min_diameter_nm`` (remove smaller particles; None: the model's smallest size in
        pixels), ``min_confidence`` (0–1; None: the model's), ``min_snr`` (5, Rose's
        criterion: besides the particles of at least the model's smallest area, keep smaller
        ones, down to 4 pixels of the image, whose contrast to their surrounding ring is
        ``min_snr`` times the background noise of a particle-sized patch,
        :func:`etem_helpers.segmentation.filter_visible`, ``info["visibility_filter"]``; None:
        the model's smallest area alone; not used with ``min_diameter_nm``, a hard minimum),
        ``h_fraction`` ((0, 1]; None: the model's stored value, else
        :data:`DEFAULT_H_FRACTION` 0.3: a distance peak of height ``t`` px seeds its own
        particle when it rises ``min(h_px, h_fraction * t)`` above the saddle, so that small
        touching particles are split; 1: the plain rule,
        :func:`etem_helpers.segmentation.split_instances`),
        ``precision`` ("auto",
        "float32", "bfloat16": bfloat16 on CPUs that compute it natively), ``progress``,
        ``faults`` (True: classify twins/stacking faults of lattice-resolved particles with the
        shipped classifier, :func:`etem_helpers.faults.analyze_faults`), ``material`` ("Au",
        "Pt", "Pd", "Ag": check the calibration against the particles' fringe spacings and warn
        on a mismatch, :func:`etem_helpers.faults.check_calibration`), ``size_estimator``
        ("featurenet" (default), "contour", "mask": how diameter, aspect ratio and roundness
        are estimated, each with a calibrated 1-sigma uncertainty ``*_std``,
        :func:`etem_helpers.sizing.estimate_sizes`; None: the pixel-mask values without
        uncertainties, the fastest), ``annotations`` (True:
        find burned-in scale bars, their text and data strips, replace them before the
        prediction and report no particle on them; ``info["annotations"]`` says what was
        masked; :mod:`etem_helpers.preprocess.annotations`), ``scale`` ("particles" (default):
        an image coarser than the model's pixel-size range is first segmented at its own
        pixel size and kept there when its particles have the sizes in pixels the model was
        trained on, ``info["particle_scale"]``; "pixel_size": always resampled into the
        range, as before), ``outline`` ("physical" (default): the network's outline, trained
        on the simulator's projected-thickness edge, the physical size; "half_contrast": each
        outline moved to the half-contrast line of the image around it, where people draw
        edges by hand, :func:`etem_helpers.segmentation.outline.half_contrast_outlines`; use
        it to compare with manual measurements; sizes then come from the moved outlines,
        ``size_estimator`` "mask").

    Returns
    -------
    AnalysisResult
        ``labels`` (int32, 0 background, 1..N in raster order of each particle's first
        pixel), ``probability`` (float32 foreground probability), ``particles`` (the contract
        columns on the original grid), ``pixel_size_nm``, ``pixel_size_source``
        (``"argument"`` or ``"file:..."``), ``method`` (``"unet:<preset>"``) and ``info``
        (model, device, tiles, resampling, normalisation, ``timing_s`` per stage, ``faults``,
        ``calibration_check`` with ``material``). With ``faults`` the table also has
        ``lattice_resolved`` and ``d_spacing_nm``; ``fault_probability`` / ``has_fault`` are
        NaN / NA where the lattice is not resolved (always at low magnification).

    Raises
    ------
    ValueError
        Missing or invalid pixel size, not a 2-D image, empty image, NaN/Inf pixels, a pixel
        size needing extreme resampling, or bad settings (each error names the argument).
    etem_helpers.segmentation.CheckpointError
        Missing or unusable checkpoint.

    Notes
    -----
    A frame without contrast (blank, saturated, one hot pixel) gives zero particles without
    running the network (``info["constant_image"]``). Deterministic for the same input, model
    and device. Memory is bounded (tiled prediction; images above 2048² are split and measured
    block by block); ``BENCHMARKS.md`` has seconds and peak memory. On a busy CPU start Python
    with ``OMP_WAIT_POLICY=PASSIVE`` (PyTorch's spinning threads can slow inference 5–10×).

    Examples
    --------
    >>> from etem_helpers import analyze
    >>> result = analyze("particles.mrc")  # doctest: +SKIP
    >>> result.particles[["diameter_nm", "confidence"]].describe()  # doctest: +SKIP
    """
    return _cached_analyzer(model, device, settings)(image, pixel_size_nm,
                                                     scale_bar_nm=scale_bar_nm)
