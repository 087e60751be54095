"""Resampling to a pixel size (nm/px) and back."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage
from scipy import ndimage as ndi

from etem_helpers.io import validate_pixel_size
from etem_helpers.measure import weighted_median


# --------------------------------------------------------------------------------------
# Resampling to a common pixel size
# --------------------------------------------------------------------------------------
def resample_to_pixel_size(
    image: np.ndarray,
    pixel_size_nm: float,
    target_pixel_size_nm: float,
    *,
    order: int = 1,
    is_label: bool = False,
) -> tuple[np.ndarray, float]:
    """Resample a 2-D image or label map to (almost exactly) a target pixel size.

    A CNN's receptive field and learned filters are measured in pixels. A network trained on
    particles 20–60 px across sees something else in a micrograph recorded at three times the
    magnification. Resampling every micrograph to one physical scale (nm/px) for training and
    for use makes a particle of a given size in nm span the same number of pixels, so the
    network's size range maps to a size range in nm.

    The output shape is rounded to whole pixels, so the achieved pixel size differs slightly
    from the target. One isotropic scale factor is used for both axes (set by the longer
    axis), so the returned pixel size is exact for both axes; along the shorter axis the field
    of view may differ from the input's by less than half an output pixel.

    Parameters
    ----------
    image : numpy.ndarray
        2-D image (any real dtype) or integer label map.
    pixel_size_nm : float
        Pixel size of ``image`` in nm/px.
    target_pixel_size_nm : float
        Wanted pixel size in nm/px.
    order : int
        Spline order for images (0–5; 1 = bilinear). Ignored when ``is_label`` (always 0).
    is_label : bool
        Treat ``image`` as a label map: nearest-neighbour sampling, no anti-aliasing, dtype
        kept, so no new label values can appear.

    Returns
    -------
    resampled : numpy.ndarray
        float32 for images; the input dtype for label maps.
    new_pixel_size_nm : float
        The pixel size actually achieved, in nm/px.

    Notes
    -----
    When shrinking, images are low-pass filtered first with a Gaussian of
    σ = (1/zoom − 1)/2 input pixels (as ``skimage.transform.rescale(anti_aliasing=True)``),
    otherwise lattice fringes and noise finer than the new Nyquist limit would alias into
    false low-frequency patterns (moiré).
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"image must be 2-D (H, W); got shape {image.shape}.")
    pixel_size_nm = validate_pixel_size(pixel_size_nm, argument="pixel_size_nm")
    target_pixel_size_nm = validate_pixel_size(
        target_pixel_size_nm, argument="target_pixel_size_nm"
    )
    if is_label and not (np.issubdtype(image.dtype, np.integer) or image.dtype == bool):
        raise ValueError(f"is_label=True needs an integer or bool label map, got {image.dtype}.")
    if not 0 <= order <= 5:
        raise ValueError(f"order must be between 0 and 5, got {order}.")

    shape = np.array(image.shape)
    long_axis = int(np.argmax(shape))
    n_long = int(shape[long_axis])
    new_long = max(1, round(n_long * pixel_size_nm / target_pixel_size_nm))
    zoom = new_long / n_long  # output pixels per input pixel, both axes
    new_shape = tuple(max(1, round(int(n) * zoom)) for n in shape)
    new_pixel_size_nm = float(pixel_size_nm / zoom)

    if new_shape == tuple(shape) and zoom == 1.0:
        out = image.copy() if is_label else image.astype(np.float32)
        return out, new_pixel_size_nm

    # Output pixel centre i maps to input coordinate (i + 0.5) / zoom - 0.5 (pixel areas
    # aligned at the top-left corner).
    matrix = np.full(2, 1.0 / zoom)
    offset = np.full(2, 0.5 / zoom - 0.5)
    if is_label:
        source = image.astype(np.int64) if image.dtype == bool else image
        out = ndimage.affine_transform(
            source, matrix, offset=offset, output_shape=new_shape, order=0, mode="nearest"
        )
        return out.astype(image.dtype), new_pixel_size_nm

    data = image.astype(np.float32)
    if zoom < 1.0:
        sigma = (1.0 / zoom - 1.0) / 2.0
        data = ndimage.gaussian_filter(data, sigma=sigma, mode="reflect")
    out = ndimage.affine_transform(
        data, matrix, offset=offset, output_shape=new_shape, order=order, mode="nearest"
    )
    return out.astype(np.float32), new_pixel_size_nm

