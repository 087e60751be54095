"""How good is a segmentation: pixel scores, instance matching, visibility, and one evaluate().

Pixel metrics compare foreground masks; instance metrics match predicted to true particles
one-to-one (Hungarian on IoU, a true positive at IoU >= 0.5) and then compare the measured size
and shape of matched particles.
"""

from .matching import (
    MatchResult,
    detection_scores,
    instance_scores,
    match_instances,
    matched_errors,
    relative_size_errors,
    summarize_errors,
)
from .pixel import dice_coefficient, iou_score
from .scoring import Evaluation, evaluate, pool_scores, recall_by_snr, score_image, visibility_of
from .visibility import ROSE_THRESHOLD, particle_visibility, visible_instance_scores

__all__ = [
    "ROSE_THRESHOLD",
    "Evaluation",
    "MatchResult",
    "detection_scores",
    "evaluate",
    "pool_scores",
    "recall_by_snr",
    "score_image",
    "visibility_of",
    "dice_coefficient",
    "instance_scores",
    "iou_score",
    "match_instances",
    "matched_errors",
    "particle_visibility",
    "relative_size_errors",
    "summarize_errors",
    "visible_instance_scores",
]
