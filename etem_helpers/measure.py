"""Per-particle measurements from an instance label map.

The single function :func:`measure_particles` turns a label map (0 = background,
one positive integer id per particle) into the particle table defined in the
project contract (``docs/contract.md``). The same function is used
for the simulator's ground truth, for the model output and for the classical
baselines, so that all three are measured identically.

Conventions
-----------
* Pixel ``(row, col)`` is the unit square ``[row, row + 1) x [col, col + 1)``; its
  centre is at ``(row + 0.5, col + 0.5)``. Centroids are reported as the mean pixel
  *index* (``row``, ``col``), i.e. the usual NumPy/scikit-image convention where
  the centre of pixel ``(0, 0)`` is ``(0, 0)``.
* Second moments treat every pixel as a uniform unit square, not a point: the
  covariance of the pixel centres gets ``1/12 px**2`` added on each axis (the
  variance of a uniform distribution of width 1). For a digitised disk of radius
  ``R`` this gives a major axis of ``2 R`` to within digitisation error, and a
  single pixel or a one-pixel-wide line gets a finite, non-zero minor axis, so
  ``aspect_ratio`` and ``roundness`` are never ``inf`` or ``NaN``.
* ``feret_max_nm`` is the exact largest distance between two points of the union of
  the particle's pixel squares, i.e. the largest distance between two pixel
  *corners* on its convex hull (as ImageJ's Feret on the pixel outline). This
  differs from ``skimage.measure.regionprops(...).feret_diameter_max``, which uses
  the 0.5-iso-contour of the convex hull image through pixel-edge midpoints and so
  cuts the corners: for a ``w x h`` pixel rectangle it is about one pixel shorter
  than the true diagonal ``sqrt(w**2 + h**2)`` returned here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from scipy.spatial import ConvexHull
from scipy.spatial.distance import pdist

from etem_helpers.io import validate_pixel_size

__all__ = [
    "PARTICLE_COLUMNS",
    "empty_particle_table",
    "measure_particles",
    "relabel_sequential",
    "uses_blocks",
    "validate_labels",
    "weighted_median",
]

#: Block side (pixels) of the block-wise measuring and splitting of large images.
SPLIT_BLOCK_PX = 2048
#: Label maps with more pixels than this are split and measured block by block.
BLOCKED_SPLIT_MIN_PIXELS = 2048 * 2048

#: Column names of the particle table, in contract order.
PARTICLE_COLUMNS: tuple[str, ...] = (
    "particle_id",
    "centroid_y_px",
    "centroid_x_px",
    "area_nm2",
    "diameter_nm",
    "feret_max_nm",
    "aspect_ratio",
    "roundness",
    "touches_border",
    "confidence",
    "fault_probability",
    "has_fault",
)

_FLOAT_COLUMNS = (
    "centroid_y_px",
    "centroid_x_px",
    "area_nm2",
    "diameter_nm",
    "feret_max_nm",
    "aspect_ratio",
    "roundness",
    "confidence",
    "fault_probability",
)

# Above this many candidate corner points, reduce to the convex hull before pdist.
_HULL_THRESHOLD = 256


def validate_labels(labels) -> np.ndarray:
    """A 2-D non-negative integer label map (int32 range), or an error that says what to do."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(
            f"labels must be a 2-D integer label map, got an array with shape {labels.shape}."
        )
    if labels.dtype == bool:
        raise TypeError(
            "labels is a boolean mask, not an instance label map. Call "
            "skimage.measure.label(mask) first to give each connected particle its own id."
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(
            f"labels must have an integer dtype (0 = background, 1..N particle ids), "
            f"got dtype {labels.dtype}. Convert with labels.astype(np.int32) if the "
            "values are whole numbers, or label a mask with skimage.measure.label."
        )
    if labels.size and labels.min() < 0:
        raise ValueError(
            "labels contains negative values; use 0 for background and positive ids for particles."
        )
    if labels.size and labels.max() > np.iinfo(np.int32).max:
        raise ValueError(
            "labels contains ids larger than the int32 range; relabel with "
            "skimage.segmentation.relabel_sequential(labels)[0]."
        )
    return labels



def empty_particle_table() -> pd.DataFrame:
    """Return a particle table with no rows and the contract columns and dtypes.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`PARTICLE_COLUMNS`; ``particle_id`` int32, ``touches_border``
        bool, ``has_fault`` pandas ``"boolean"``, all others float64.
    """
    return _build_table(
        ids=np.zeros(0, dtype=np.int32),
        centroid_y=np.zeros(0),
        centroid_x=np.zeros(0),
        area_nm2=np.zeros(0),
        feret_max_nm=np.zeros(0),
        aspect_ratio=np.zeros(0),
        roundness=np.zeros(0),
        touches_border=np.zeros(0, dtype=bool),
        confidence=np.zeros(0),
    )


def _build_table(
    *,
    ids,
    centroid_y,
    centroid_x,
    area_nm2,
    feret_max_nm,
    aspect_ratio,
    roundness,
    touches_border,
    confidence,
) -> pd.DataFrame:
    n = len(ids)
    data = {
        "particle_id": np.asarray(ids, dtype=np.int32),
        "centroid_y_px": np.asarray(centroid_y, dtype=np.float64),
        "centroid_x_px": np.asarray(centroid_x, dtype=np.float64),
        "area_nm2": np.asarray(area_nm2, dtype=np.float64),
        "diameter_nm": 2.0 * np.sqrt(np.asarray(area_nm2, dtype=np.float64) / np.pi),
        "feret_max_nm": np.asarray(feret_max_nm, dtype=np.float64),
        "aspect_ratio": np.asarray(aspect_ratio, dtype=np.float64),
        "roundness": np.asarray(roundness, dtype=np.float64),
        "touches_border": np.asarray(touches_border, dtype=bool),
        "confidence": np.asarray(confidence, dtype=np.float64),
        "fault_probability": np.full(n, np.nan, dtype=np.float64),
        "has_fault": pd.array([pd.NA] * n, dtype="boolean"),
    }
    return pd.DataFrame(data, columns=list(PARTICLE_COLUMNS))


def _feret_max_px(rows, cols, label_index, n_labels, height) -> np.ndarray:
    """Largest corner-to-corner distance of each particle's pixel union, in pixels.

    Only the left-most and right-most pixel of every row of a particle can lie on
    its convex hull, so the candidate points are the two outer corners of those
    two pixels (four points per row). Grouping is vectorised; the per-particle work
    is one ``pdist`` (after a convex hull for large particles).
    """
    feret = np.zeros(n_labels, dtype=np.float64)
    if rows.size == 0:
        return feret
    key = label_index.astype(np.int64) * height + rows
    # np.nonzero gives row-major order, so a stable sort keeps columns ascending
    # within each (particle, row) group.
    order = np.argsort(key, kind="stable")
    key_sorted = key[order]
    cols_sorted = cols[order]
    starts = np.flatnonzero(np.r_[True, key_sorted[1:] != key_sorted[:-1]])
    ends = np.r_[starts[1:], key_sorted.size] - 1
    group_key = key_sorted[starts]
    group_label = group_key // height
    group_row = (group_key % height).astype(np.float64)
    col_min = cols_sorted[starts].astype(np.float64)
    col_max = cols_sorted[ends].astype(np.float64) + 1.0
    # Four corner points per (particle, row) group, as (y, x).
    pts_y = np.stack([group_row, group_row + 1.0, group_row, group_row + 1.0], axis=1)
    pts_x = np.stack([col_min, col_min, col_max, col_max], axis=1)
    label_starts = np.searchsorted(group_label, np.arange(n_labels))
    label_ends = np.r_[label_starts[1:], group_label.size]
    for k in range(n_labels):
        sl = slice(label_starts[k], label_ends[k])
        points = np.column_stack([pts_y[sl].ravel(), pts_x[sl].ravel()])
        if points.shape[0] > _HULL_THRESHOLD:
            points = points[ConvexHull(points).vertices]
        feret[k] = np.sqrt(pdist(points, "sqeuclidean").max())
    return feret


def uses_blocks(shape) -> bool:
    """Whether a label map of this shape is split and measured block by block (large images)."""
    return int(np.prod(shape)) > BLOCKED_SPLIT_MIN_PIXELS


def measure_particles(labels, pixel_size_nm, *, probability=None) -> pd.DataFrame:
    """Measure every particle of an instance label map.

    Parameters
    ----------
    labels : (H, W) ndarray of int
        Instance label map: 0 is background, each positive integer one particle.
        Ids need not be contiguous. A boolean mask is refused: label it first with
        ``skimage.measure.label``.
    pixel_size_nm : float
        Pixel size in nm per pixel (finite, > 0). Never assumed.
    probability : (H, W) ndarray of float, optional
        Foreground probability in [0, 1] (e.g. the model output). If given,
        ``confidence`` is its mean over each particle's pixels; otherwise NaN.

    Returns
    -------
    pandas.DataFrame
        One row per nonzero id, sorted by id, with the columns
        :data:`PARTICLE_COLUMNS`:

        * ``particle_id`` (int32): the id in ``labels``.
        * ``centroid_y_px``, ``centroid_x_px``: mean pixel row / column index (px).
        * ``area_nm2``: pixel count x ``pixel_size_nm**2``.
        * ``diameter_nm``: area-equivalent circle diameter ``2 sqrt(area / pi)``.
        * ``feret_max_nm``: largest caliper width of the union of pixel squares
          (exact, corner to corner on the convex hull).
        * ``aspect_ratio``: major / minor axis of the ellipse with the same
          second moments (>= 1); major = ``4 sqrt(lambda1)``, minor =
          ``4 sqrt(lambda2)``, with ``lambda`` the eigenvalues of the pixel-centre
          covariance plus ``1/12 px**2`` on each axis (pixels are unit squares).
        * ``roundness``: ``4 area / (pi major**2)`` (ImageJ "Round"), clipped to (0, 1].
        * ``touches_border`` (bool): a pixel lies in the first/last row/column.
        * ``confidence``: mean ``probability`` over the particle, or NaN.
        * ``fault_probability``: NaN (filled by the fault classifier).
        * ``has_fault`` (pandas ``"boolean"``): ``pd.NA`` (filled by the fault
          classifier).

        An empty label map gives an empty table with the same columns and dtypes.

    Raises
    ------
    TypeError
        If ``labels`` is boolean or not integer, or ``pixel_size_nm`` is not a number.
    ValueError
        If ``labels`` is not 2-D or has negative ids, ``pixel_size_nm`` is not
        finite and > 0, or ``probability`` has a different shape.

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.zeros((8, 8), dtype=np.int32)
    >>> labels[2:5, 2:6] = 7
    >>> table = measure_particles(labels, pixel_size_nm=0.5)
    >>> float(table.loc[0, "area_nm2"])
    3.0
    """
    labels = validate_labels(labels)
    pixel_size_nm = validate_pixel_size(pixel_size_nm, argument="pixel_size_nm")
    if uses_blocks(labels.shape):
        return _measure_blocked(labels, pixel_size_nm, probability=probability)
    return _measure_whole(labels, pixel_size_nm, probability)


def _measure_whole(labels, pixel_size_nm, probability) -> pd.DataFrame:
    """:func:`measure_particles` on a validated label map, in one piece."""
    if probability is not None:
        probability = np.asarray(probability)
        if probability.shape != labels.shape:
            raise ValueError(
                f"probability has shape {probability.shape} but labels has shape "
                f"{labels.shape}; pass the probability map of the same image."
            )

    rows, cols = np.nonzero(labels)
    if rows.size == 0:
        return empty_particle_table()
    values = labels[rows, cols]
    ids, label_index = np.unique(values, return_inverse=True)
    label_index = label_index.ravel()
    n_labels = ids.size

    count = np.bincount(label_index, minlength=n_labels).astype(np.float64)
    rows_f = rows.astype(np.float64)
    cols_f = cols.astype(np.float64)
    cy = np.bincount(label_index, weights=rows_f, minlength=n_labels) / count
    cx = np.bincount(label_index, weights=cols_f, minlength=n_labels) / count
    dy = rows_f - cy[label_index]
    dx = cols_f - cx[label_index]
    # Covariance of a union of uniform unit squares: pixel-centre covariance + 1/12.
    var_y = np.bincount(label_index, weights=dy * dy, minlength=n_labels) / count + 1.0 / 12.0
    var_x = np.bincount(label_index, weights=dx * dx, minlength=n_labels) / count + 1.0 / 12.0
    cov_xy = np.bincount(label_index, weights=dy * dx, minlength=n_labels) / count
    half_trace = 0.5 * (var_y + var_x)
    root = np.sqrt((0.5 * (var_y - var_x)) ** 2 + cov_xy**2)
    lambda1 = half_trace + root
    # lambda2 >= 1/12 analytically; guard against rounding.
    lambda2 = np.maximum(half_trace - root, 1.0 / 12.0)
    major_px = 4.0 * np.sqrt(lambda1)
    aspect_ratio = np.sqrt(lambda1 / lambda2)
    roundness = np.clip(4.0 * count / (np.pi * major_px**2), np.finfo(np.float64).tiny, 1.0)

    height, width = labels.shape
    on_border = (rows == 0) | (rows == height - 1) | (cols == 0) | (cols == width - 1)
    touches_border = np.bincount(label_index[on_border], minlength=n_labels) > 0

    if probability is None:
        confidence = np.full(n_labels, np.nan)
    else:
        prob_values = probability[rows, cols].astype(np.float64)
        confidence = np.bincount(label_index, weights=prob_values, minlength=n_labels) / count

    feret_px = _feret_max_px(rows, cols, label_index, n_labels, height)

    return _build_table(
        ids=ids,
        centroid_y=cy,
        centroid_x=cx,
        area_nm2=count * pixel_size_nm**2,
        feret_max_nm=feret_px * pixel_size_nm,
        aspect_ratio=aspect_ratio,
        roundness=roundness,
        touches_border=touches_border,
        confidence=confidence,
    )

def relabel_sequential(
    labels: np.ndarray, *, keep: np.ndarray | None = None, raster_order: bool = False
) -> np.ndarray:
    """Renumber the ids present in ``labels`` as 1..N (int32): the package's one relabelling.

    Parameters
    ----------
    labels : numpy.ndarray
        Non-negative integer label map (0 background).
    keep : numpy.ndarray of bool, optional
        ``keep[i]`` says whether id ``i`` stays (indexed by id, at least ``labels.max() + 1``
        long); the others become background. Default: every id present.
    raster_order : bool
        Number the ids by their first pixel in raster order instead of by their old id.

    Returns
    -------
    numpy.ndarray
        int32 labels of the same shape, ids 1..N.
    """
    flat = labels.ravel()
    present = np.bincount(flat) > 0
    present[0] = False
    if keep is not None:
        present &= np.asarray(keep, dtype=bool)[: present.size]
    ids = np.flatnonzero(present)
    if raster_order and ids.size:
        first_index = np.full(present.size, flat.size, dtype=np.int64)
        np.minimum.at(first_index, flat, np.arange(flat.size))
        ids = ids[np.argsort(first_index[ids], kind="stable")]
    mapping = np.zeros(present.size, dtype=np.int32)
    mapping[ids] = np.arange(1, ids.size + 1, dtype=np.int32)
    return mapping[labels]


def _measure_blocked(
    labels: np.ndarray,
    pixel_size_nm: float,
    *,
    probability: np.ndarray | None = None,
    block_px: int = SPLIT_BLOCK_PX,
):
    """:func:`measure_particles` on a large validated label map, block by block.

    ``measure_particles`` keeps several 8-byte arrays per foreground pixel; on an 8192²
    map that is mostly foreground this needs more than 5 GB. Here each particle goes to
    the ``block_px`` block holding the top-left corner of its bounding box, each block's
    particles are measured on the union of their bounding boxes (other ids removed), and
    the centroids are shifted back and ``touches_border`` is taken from the bounding box
    in the whole image. Every measurement is translation invariant, so the table equals
    ``measure_particles`` on the whole map (same columns, dtypes and row order).

    Parameters
    ----------
    labels : numpy.ndarray
        (H, W) integer label map (0 background).
    pixel_size_nm : float
        nm per pixel.
    probability : numpy.ndarray, optional
        (H, W) foreground probability for ``confidence``.
    block_px : int
        Block side in pixels (>= 64).

    Returns
    -------
    pandas.DataFrame
        One row per id, sorted by id, the contract columns.
    """
    if probability is not None and np.shape(probability) != labels.shape:
        return _measure_whole(labels, pixel_size_nm, probability)  # raises its error
    height, width = labels.shape
    boxes = ndi.find_objects(labels.astype(np.int32, copy=False))
    ids = np.array([i + 1 for i, box in enumerate(boxes) if box is not None], dtype=np.int64)
    if ids.size == 0:
        return empty_particle_table()
    starts = np.array([(boxes[i - 1][0].start, boxes[i - 1][1].start) for i in ids])
    stops = np.array([(boxes[i - 1][0].stop, boxes[i - 1][1].stop) for i in ids])
    n_block_x = -(-width // int(block_px))
    block_of = (starts[:, 0] // block_px) * n_block_x + starts[:, 1] // block_px
    order = np.argsort(block_of, kind="stable")
    bounds = np.flatnonzero(np.r_[True, np.diff(block_of[order]) != 0, True])
    lookup = np.zeros(int(ids.max()) + 1, dtype=bool)
    tables = []
    for first, last in zip(bounds[:-1], bounds[1:], strict=True):
        members = order[first:last]
        y0, x0 = starts[members].min(axis=0)
        y1, x1 = stops[members].max(axis=0)
        window = (slice(int(y0), int(y1)), slice(int(x0), int(x1)))
        lookup[:] = False
        lookup[ids[members]] = True
        crop = labels[window]
        local = np.where(lookup[crop], crop, 0)
        table = _measure_whole(
            local, pixel_size_nm, None if probability is None else probability[window]
        )
        table["centroid_y_px"] += float(y0)
        table["centroid_x_px"] += float(x0)
        box_index = table["particle_id"].to_numpy().astype(np.int64) - 1
        table["touches_border"] = [
            boxes[i][0].start == 0
            or boxes[i][1].start == 0
            or boxes[i][0].stop == height
            or boxes[i][1].stop == width
            for i in box_index
        ]
        tables.append(table)
    result = pd.concat(tables, ignore_index=True)
    result = result.sort_values("particle_id", kind="stable").reset_index(drop=True)
    return result.astype(empty_particle_table().dtypes.to_dict())


def weighted_median(values, weights) -> float:
    """The value below which half of the total weight lies (NaN if there are no values).

    Parameters
    ----------
    values, weights : array_like of float
        Same length; weights non-negative with a positive sum.

    Returns
    -------
    float
        The smallest value whose cumulative weight (values in increasing order) reaches half
        the total.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    weights = np.asarray(weights, dtype=np.float64).ravel()
    if values.size == 0:
        return float("nan")
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, 0.5 * cumulative[-1])])