#: Largest resampling factor (either direction) before :func:`analyze` refuses.
MAX_RESAMPLING_FACTOR = 8.0


#: Smallest side (pixels) of a resampled image before :func:`analyze` refuses.
MIN_RESAMPLED_SIDE_PX = 32

#: Fewest model-free blobs from which a coarse image's particle size is estimated
#: (:func:`plan_by_estimated_size`); the same count :func:`plan_by_particle_size` needs.
MIN_BLOBS_FOR_SIZE_ESTIMATE = 3

#: Model-free blobs whose area-weighted median diameter is below this many times the model's
#: smallest trained diameter (px) mean particles too small for the network at this sampling.
SMALL_BLOB_FACTOR = 2.0

#: An image inside a model's pixel-size range is enlarged for small blobs only when they are
#: at least this large in nm: on simulated HRTEM micrographs (0.03-0.1 nm/px) the model-free
#: blobs of fringes and support texture measure 0.6-1.8 nm (area-weighted median), small
#: particles at 0.5-0.85 nm/px 5-20 nm (validation images of
#: ``benchmarks/eval_small_particles.py``).
MIN_ENLARGED_PARTICLE_NM = 3.0

#: Largest image (pixels) :func:`plan_by_estimated_size` enlarges to: 4096², so that a
#: workshop machine (2 GB) can analyse it (a 1024² image of 500 particles 7-12 px across,
#: enlarged 6.1× to 6241², took 103 s and 2.4 GB on this 2-core CPU with every stage on); a
#: larger image is enlarged less, and not at all when that would be less than 1.2×.
MAX_ENLARGED_PIXELS = 4096 * 4096


#: Largest resampled image (pixels) before :func:`analyze` refuses (16384²).
MAX_RESAMPLED_PIXELS = 16384 * 16384


# --------------------------------------------------------------------------------------
# Pixel size: resampling plan and mapping back
# --------------------------------------------------------------------------------------
class ResamplingPlan(dict):
    """What :func:`plan_resampling` decided (a dict, stored in ``result.info``).

    Keys: ``resample`` (bool), ``pixel_size_nm`` (input), ``target_pixel_size_nm``,
    ``factor`` (output pixels per input pixel along each axis), ``shape`` (input) and
    ``reason`` (text).
    """


def plan_resampling(
    image_shape, pixel_size_nm: float, pixel_size_range_nm
) -> ResamplingPlan:
    """Decide whether an image must be resampled to fit a model's pixel-size range.

    Parameters
    ----------
    image_shape : sequence of int
        (H, W) in pixels.
    pixel_size_nm : float
        Pixel size of the image, nm/px.
    pixel_size_range_nm : (float, float)
        The model's documented range (nm/px).

    Returns
    -------
    ResamplingPlan
        Inside the range (ends included): no resampling. Outside: resample to the nearest
        end of the range.

    Raises
    ------
    ValueError
        The needed factor exceeds :data:`MAX_RESAMPLING_FACTOR` in either direction, the
        resampled image would have a side below :data:`MIN_RESAMPLED_SIDE_PX` pixels, or
        more than :data:`MAX_RESAMPLED_PIXELS` pixels. The message gives the numbers.
    """
    low, high = (float(v) for v in pixel_size_range_nm)
    height, width = (int(n) for n in tuple(image_shape)[-2:])
    plan = ResamplingPlan(
        resample=False,
        pixel_size_nm=float(pixel_size_nm),
        target_pixel_size_nm=float(pixel_size_nm),
        factor=1.0,
        shape=(height, width),
        reason=f"{pixel_size_nm:.4g} nm/px is inside the model's range {low:.4g}–{high:.4g} "
        "nm/px: image used as it is",
    )
    if low <= pixel_size_nm <= high:
        return plan
    target = low if pixel_size_nm < low else high
    factor = pixel_size_nm / target  # output pixels per input pixel
    new_shape = (max(1, round(height * factor)), max(1, round(width * factor)))
    advice = (
        f"The model handles {low:.4g}–{high:.4g} nm/px; check pixel_size_nm "
        f"({pixel_size_nm:.4g} nm/px), bin or crop the image yourself, or use a model trained "
        "for this magnification."
    )
    if max(factor, 1.0 / factor) > MAX_RESAMPLING_FACTOR:
        raise ValueError(
            f"The image's pixel size {pixel_size_nm:.4g} nm/px needs resampling by "
            f"{factor:.3g}× to reach {target:.4g} nm/px, beyond the {MAX_RESAMPLING_FACTOR:g}× "
            f"this function accepts (results would be unreliable). {advice}"
        )
    if min(new_shape) < MIN_RESAMPLED_SIDE_PX:
        raise ValueError(
            f"Resampling the {height}×{width} image from {pixel_size_nm:.4g} to {target:.4g} "
            f"nm/px would leave {new_shape[0]}×{new_shape[1]} pixels, fewer than "
            f"{MIN_RESAMPLED_SIDE_PX} px per side: too little to segment. {advice}"
        )
    if new_shape[0] * new_shape[1] > MAX_RESAMPLED_PIXELS:
        raise ValueError(
            f"Resampling the {height}×{width} image from {pixel_size_nm:.4g} to {target:.4g} "
            f"nm/px would give {new_shape[0]}×{new_shape[1]} pixels (more than "
            f"{MAX_RESAMPLED_PIXELS} px); crop the image into parts first. {advice}"
        )
    plan.update(
        resample=True,
        target_pixel_size_nm=float(target),
        factor=float(factor),
        reason=f"{pixel_size_nm:.4g} nm/px is outside the model's range {low:.4g}–{high:.4g} "
        f"nm/px: resampled by {factor:.4g}× to {target:.4g} nm/px for the prediction, "
        "probability and labels mapped back to the original grid",
    )
    return plan


