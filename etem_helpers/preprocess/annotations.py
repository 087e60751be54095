"""Annotations burned into micrographs: scale bars, their labels, data bars, uniform overlays.

Exported micrographs (PNG/TIFF/JPEG from the microscope software) often carry a scale bar, its
label ("100 nm") and sometimes a vendor data bar (an info strip "HV 200 kV  Mag 50k ..." at
the bottom). A segmentation network sees the bar and the glyphs as dark or bright objects and
reports them as particles. This module finds them and takes them out of the analysis:

* :func:`find_annotations`: a boolean mask of the overlays plus a list of what was found.
* :func:`measure_scale_bar` / :func:`pixel_size_from_scale_bar`: the bar's length in pixels
  (sub-pixel, from its anti-aliased end points) and the pixel size from its known length.
* :func:`mask_annotations`: the image with the overlays replaced by a smooth fill of the
  surrounding background plus noise of the image's level (no edge for the network to see).
* :func:`drop_masked_particles`: removes particles that lie mostly on the mask.

How overlays are told from the micrograph
-----------------------------------------
Overlays are drawn with one grey value (white, black or another constant), so their pixels
form *runs of exactly equal values* (3 or more along a row or a column) with *sharp edges*:
2-3 px outside their outline the image differs from the overlay value by several times the
noise, and not less than 6-8 px outside (a step, not a ramp). Real micrograph content is noisy:
exact runs are rare and scattered. Where the micrograph itself is clipped at a value (many
pixels just short of it, not only exactly at it) only bars and large rectangular blocks of
that value count, never glyph-sized fragments of clipped particle cores. A long exact
rectangle (a bar) counts even on content of nearly its own value. Around each group found,
label glyphs too thin to have fully covered pixels are picked up as sharp-edged components
close to the group's value. Glyphs, bars and strips that lie close together are grouped;
each group is masked by its bounding box plus a margin (covering anti-aliased edges and the
holes in letters), a scale bar with 7 rows above and below (end ticks), a data bar (a wide
block in the top or bottom third) across the full width.

Limits: lossy compression (JPEG) breaks the exact runs, so overlays in JPEG files are found
only where the compression left them flat; scale bars are found when they are horizontal
filled rectangles (optionally with end ticks) not touching the image border; a black label on
nearly black content that is itself clipped at black is not masked (its bar is). Reading the
number of the label (OCR) is not done: pass the bar's length (``scale_bar_nm``).
Measured by ``benchmarks/bench_annotations.py``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from etem_helpers.io import check_image

__all__ = [
    "Annotation",
    "AnnotationSettings",
    "Annotations",
    "ScaleBar",
    "drop_masked_particles",
    "find_annotations",
    "StrippedImage",
    "mask_annotations",
    "measure_scale_bar",
    "pixel_size_from_scale_bar",
    "strip_annotations",
]

#: Kinds of :class:`Annotation`.
KINDS = ("scale bar", "text", "data bar", "uniform region")
_EIGHT = np.ones((3, 3), dtype=bool)
#: Rows masked above and below a scale bar (its end ticks, drawn thin, may not be exact).
_TICK_PAD_PX = 7
#: Pixels of an overlay's value within this distance of a found overlay may be its label's.
_LABEL_REACH_PX = 48


@dataclass(frozen=True)
class AnnotationSettings:
    """How :func:`find_annotations` decides what is an overlay.

    Attributes
    ----------
    min_run_px : int
        A pixel is "flat" when it belongs to a run of at least this many equal pixels along a
        row or a column (2 or 3; 3 makes random equalities of noisy 8-bit images rare).
    min_component_px : int
        Smallest connected region of one value that is looked at (a glyph's dot).
    min_group_px : int
        Smallest total of overlay pixels in a group of nearby regions to be masked.
    edge_contrast_noise : float
        An overlay's outline must be sharp: 2-3 px outside it 80 % of the pixels differ from
        the overlay value by at least this many times the image noise...
    edge_contrast_range : float
        ... and at least this fraction of the image's 1-99 percentile range...
    step_ratio : float
        ... and at least this fraction of the difference 6-8 px outside (a step, not the ramp
        of a saturated particle core fading into its surroundings).
    saturation_ratio : float
        A grey value is where the micrograph itself saturates (clipped) when at least 20 and
        at least this fraction as many of its pixels lie outside the sharp-edged regions found
        as inside them; there only bars and large rectangular blocks count as overlays, not
        glyph-sized fragments.
    max_values : int
        At most this many grey values (the most frequent among flat pixels, plus the image's
        minimum and maximum) are searched for overlays.
    margin_px : int
        Masks extend this far beyond each group's bounding box (anti-aliased edges).
    max_bar_width_fraction : float
        Horizontal bars longer than this fraction of the image width are not scale bars (frame
        lines, data-bar backgrounds).
    min_bar_length_px : int
        Shortest scale bar.
    min_bar_aspect : float
        A scale bar is at least this many times longer than thick.
    data_bar_width_fraction : float
        A group with a rectangular block (not a bar) at least this wide (fraction of the image
        width) in the top or bottom third of the image is a data bar: its rows are masked
        across the full width.
    """

    min_run_px: int = 3
    min_component_px: int = 6
    min_group_px: int = 30
    edge_contrast_noise: float = 2.5
    edge_contrast_range: float = 0.15
    step_ratio: float = 0.75
    saturation_ratio: float = 0.1
    max_values: int = 8
    margin_px: int = 3
    max_bar_width_fraction: float = 0.75
    min_bar_length_px: int = 16
    min_bar_aspect: float = 4.0
    data_bar_width_fraction: float = 0.6

    def __post_init__(self) -> None:
        if self.min_run_px not in (2, 3):
            raise ValueError(f"min_run_px={self.min_run_px!r} must be 2 or 3.")
        for name in ("min_component_px", "min_group_px", "max_values", "min_bar_length_px"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be a positive integer.")
        if isinstance(self.margin_px, bool) or not isinstance(self.margin_px, int) \
                or self.margin_px < 0:
            raise ValueError(f"margin_px={self.margin_px!r} must be a non-negative integer.")
        for name in ("max_bar_width_fraction", "data_bar_width_fraction",
                     "edge_contrast_range"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ValueError(f"{name}={value!r} must be in (0, 1].")
        if not self.edge_contrast_noise > 0 or not self.min_bar_aspect >= 1:
            raise ValueError("edge_contrast_noise must be > 0 and min_bar_aspect >= 1.")


@dataclass(frozen=True)
class Annotation:
    """One overlay found in an image.

    Attributes
    ----------
    kind : str
        ``"scale bar"``, ``"text"`` (glyphs), ``"data bar"`` (an info strip across the image)
        or ``"uniform region"`` (another flat, sharp-edged area).
    bbox_px : tuple of int
        ``(row_start, col_start, row_stop, col_stop)``, stops exclusive, in pixels.
    value : float
        The overlay's grey value (for text and data bars: that of the largest part).
    n_pixels : int
        Pixels of exactly that value in it.
    """

    kind: str
    bbox_px: tuple[int, int, int, int]
    value: float
    n_pixels: int

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "bbox_px": [int(n) for n in self.bbox_px],
                "value": float(self.value), "n_pixels": int(self.n_pixels)}


@dataclass(frozen=True)
class ScaleBar:
    """A horizontal scale bar measured in an image.

    Attributes
    ----------
    length_px : float
        Length from its outer left to its outer right end (including end ticks), sub-pixel:
        the partly covered end pixels count by their coverage.
    start_col_px, end_col_px : float
        Column positions of its left and right ends (pixel edges, so ``end - start`` is the
        length).
    row_px : float
        Row of its centre line.
    thickness_px : int
        Rows fully covered by the bar.
    value : float
        Its grey value.
    has_end_ticks : bool
        Vertical ticks at its ends.
    has_label : bool
        Other overlay pixels (its text) lie next to it.
    bbox_px : tuple of int
        ``(row_start, col_start, row_stop, col_stop)`` of the bar with its ticks.
    """

    length_px: float
    start_col_px: float
    end_col_px: float
    row_px: float
    thickness_px: int
    value: float
    has_end_ticks: bool
    has_label: bool
    bbox_px: tuple[int, int, int, int]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["bbox_px"] = [int(n) for n in self.bbox_px]
        return out


@dataclass(frozen=True)
class Annotations:
    """What :func:`find_annotations` found.

    Attributes
    ----------
    mask : numpy.ndarray
        Boolean, the image's shape: True on overlays (exclude these pixels from analysis).
    items : tuple of Annotation
        What was found, in raster order of the groups.
    scale_bars : tuple of ScaleBar
        Every horizontal bar that can be a scale bar (usually 0 or 1).
    noise_sigma : float
        The image noise used for the edge test (image units).
    """

    mask: np.ndarray
    items: tuple[Annotation, ...] = ()
    scale_bars: tuple[ScaleBar, ...] = ()
    noise_sigma: float = float("nan")

    @property
    def found(self) -> bool:
        """Whether any overlay was found."""
        return bool(self.items)

    @property
    def masked_fraction(self) -> float:
        return float(self.mask.mean()) if self.mask.size else 0.0

    def to_info(self) -> dict[str, Any]:
        """Plain data for ``AnalysisResult.info["annotations"]`` (JSON-serialisable)."""
        return {
            "masked_fraction": round(self.masked_fraction, 6),
            "masked_px": int(np.count_nonzero(self.mask)),
            "items": [item.to_dict() for item in self.items],
            "scale_bars": [bar.to_dict() for bar in self.scale_bars],
        }


@dataclass
class _Region:
    """A connected region of one overlay value (internal)."""

    slices: tuple[slice, slice]
    mask: np.ndarray  # bool, the region inside ``slices``
    value: float
    bar: dict | None = None
    seed: bool = True  # False: a glyph part found near a seed (not exactly flat)
    saturated: bool = False  # the micrograph itself is clipped at this value

    @property
    def bbox(self) -> tuple[int, int, int, int]:
        rows, cols = self.slices
        return rows.start, cols.start, rows.stop, cols.stop

    @property
    def n_pixels(self) -> int:
        return int(np.count_nonzero(self.mask))


# -- statistics ---------------------------------------------------------------------------------
def _subsample(image: np.ndarray, n_px: int = 1 << 18) -> np.ndarray:
    step = max(1, int(math.sqrt(image.size / n_px)))
    return image[::step, ::step]


def noise_sigma(image: np.ndarray) -> float:
    """Robust pixel noise (image units): MAD of horizontal neighbour differences / sqrt(2).

    Parameters
    ----------
    image : numpy.ndarray
        2-D image.

    Returns
    -------
    float
        0 for an image without noise.
    """
    work = _subsample(np.asarray(image, dtype=np.float64)) if image.size > 1 << 20 else image
    if work.shape[1] < 2:
        return 0.0
    diff = np.diff(work, axis=1).ravel()
    return float(1.4826 * np.median(np.abs(diff - np.median(diff))) / math.sqrt(2.0))


def _equality_tolerance(image: np.ndarray, sigma: float) -> float:
    """Values closer than this are "equal": 0 for integer-valued images, else float rounding."""
    sample = _subsample(image, 1 << 16)
    if np.array_equal(sample, np.round(sample)):
        return 0.0
    scale = max(float(np.max(np.abs(sample))), 1e-30)
    return max(1e-6 * scale, 1e-3 * sigma)


def flat_pixels(image: np.ndarray, *, tolerance: float = 0.0, min_run_px: int = 3) -> np.ndarray:
    """Pixels in a run of ``min_run_px`` (2 or 3) equal values along a row or a column.

    Parameters
    ----------
    image : numpy.ndarray
        2-D image.
    tolerance : float
        Neighbours differing by at most this much (image units) count as equal.
    min_run_px : {2, 3}
        Run length.

    Returns
    -------
    numpy.ndarray
        Boolean mask, the image's shape.
    """
    image = np.asarray(image)
    flat = np.zeros(image.shape, dtype=bool)
    for axis in (0, 1):
        equal = np.abs(np.diff(image, axis=axis)) <= tolerance  # pair (i, i+1) equal
        moved = np.moveaxis(flat, axis, 0)
        equal = np.moveaxis(equal, axis, 0)
        if min_run_px == 2:
            moved[:-1] |= equal
            moved[1:] |= equal
            continue
        middle = equal[:-1] & equal[1:]  # pixel i+1 is the middle of a run of 3
        moved[:-2] |= middle
        moved[1:-1] |= middle
        moved[2:] |= middle
    return flat


# -- finding regions of one value ---------------------------------------------------------------
def _candidate_values(image, flat, settings: AnnotationSettings) -> list[float]:
    """The grey values worth searching: most frequent among flat pixels, plus min and max."""
    values, counts = np.unique(image[flat], return_counts=True)
    keep = counts >= settings.min_group_px  # fewer cannot make a group of their own
    values, counts = values[keep], counts[keep]
    if values.size == 0:
        return []
    chosen = list(values[np.argsort(counts)[::-1][: settings.max_values]])
    for extreme in (values.min(), values.max()):
        if extreme not in chosen:
            chosen.append(extreme)
    return [float(v) for v in chosen]


def _regions_of_value(image, flat, value, tolerance, settings) -> list[_Region]:
    """Connected regions (8-connected) of ``value`` that contain flat pixels."""
    equal = np.abs(image - value) <= tolerance
    seeds = flat & equal
    if np.count_nonzero(seeds) < settings.min_component_px:
        return []
    labels, n_labels = ndimage.label(equal, structure=_EIGHT)
    seeded = np.unique(labels[seeds])
    seeded = seeded[seeded > 0]
    # renumber the seeded components only (find_objects over every noise speck is slow)
    lookup = np.zeros(n_labels + 1, dtype=np.int32)
    lookup[seeded] = np.arange(1, seeded.size + 1, dtype=np.int32)
    labels = lookup[labels]
    regions = []
    for index, slices in enumerate(ndimage.find_objects(labels), start=1):
        mask = labels[slices] == index
        if np.count_nonzero(mask) >= settings.min_component_px:
            regions.append(_Region(slices=slices, mask=mask, value=value))
    return regions


def _has_sharp_edge(image, region: _Region, threshold: float, step_ratio: float,
                    quantile: float = 20.0) -> bool:
    """Whether the region ends in a step, not a ramp or noise around a saturated core.

    2-3 px outside it, ``100 - quantile`` % of the pixels must differ from its value by at least
    ``threshold`` (a saturated part of a noisy micrograph has many near-saturated pixels around
    it; glyphs found next to a bar, whose neighbours are glyphs too, use the median) and the
    median difference there must be at least ``step_ratio`` times that 6-8 px outside (an
    overlay drawn on the image is a step; a saturated particle core fades out: a ramp).
    """
    pad = 8
    rows, cols = region.slices
    r0, c0 = max(rows.start - pad, 0), max(cols.start - pad, 0)
    r1, c1 = min(rows.stop + pad, image.shape[0]), min(cols.stop + pad, image.shape[1])
    inside = np.zeros((r1 - r0, c1 - c0), dtype=bool)
    inside[rows.start - r0 : rows.stop - r0, cols.start - c0 : cols.stop - c0] = region.mask
    d1 = ndimage.binary_dilation(inside, structure=_EIGHT, iterations=1)
    d3 = ndimage.binary_dilation(d1, structure=_EIGHT, iterations=2)
    d5 = ndimage.binary_dilation(d3, structure=_EIGHT, iterations=2)
    d8 = ndimage.binary_dilation(d5, structure=_EIGHT, iterations=3)
    near, far = d3 & ~d1, d8 & ~d5
    if not near.any():  # the region fills the image
        return False
    window = np.abs(image[r0:r1, c0:c1] - region.value)
    low, step = np.percentile(window[near], [quantile, 50.0])
    outer = float(np.median(window[far])) if far.any() else step
    return bool(low >= threshold and step >= step_ratio * outer)


def _bar_geometry(region: _Region, settings: AnnotationSettings, shape) -> dict | None:
    """Geometry of a horizontal filled bar (optionally with end ticks), else None.

    The bar is one contiguous band of fully covered rows at least ``min_bar_aspect`` times
    longer than thick; outside the band (and the partly covered row on each side of it) only
    end ticks may stick out, and the whole is at most 0.6 times as high as long (unlike a
    glyph such as "H"), and it does not touch the image border (saturated content cut by the
    border can be rectangular).
    """
    mask = region.mask
    height, width = mask.shape
    if width < settings.min_bar_length_px or width > settings.max_bar_width_fraction * shape[1] \
            or height > 0.6 * width or _touches_border(region.bbox, shape):
        return None
    row_counts = mask.sum(axis=1)
    full = np.flatnonzero(row_counts >= 0.95 * width)
    if full.size == 0 or full[-1] - full[0] + 1 != full.size:  # one contiguous band of rows
        return None
    thickness = int(full.size)
    if width < settings.min_bar_aspect * thickness:
        return None
    band = mask[full[0] : full[-1] + 1]
    columns_full = np.flatnonzero(band.all(axis=0))
    if columns_full.size < 0.95 * width or columns_full[-1] - columns_full[0] + 1 \
            != columns_full.size or columns_full[0] > 1 or columns_full[-1] < width - 2:
        return None  # the band is full except, in some rows, a rounded end pixel
    others = mask.copy()
    others[max(full[0] - 1, 0) : full[-1] + 2] = False  # the band and its anti-aliased rows
    tick_px = max(3, thickness, int(0.05 * width))
    columns = np.flatnonzero(others.any(axis=0))
    if columns.size and ((columns >= tick_px) & (columns < width - tick_px)).any():
        return None  # something other than end ticks sticks out of the band
    has_ticks = bool(columns.size and (columns < tick_px).any() and
                     (columns >= width - tick_px).any())
    return {"band_rows": (int(full[0]), int(full[-1]) + 1), "thickness_px": thickness,
            "band_cols": (int(columns_full[0]), int(columns_full[-1]) + 1),
            "has_end_ticks": has_ticks}


def _quick_contrast(image, region: _Region) -> float:
    """Median difference from the region's value of the other pixels of its box + 3 px."""
    rows, cols = region.slices
    r0, c0 = max(rows.start - 3, 0), max(cols.start - 3, 0)
    window = image[r0 : rows.stop + 3, c0 : cols.stop + 3]
    inside = np.zeros(window.shape, dtype=bool)
    inside[rows.start - r0 : rows.stop - r0, cols.start - c0 : cols.stop - c0] = region.mask
    outside = window[~inside]
    return float(np.median(np.abs(outside - region.value))) if outside.size else 0.0


def _find_regions(image, settings: AnnotationSettings) -> tuple[list[_Region], float, float,
                                                                 float]:
    """Sharp-edged regions of one value (the overlay parts); noise, edge threshold, tolerance."""
    sigma = noise_sigma(image)
    tolerance = _equality_tolerance(image, sigma)
    flat = flat_pixels(image, tolerance=tolerance, min_run_px=settings.min_run_px)
    low, high = np.percentile(_subsample(image), [1.0, 99.0])
    threshold = max(settings.edge_contrast_noise * sigma,
                    settings.edge_contrast_range * float(high - low), tolerance)
    if np.count_nonzero(flat) < settings.min_component_px or not threshold > 0:
        return [], sigma, threshold, tolerance  # a blank frame is not an overlay
    candidates: dict[float, list[tuple[_Region, bool]]] = {}
    for value in _candidate_values(image, flat, settings):
        for region in _regions_of_value(image, flat, value, tolerance, settings):
            region.bar = _bar_geometry(region, settings, image.shape)
            block = _is_block(region, image.shape, settings)
            if block or (region.bar is not None and region.n_pixels >= 50):
                # a long exact rectangle is drawn, even on content of nearly its own value
                if _quick_contrast(image, region) < max(sigma, tolerance):
                    continue
            elif _quick_contrast(image, region) < threshold or not _has_sharp_edge(
                    image, region, threshold, settings.step_ratio):
                continue
            candidates.setdefault(value, []).append((region, block))
    inside = np.zeros(image.shape, dtype=bool)  # near the overlays (bars: their labels too)
    for region, block in (item for found in candidates.values() for item in found):
        r0, c0, r1, c1 = region.bbox
        drawn = block or (region.bar is not None and region.n_pixels >= 50)
        m = _LABEL_REACH_PX if drawn else settings.margin_px
        inside[max(r0 - m, 0) : r1 + m, max(c0 - m, 0) : c1 + m] = True
    regions = []
    for value, found in candidates.items():
        saturated = _is_saturation_value(image, value, tolerance, inside, settings)
        for region, block in found:
            if saturated and not (block or (
                    region.bar is not None and not _touches_border(region.bbox, image.shape, 8)
                    and (region.n_pixels >= 100 or region.mask.shape[1] >= 64)
                    and _has_sharp_edge(image, region, threshold, settings.step_ratio))):
                continue  # a saturated part of the micrograph (a clipped fringe), not an overlay
            region.saturated = saturated
            regions.append(region)
    return regions, sigma, threshold, tolerance


def _is_saturation_value(image, value, tolerance, inside, settings) -> bool:
    """Whether the micrograph itself is clipped at ``value``, not only overlays drawn with it.

    Overlays put (nearly) all pixels of their value in the boxes of the sharp-edged regions
    found or within ``_LABEL_REACH_PX`` of a bar or block (its label) (``inside``); clipping
    leaves many more scattered over the micrograph.
    """
    equal = np.abs(image - value) <= tolerance
    n_inside = np.count_nonzero(equal & inside)
    n_outside = np.count_nonzero(equal) - n_inside
    return bool(n_outside >= max(20, settings.saturation_ratio * n_inside))


def _touches_border(box, shape, within_px: int = 0) -> bool:
    """Whether a box comes within ``within_px`` of the image border."""
    return bool(box[0] <= within_px or box[1] <= within_px or box[2] >= shape[0] - within_px
                or box[3] >= shape[1] - within_px)


def _is_block(region: _Region, shape, settings: AnnotationSettings, min_px: int = 500,
              min_fill: float = 0.9) -> bool:
    """A large, nearly rectangular region (a data bar's or a label box's background).

    One that touches the image border must span ``data_bar_width_fraction`` of the width (a
    data bar): saturated content cut by the border can look rectangular too.
    """
    if region.n_pixels < min_px:
        return False
    box = region.bbox
    if _touches_border(box, shape) and box[3] - box[1] < settings.data_bar_width_fraction \
            * shape[1]:
        return False
    return bool(ndimage.binary_fill_holes(region.mask).mean() >= min_fill)


def _nearby_glyphs(image, group: list[_Region], threshold: float, tolerance: float,
                   settings: AnnotationSettings) -> list[_Region]:
    """Glyph parts near a group that are close to its value but not exactly flat.

    Small anti-aliased fonts have strokes without a fully covered pixel; they are found as
    sharp-edged components (5 px or more) of pixels within 30 % of the contrast from the group's value with at
    least two pixels within 25 % of it (mostly covered pixels) and, for components of 20 px or
    more at least 4 px wide and high, at least 10 % within 5 % of it (large glyphs have fully
    covered pixels; noisy particle cores do not; thin anti-aliased ticks may not), in a window around the group (a bar's label sits within a few
    text heights of it).
    """
    main = max(group, key=lambda r: r.n_pixels)
    if main.saturated:
        return []  # near-saturated pixels there belong to the micrograph too
    main_height = main.bbox[2] - main.bbox[0]
    reach = int(max(24, 4 * min(main_height, 16)))
    box = _union_box(r.bbox for r in group)
    r0, c0 = max(box[0] - reach, 0), max(box[1] - reach, 0)
    r1, c1 = min(box[2] + reach, image.shape[0]), min(box[3] + reach, image.shape[1])
    window = image[r0:r1, c0:c1]
    contrast = abs(main.value - float(np.median(window)))
    if contrast < threshold:
        return []
    near = np.abs(window - main.value) <= 0.3 * contrast
    core = np.abs(window - main.value) <= max(0.25 * contrast, tolerance)
    solid = np.abs(window - main.value) <= max(0.05 * contrast, tolerance)
    for region in group:  # already found
        rows, cols = region.slices
        near[rows.start - r0 : rows.stop - r0, cols.start - c0 : cols.stop - c0] &= ~region.mask
    labels, _ = ndimage.label(near, structure=_EIGHT)
    found = []
    for index, slices in enumerate(ndimage.find_objects(labels), start=1):
        mask = labels[slices] == index
        n_px = np.count_nonzero(mask)
        if n_px < 5 or np.count_nonzero(core[slices][mask]) < 2:
            continue
        if n_px >= 20 and min(mask.shape) >= 4 and np.mean(solid[slices][mask]) < 0.1:
            continue  # a large glyph has fully covered pixels; a dark particle is noisy
        absolute = (slice(slices[0].start + r0, slices[0].stop + r0),
                    slice(slices[1].start + c0, slices[1].stop + c0))
        region = _Region(slices=absolute, mask=mask, value=main.value, seed=False)
        if _has_sharp_edge(image, region, threshold, settings.step_ratio, quantile=50.0):
            found.append(region)
    return found


# -- grouping -----------------------------------------------------------------------------------
def _box_gap(a, b) -> int:
    """Chebyshev gap in pixels between two boxes (0 when they touch or overlap)."""
    gap_rows = max(0, b[0] - a[2], a[0] - b[2])
    gap_cols = max(0, b[1] - a[3], a[1] - b[3])
    return max(gap_rows, gap_cols)


def _cluster_boxes(boxes, margin_px: int) -> list[int]:
    """Cluster index of each box: boxes within 1.5 heights (at most 24 px each) are joined."""
    parent = list(range(len(boxes)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    heights = [min(b[2] - b[0], 24) for b in boxes]
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            allowed = max(margin_px + 2, 1.5 * max(heights[i], heights[j]))
            if _box_gap(boxes[i], boxes[j]) <= allowed:
                parent[root(i)] = root(j)
    return [root(i) for i in range(len(boxes))]


def _group_regions(regions: list[_Region], settings: AnnotationSettings) -> list[list[_Region]]:
    """Groups of regions within 1.5 glyph heights of each other, then of those groups (a line
    of glyphs and the bar under it); a group needs ``min_group_px`` exactly flat pixels."""
    groups = [[region] for region in regions]
    for _ in range(2):
        boxes = [_union_box(r.bbox for r in group) for group in groups]
        merged: dict[int, list[_Region]] = {}
        for group, key in zip(groups, _cluster_boxes(boxes, settings.margin_px), strict=True):
            merged.setdefault(key, []).extend(group)
        groups = list(merged.values())
    ordered = sorted(groups, key=lambda g: min((r.bbox[0], r.bbox[1]) for r in g))
    return [g for g in ordered
            if sum(r.n_pixels for r in g if r.seed) >= settings.min_group_px]


def _union_box(boxes) -> tuple[int, int, int, int]:
    boxes = list(boxes)
    return (min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[2] for b in boxes), max(b[3] for b in boxes))


def _is_data_bar(group: list[_Region], shape, settings: AnnotationSettings) -> bool:
    """A group whose background is a wide block (not a bar) in the top or bottom third."""
    height, width = shape
    for region in group:
        box = region.bbox
        wide = box[3] - box[1] >= settings.data_bar_width_fraction * width
        at_edge = box[0] >= height * 2 / 3 or box[2] <= height / 3
        if wide and at_edge and region.bar is None and _is_block(region, shape, settings):
            return True
    return False


def _mask_group(mask, box, shape, settings: AnnotationSettings, data_bar: bool) -> None:
    """Mark a group's box (plus margin; a data bar's rows across the full width) in ``mask``."""
    height, width = shape
    m = settings.margin_px
    r0, c0, r1, c1 = max(box[0] - m, 0), max(box[1] - m, 0), min(box[2] + m, height), \
        min(box[3] + m, width)
    if data_bar:
        c0, c1 = 0, width
        if height - r1 <= m + 3:
            r1 = height
        if r0 <= m + 3:
            r0 = 0
    mask[r0:r1, c0:c1] = True


def _describe_group(group: list[_Region], data_bar: bool) -> list[Annotation]:
    """Annotations for one group: its bars, its data-bar background, its text and the rest."""
    items: list[Annotation] = []
    glyphs: list[_Region] = []
    largest = max(group, key=lambda r: r.n_pixels)
    for region in group:
        if region.bar is not None:
            kind = "scale bar"
        elif data_bar and region is largest:
            kind = "data bar"
        elif region.n_pixels > 2000 and not data_bar:
            kind = "uniform region"
        else:
            glyphs.append(region)
            continue
        items.append(Annotation(kind, region.bbox, region.value, region.n_pixels))
    if glyphs:
        main = max(glyphs, key=lambda r: r.n_pixels)
        items.append(Annotation("text", _union_box(r.bbox for r in glyphs), main.value,
                                sum(r.n_pixels for r in glyphs)))
    return items


# -- scale bar length ---------------------------------------------------------------------------
def _end_coverage(image, rows, col, value, direction: int) -> float:
    """Mean coverage (0-1) of the bar over pixel ``col`` of ``rows``, from its surroundings."""
    width = image.shape[1]
    outside = [col + direction * k for k in (2, 3, 4)]
    if not (0 <= col < width) or not all(0 <= c < width for c in outside):
        return 0.0
    background = float(np.median(image[rows][:, outside]))
    contrast = value - background
    if abs(contrast) < 1e-12:
        return 0.0
    coverage = (image[rows, col] - background) / contrast
    return float(np.clip(np.mean(coverage), 0.0, 1.0))


def _measure_bar(image, region: _Region, has_label: bool) -> ScaleBar:
    """Sub-pixel length and position of a bar region (see :class:`ScaleBar`)."""
    rows_slice, cols_slice = region.slices
    band0, band1 = region.bar["band_rows"]
    rows = slice(rows_slice.start + band0, rows_slice.start + band1)
    col0, col1 = region.bar["band_cols"]
    c0, c1 = cols_slice.start + col0, cols_slice.start + col1  # full in every band row
    left = _end_coverage(image, rows, c0 - 1, region.value, -1)
    right = _end_coverage(image, rows, c1, region.value, +1)
    start, end = c0 - left, c1 + right
    return ScaleBar(
        length_px=float(end - start), start_col_px=float(start), end_col_px=float(end),
        row_px=0.5 * (rows.start + rows.stop) - 0.5,
        thickness_px=int(region.bar["thickness_px"]), value=float(region.value),
        has_end_ticks=bool(region.bar["has_end_ticks"]), has_label=has_label,
        bbox_px=region.bbox,
    )


# -- public API ---------------------------------------------------------------------------------
def find_annotations(image, settings: AnnotationSettings | None = None) -> Annotations:
    """Find overlays burned into a micrograph: scale bars, labels, data bars, uniform regions.

    Parameters
    ----------
    image : array_like
        2-D grey-level image (any real dtype), as read (before any normalisation or
        resampling: interpolation destroys the exact runs that identify overlays).
    settings : AnnotationSettings, optional
        Detection thresholds (defaults suit 8-bit and 16-bit exports and float images).

    Returns
    -------
    Annotations
        ``mask`` (True on overlays), ``items`` (kind and bounding box of each),
        ``scale_bars`` (candidate bars, measured), ``noise_sigma``.

    Notes
    -----
    An overlay is a connected region of one exact grey value that contains runs of at least
    ``min_run_px`` equal pixels and whose outline is sharp (see the module docstring). Regions
    close to each other form a group (a bar and its label); each group is masked by its
    bounding box plus ``margin_px``; a wide group in the top or bottom third of the image (a
    data bar) is masked across the full width. Real, noisy micrograph content has no such
    regions: on the real and simulated test images nothing is found (see
    ``benchmarks/bench_annotations.py``).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> image = rng.normal(100.0, 10.0, (128, 128))
    >>> image[110:114, 20:70] = 255.0  # a 50 px white bar
    >>> found = find_annotations(image)
    >>> [a.kind for a in found.items], round(found.scale_bars[0].length_px, 1)
    (['scale bar'], 50.0)
    """
    settings = settings or AnnotationSettings()
    array = check_image(image, dtype=np.float64)
    regions, sigma, threshold, tolerance = _find_regions(array, settings)
    groups = _group_regions(regions, settings)
    seeds = [[r for r in group if r.bar is not None]
             if _is_data_bar(group, array.shape, settings) else group for group in groups]
    # next to a found overlay, a label stands out from the noise (not from the image's range)
    label_threshold = max(settings.edge_contrast_noise * sigma, tolerance, 1e-12)
    extras = [region for group in seeds if group
              for region in _nearby_glyphs(array, group, min(threshold, label_threshold),
                                           tolerance, settings)]
    if extras:
        groups = _group_regions(regions + extras, settings)
    mask = np.zeros(array.shape, dtype=bool)
    items: list[Annotation] = []
    bars: list[ScaleBar] = []
    for group in groups:
        box = _union_box(r.bbox for r in group)
        data_bar = _is_data_bar(group, array.shape, settings)
        _mask_group(mask, box, array.shape, settings, data_bar)
        for region in group:
            if region.bar is not None:  # thin anti-aliased end ticks may not be exact
                r0, c0, r1, c1 = region.bbox
                mask[max(r0 - _TICK_PAD_PX, 0) : r1 + _TICK_PAD_PX,
                     max(c0 - settings.margin_px, 0) : c1 + settings.margin_px] = True
        items.extend(_describe_group(group, data_bar))
        for region in group:
            if region.bar is not None:
                bars.append(_measure_bar(array, region, has_label=len(group) > 1))
    return Annotations(mask=mask, items=tuple(items), scale_bars=_drop_edge_rows(bars),
                       noise_sigma=float(sigma))


def _drop_edge_rows(bars: list[ScaleBar]) -> tuple[ScaleBar, ...]:
    """Bars without the thinner ones touching a thicker bar (an anti-aliased edge row that
    rounded to one value, e.g. 1 beside a black bar of 0)."""
    order = sorted(bars, key=lambda bar: (-bar.thickness_px, -bar.length_px))
    kept: list[ScaleBar] = []
    for bar in order:
        if not any(_box_gap(bar.bbox_px, other.bbox_px) <= 1 for other in kept):
            kept.append(bar)
    return tuple(sorted(kept, key=lambda bar: bar.bbox_px))


def _describe_bars(bars) -> str:
    return "; ".join(
        f"{bar.length_px:.1f} px at row {bar.row_px:.0f}, columns "
        f"{bar.start_col_px:.0f}-{bar.end_col_px:.0f}" for bar in bars
    )


def measure_scale_bar(image, annotations: Annotations | None = None) -> ScaleBar | None:
    """The scale bar burned into an image: its length in pixels and position.

    Parameters
    ----------
    image : array_like
        2-D grey-level image as read.
    annotations : Annotations, optional
        The result of :func:`find_annotations` on this image (found again when omitted).

    Returns
    -------
    ScaleBar or None
        None when the image has no horizontal bar.

    Raises
    ------
    ValueError
        Several bars could be the scale bar and neither one alone has a label next to it.
    """
    if annotations is None:
        annotations = find_annotations(image)
    bars = list(annotations.scale_bars)
    if len(bars) > 1:
        labelled = [bar for bar in bars if bar.has_label]
        if len(labelled) != 1:
            raise ValueError(
                f"{len(bars)} bars could be the scale bar ({_describe_bars(bars)}); the scale "
                "bar is ambiguous. Crop the image to the one you mean or pass pixel_size_nm."
            )
        bars = labelled
    return bars[0] if bars else None


def pixel_size_from_scale_bar(image, scale_bar_nm: float,
                              annotations: Annotations | None = None) -> tuple[float, ScaleBar]:
    """Pixel size from a burned-in scale bar of known length.

    Parameters
    ----------
    image : array_like
        2-D grey-level image as read.
    scale_bar_nm : float
        The length written on the bar, in nm (e.g. 100 for "100 nm"; 1000 for "1 µm").
    annotations : Annotations, optional
        The result of :func:`find_annotations` on this image.

    Returns
    -------
    pixel_size_nm : float
        ``scale_bar_nm / length_px``.
    scale_bar : ScaleBar

    Raises
    ------
    ValueError
        ``scale_bar_nm`` not a positive finite number; no scale bar found; several ambiguous
        candidates.
    """
    if isinstance(scale_bar_nm, bool) or not isinstance(scale_bar_nm, int | float | np.number) \
            or not math.isfinite(scale_bar_nm) or scale_bar_nm <= 0:
        raise ValueError(
            f"scale_bar_nm={scale_bar_nm!r} must be the bar's length in nm as a positive "
            "finite number (e.g. 100 for a bar labelled '100 nm')."
        )
    try:
        bar = measure_scale_bar(image, annotations)
    except ValueError as error:
        raise ValueError(f"scale_bar_nm={scale_bar_nm!r} given, but {error}") from error
    if bar is None:
        raise ValueError(
            f"scale_bar_nm={scale_bar_nm!r} given, but no scale bar found in the image (a "
            "horizontal filled bar of one grey value with sharp edges); pass pixel_size_nm "
            "instead."
        )
    return float(scale_bar_nm) / bar.length_px, bar


def mask_annotations(image, annotations: Annotations, *, seed: int = 0) -> np.ndarray:
    """The image with its overlays replaced by the surrounding background (no edge to see).

    Masked pixels get a smooth fill, the valid-pixel-weighted box average of their
    surroundings (twice, so it is smooth), plus Gaussian noise of the image's own noise level
    (deterministic for ``seed``).

    Parameters
    ----------
    image : array_like
        2-D grey-level image.
    annotations : Annotations or numpy.ndarray
        The result of :func:`find_annotations` or a boolean mask of the image's shape.
    seed : int
        Seed of the added noise.

    Returns
    -------
    numpy.ndarray
        float32 copy of ``image``; equal to it outside the mask.
    """
    array = check_image(image, dtype=np.float64)
    mask = annotations.mask if isinstance(annotations, Annotations) else np.asarray(annotations)
    if mask.shape != array.shape or mask.dtype != bool:
        raise ValueError(
            f"annotations must be an Annotations or a boolean mask of shape {array.shape}; got "
            f"{mask.dtype} of shape {mask.shape}."
        )
    out = array.astype(np.float32)
    if not mask.any():
        return out
    if mask.all():
        raise ValueError("annotations mask covers the whole image; nothing is left to analyse.")
    reach = float(ndimage.distance_transform_cdt(mask, metric="chessboard").max())
    size = int(2 * reach + 3)
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    window = (slice(max(rows[0] - size, 0), rows[-1] + size + 1),
              slice(max(cols[0] - size, 0), cols[-1] + size + 1))
    sub, hole = array[window], mask[window]
    valid = ~hole
    weight = valid.astype(np.float64)
    values = np.where(valid, sub, 0.0)
    for _ in range(2):  # valid-weighted box average, then once more to smooth it
        total = ndimage.uniform_filter(values, size=size, mode="reflect")
        count = ndimage.uniform_filter(weight, size=size, mode="reflect")
        fill = np.where(count > 1e-9, total / np.maximum(count, 1e-9), np.median(sub[valid]))
        values, weight = np.where(valid, sub, fill), np.ones_like(weight)
    sigma = noise_sigma(np.where(hole, values, sub))
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, sigma, size=int(np.count_nonzero(hole)))
    out[window][hole] = (values[hole] + noise).astype(np.float32)
    return out


def drop_masked_particles(labels, mask, *, max_masked_fraction: float = 0.5) -> np.ndarray:
    """Remove masked pixels from instance labels, and particles that lie mostly on the mask.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer instance labels (0 background).
    mask : numpy.ndarray or Annotations
        Boolean mask of the overlays (``Annotations.mask``).
    max_masked_fraction : float
        A particle with more than this fraction of its pixels on the mask is removed; the
        others lose only their masked pixels (their size is then a lower bound, like a
        particle cut by the image border).

    Returns
    -------
    numpy.ndarray
        int32 labels, renumbered 1..N in raster order of each particle's first pixel.
    """
    if isinstance(mask, Annotations):
        mask = mask.mask
    labels = np.asarray(labels)
    mask = np.asarray(mask, dtype=bool)
    if labels.shape != mask.shape:
        raise ValueError(f"labels {labels.shape} and mask {mask.shape} must have one shape.")
    if not 0.0 <= max_masked_fraction <= 1.0:
        raise ValueError(f"max_masked_fraction={max_masked_fraction!r} must be in [0, 1].")
    out = labels.astype(np.int32, copy=True)
    if not mask.any() or out.max() <= 0:
        return out
    n = int(out.max())
    area = np.bincount(out.ravel(), minlength=n + 1)
    masked = np.bincount(out[mask], minlength=n + 1)
    remove = masked > max_masked_fraction * np.maximum(area, 1)
    remove[0] = False
    out[remove[out] | mask] = 0
    # renumber in raster order of the first pixel
    ids, first = np.unique(out.ravel(), return_index=True)
    order = ids[ids > 0][np.argsort(first[ids > 0])]
    lookup = np.zeros(n + 1, dtype=np.int32)
    lookup[order] = np.arange(1, order.size + 1, dtype=np.int32)
    return lookup[out]


@dataclass(frozen=True)
class StrippedImage:
    """What :func:`strip_annotations` returns.

    Attributes
    ----------
    image : numpy.ndarray
        float32 image with the overlays replaced (:func:`mask_annotations`); the input
        unchanged (as float32) when nothing was found.
    annotations : Annotations
        What was found (``annotations.mask`` for :func:`drop_masked_particles`).
    pixel_size_nm : float or None
        From the scale bar when ``scale_bar_nm`` was given, else None.
    scale_bar : ScaleBar or None
        The bar used for the calibration.
    """

    image: np.ndarray
    annotations: Annotations
    pixel_size_nm: float | None = None
    scale_bar: ScaleBar | None = None

    def to_info(self) -> dict[str, Any]:
        """``AnalysisResult.info["annotations"]``: what was masked, and the bar used."""
        info = self.annotations.to_info()
        info["scale_bar_used"] = None if self.scale_bar is None else self.scale_bar.to_dict()
        return info


def strip_annotations(image, *, scale_bar_nm: float | None = None,
                      settings: AnnotationSettings | None = None,
                      seed: int = 0) -> StrippedImage:
    """Find the overlays of an image, replace them, and calibrate from the scale bar if asked.

    The one call a pipeline needs before normalising/resampling: :func:`find_annotations`,
    :func:`pixel_size_from_scale_bar` (only with ``scale_bar_nm``) and
    :func:`mask_annotations`.

    Parameters
    ----------
    image : array_like
        2-D grey-level image as read (before any resampling).
    scale_bar_nm : float, optional
        Length of the burned-in scale bar in nm; the pixel size is then measured from it.
    settings : AnnotationSettings, optional
    seed : int
        Seed of the noise in the replaced pixels.

    Returns
    -------
    StrippedImage

    Raises
    ------
    ValueError
        With ``scale_bar_nm``: no bar, or several ambiguous ones (the message names
        ``scale_bar_nm`` and says to pass ``pixel_size_nm`` instead).
    """
    found = find_annotations(image, settings)
    pixel_size_nm, bar = None, None
    if scale_bar_nm is not None:
        pixel_size_nm, bar = pixel_size_from_scale_bar(image, scale_bar_nm, annotations=found)
    cleaned = mask_annotations(image, found, seed=seed) if found.found else \
        check_image(image)
    return StrippedImage(image=cleaned, annotations=found, pixel_size_nm=pixel_size_nm,
                         scale_bar=bar)
