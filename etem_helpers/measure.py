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
from scipy.spatial import ConvexHull
from scipy.spatial.distance import pdist

__all__ = ["PARTICLE_COLUMNS", "measure_particles", "empty_particle_table"]

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


def _validate_labels(labels) -> np.ndarray:
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


def _validate_pixel_size(pixel_size_nm) -> float:
    try:
        value = float(pixel_size_nm)
    except (TypeError, ValueError):
        raise TypeError(
            f"pixel_size_nm must be a number (nm per pixel), got {pixel_size_nm!r}."
        ) from None
    if not np.isfinite(value) or value <= 0:
        raise ValueError(
            f"pixel_size_nm must be a finite number > 0 (nm per pixel), got {pixel_size_nm!r}. "
            "Read it from the file metadata or the microscope calibration."
        )
    return value


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
    labels = _validate_labels(labels)
    pixel_size_nm = _validate_pixel_size(pixel_size_nm)
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