def area_weighted_median(diameters_px) -> float:
    """The diameter below which half of the total particle area lies (NaN if empty).

    Parameters
    ----------
    diameters_px : array_like of float
        Equivalent diameters; each weighs by its area (diameter squared).
    """
    d = _positive(diameters_px)
    return weighted_median(d, d**2)


def _positive(values) -> np.ndarray:
    d = np.asarray(values, dtype=np.float64).ravel()
    return d[np.isfinite(d) & (d > 0)]


def has_trained_sizes(diameters_px, diameter_range_px, *, min_particles: int = 3) -> bool:
    """Whether a network's particles have the sizes (px) it was trained on.

    Parameters
    ----------
    diameters_px : array_like of float
        Equivalent diameters (px) of the particles a pass found.
    diameter_range_px : (float, float)
        The model's trained diameter range in pixels (``ModelCard.diameter_range_px``).
    min_particles : int, optional
        Fewest particles for a yes. Default 3.

    Returns
    -------
    bool
        At least ``min_particles`` particles and their median diameter inside the range.
    """
    d = _positive(diameters_px)
    if d.size < max(int(min_particles), 1):
        return False
    low, high = (float(v) for v in diameter_range_px)
    return bool(low <= float(np.median(d)) <= high)


def plan_by_particle_size(
    image_shape, pixel_size_nm: float, diameters_px, diameter_range_px, *,
    independent_diameters_px=None, min_particles: int = 3,
) -> ResamplingPlan | None:
    """Keep an image at its own pixel size when its particles already have trained sizes in px.

    A network recognises particles by their size in pixels. If a first pass at the image's
    own pixel size finds particles whose median equivalent diameter lies inside the range
    the model was trained on (``ModelCard.diameter_range_px``), resampling would only cost
    time (a coarse 1024² image at 7 nm/px would otherwise be blown up 7×).

    Parameters
    ----------
    image_shape : sequence of int
        (H, W) in pixels.
    pixel_size_nm : float
        Pixel size of the image, nm/px.
    diameters_px : array_like of float
        Equivalent diameters (px) of the particles the first pass found (not cut by the
        border).
    diameter_range_px : (float, float)
        The model's trained diameter range in pixels.
    independent_diameters_px : array_like of float, optional
        Diameters (px) of blobs found without the network
        (:func:`etem_helpers.segmentation.scale.blob_diameters_px`). A network blind to
        particles smaller than it was trained on finds only the largest ones, so its median
        alone would keep an image of small particles at its own pixel size. The image is
        not kept when these blobs' area-weighted median diameter (robust to noise specks
        and merged neighbours) is below twice the range's lower end: on simulated
        low-magnification images that is 18-25 px for particles of median 12-17 px across
        and 61-83 px for ordinary ones of median 47-68 px (seeds 100-105 and 200-203 of
        ``benchmarks/bench_scale.py``, used to set this rule; its reported run uses others).
    min_particles : int, optional
        Fewest particles for a decision. Default 3.

    Returns
    -------
    ResamplingPlan or None
        A plan without resampling (with ``median_diameter_px`` and the reason) when the
        median is inside the range; None when there are too few particles or a median is
        outside the range (then resample by pixel size: :func:`plan_resampling`).
    """
    if not has_trained_sizes(diameters_px, diameter_range_px, min_particles=min_particles):
        return None
    d = _positive(diameters_px)
    low, high = (float(v) for v in diameter_range_px)
    median = float(np.median(d))
    independent = _positive([] if independent_diameters_px is None else independent_diameters_px)
    if (independent.size >= max(int(min_particles), 1)
            and area_weighted_median(independent) < SMALL_BLOB_FACTOR * low):
        return None
    height, width = (int(n) for n in tuple(image_shape)[-2:])
    return ResamplingPlan(
        resample=False,
        pixel_size_nm=float(pixel_size_nm),
        target_pixel_size_nm=float(pixel_size_nm),
        factor=1.0,
        shape=(height, width),
        median_diameter_px=median,
        n_particles=int(d.size),
        reason=f"{pixel_size_nm:.4g} nm/px is outside the model's pixel-size range, but its "
        f"particles (median {median:.1f} px across, {d.size} found at this pixel size) are "
        f"inside the {low:.0f}–{high:.0f} px the model was trained on: image used as it is",
    )


