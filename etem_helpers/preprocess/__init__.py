"""From an image to what a network sees: validate, normalise, resample, tile and stitch.

One implementation of each: the training data, the notebooks and :class:`etem_helpers.Analyzer`
all call these.
"""

from .normalize import Normalization, normalize_image
from .resample import (
    ResamplingPlan,
    has_trained_sizes,
    plan_by_estimated_size,
    plan_by_particle_size,
    plan_for_small_particles,
    plan_resampling,
    resample_to_pixel_size,
)
from .tiles import TileStitcher, iter_tiles, stitch_tiles, tile_image, tile_positions
from .validate import check_image

__all__ = [
    "Normalization",
    "ResamplingPlan",
    "TileStitcher",
    "check_image",
    "iter_tiles",
    "normalize_image",
    "plan_by_estimated_size",
    "plan_by_particle_size",
    "has_trained_sizes",
    "plan_for_small_particles",
    "plan_resampling",
    "resample_to_pixel_size",
    "stitch_tiles",
    "tile_image",
    "tile_positions",
]
