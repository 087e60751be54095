"""U-Net segmentation: presets and loss, checkpoints, tiled prediction, instances, post-processing.

The training data (:mod:`.data`) and training loop (:mod:`.train`) are submodules of their own;
they import PyTorch when imported.
"""

from .checkpoint import CheckpointError, ModelCard, load_checkpoint, save_checkpoint
from .instances import filter_instances, labels_to_targets, split_instances, split_instances_blocked
from .model import PRESETS, build_unet, dice_bce_loss
from .postprocess import (
    DEFAULT_POSTPROCESS,
    VISIBILITY_FLOOR_PX,
    filter_visible,
    postprocess_settings,
    probabilities_to_instances,
    tune_postprocess,
)
from .predict import fuse_for_inference, inference_tile_shape, predict_probabilities

__all__ = [
    "DEFAULT_POSTPROCESS",
    "PRESETS",
    "VISIBILITY_FLOOR_PX",
    "CheckpointError",
    "ModelCard",
    "build_unet",
    "dice_bce_loss",
    "filter_instances",
    "filter_visible",
    "fuse_for_inference",
    "inference_tile_shape",
    "labels_to_targets",
    "load_checkpoint",
    "postprocess_settings",
    "predict_probabilities",
    "probabilities_to_instances",
    "save_checkpoint",
    "split_instances",
    "split_instances_blocked",
    "tune_postprocess",
]