def plan_by_estimated_size(
    image_shape, pixel_size_nm: float, estimated_diameter_px: float, diameter_range_px, *,
    max_factor: float | None = None, min_factor: float = 0.25,
) -> ResamplingPlan | None:
    """Resample so that the particles land in the middle of the model's trained sizes in px.

    For a coarse image the first pass did not keep (:func:`plan_by_particle_size`): the
    factor moves the estimated particle size (the model-free blobs' area-weighted median,
    :func:`area_weighted_median` of :func:`etem_helpers.segmentation.scale.blob_diameters_px`)
    to ``sqrt(2 * low * high)`` px, the middle on a log scale of the band the first pass
    accepts (blobs at least ``2 * low``, network particles at most ``high``), instead of
    resampling into the model's nm/px range whatever the particles' size in pixels
    (``benchmarks/bench_scale.py``).

    Parameters
    ----------
    image_shape : sequence of int
        (H, W) in pixels.
    pixel_size_nm : float
        Pixel size of the image, nm/px.
    estimated_diameter_px : float
        Estimated particle diameter in px (NaN or not positive: no plan).
    diameter_range_px : (float, float)
        The model's trained diameter range in pixels (``ModelCard.diameter_range_px``).
    max_factor : float, optional
        Largest factor allowed (the nm/px path's, so that this never upsamples more than it);
        default :data:`MAX_RESAMPLING_FACTOR`.
    min_factor : float, optional
        Smallest factor allowed (downsampling images of very large particles). Default 1/4.

    Returns
    -------
    ResamplingPlan or None
        The plan (``estimated_diameter_px`` and ``target_diameter_px`` added), or None when
        there is no estimate, the resampled image would be too small, or an enlargement would
        exceed :data:`MAX_ENLARGED_PIXELS` even at 1.2×.
    """
    estimate = float(estimated_diameter_px)
    if not (np.isfinite(estimate) and estimate > 0):
        return None
    low, high = (float(v) for v in diameter_range_px)
    target_px = math.sqrt(2.0 * low * high)
    top = MAX_RESAMPLING_FACTOR if max_factor is None else min(float(max_factor),
                                                                MAX_RESAMPLING_FACTOR)
    factor = float(np.clip(target_px / estimate, max(float(min_factor),
                                                     1.0 / MAX_RESAMPLING_FACTOR), top))
    height, width = (int(n) for n in tuple(image_shape)[-2:])
    budget = math.sqrt(MAX_ENLARGED_PIXELS / (height * width))
    if factor > max(budget, 1.0):  # enlarging beyond the memory budget: less, or not at all
        factor = budget
        if factor < 1.2:
            return None
    new_shape = (max(1, round(height * factor)), max(1, round(width * factor)))
    if min(new_shape) < MIN_RESAMPLED_SIDE_PX or new_shape[0] * new_shape[1] > MAX_RESAMPLED_PIXELS:
        return None
    target_nm = float(pixel_size_nm) / factor
    return ResamplingPlan(
        resample=abs(factor - 1.0) > 1e-9,
        pixel_size_nm=float(pixel_size_nm),
        target_pixel_size_nm=target_nm,
        factor=factor,
        shape=(height, width),
        estimated_diameter_px=estimate,
        target_diameter_px=target_px,
        reason=f"{pixel_size_nm:.4g} nm/px is outside the model's pixel-size range; its particles "
        f"(about {estimate:.1f} px across, estimated without the network) were resampled by "
        f"{factor:.3g}× to about {estimate * factor:.0f} px, inside the {low:.0f}–{high:.0f} px "
        f"the model was trained on ({target_nm:.4g} nm/px for the prediction, probability and "
        "labels mapped back to the original grid)",
    )


def plan_for_small_particles(
    image_shape, pixel_size_nm: float, blob_diameters_px, diameter_range_px,
    pixel_size_range_nm,
) -> ResamplingPlan | None:
    """Enlarge an image inside a model's pixel-size range whose particles are too small for it.

    The model-free blobs (:func:`etem_helpers.segmentation.scale.blob_diameters_px`) decide:
    at least :data:`MIN_BLOBS_FOR_SIZE_ESTIMATE` of them, their area-weighted median below
    :data:`SMALL_BLOB_FACTOR` times the smallest trained diameter in px and at least
    :data:`MIN_ENLARGED_PARTICLE_NM` (finer blobs are lattice fringes and support texture).
    Then :func:`plan_by_estimated_size`, never finer than the range's lower end.

    Parameters
    ----------
    image_shape : sequence of int
        (H, W) in pixels.
    pixel_size_nm : float
        Pixel size of the image (inside ``pixel_size_range_nm``).
    blob_diameters_px : array_like of float
        Diameters of the model-free blobs.
    diameter_range_px, pixel_size_range_nm : (float, float)
        The model's trained diameters (px) and pixel sizes (nm/px).

    Returns
    -------
    ResamplingPlan or None
        An enlarging plan, or None (the image is used as it is).
    """
    blobs = _positive(blob_diameters_px)
    estimate = area_weighted_median(blobs)
    if (blobs.size < MIN_BLOBS_FOR_SIZE_ESTIMATE
            or not estimate < SMALL_BLOB_FACTOR * float(diameter_range_px[0])
            or estimate * float(pixel_size_nm) < MIN_ENLARGED_PARTICLE_NM):
        return None
    plan = plan_by_estimated_size(image_shape, pixel_size_nm, estimate, diameter_range_px,
                                  min_factor=1.0,
                                  max_factor=float(pixel_size_nm) / float(pixel_size_range_nm[0]))
    return plan if plan is not None and plan["resample"] else None


def map_to_grid(
    array: np.ndarray, zoom: float, shape: tuple[int, int], *, is_label: bool
) -> np.ndarray:
    """Map an array on the resampled grid back onto the original grid of ``shape``.

    ``zoom`` is the resampled/original pixel ratio used by
    :func:`etem_helpers.preprocess.resample_to_pixel_size` (both axes); original pixel centre j
    sits at resampled coordinate ``(j + 0.5) * zoom - 0.5``. Labels use nearest neighbour,
    probabilities linear interpolation (low-pass filtered first when shrinking).
    """
    matrix = np.full(2, zoom)
    offset = np.full(2, 0.5 * zoom - 0.5)
    if is_label:
        return ndi.affine_transform(
            array, matrix, offset=offset, output_shape=shape, order=0, mode="nearest"
        )
    data = array.astype(np.float32, copy=False)
    if zoom > 1.0:
        data = ndi.gaussian_filter(data, sigma=(zoom - 1.0) / 2.0, mode="reflect")
    out = ndi.affine_transform(
        data, matrix, offset=offset, output_shape=shape, order=1, mode="nearest",
        output=np.float32,
    )
    return np.clip(out, 0.0, 1.0, out=out)
