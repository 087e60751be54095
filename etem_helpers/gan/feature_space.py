"""Realism in a feature space the project trains itself (no downloaded weights).

The Frechet Inception Distance and the Kernel Inception Distance compare two image sets in the
feature space of an ImageNet network. Micrographs are not ImageNet photographs, and this project
downloads no weights, so the features here come from a small CNN trained *on real micrograph
crops only* (the calibration images of the real sample), with a self-supervised objective that
needs no labels (:func:`train_feature_encoder`). In that space:

* :func:`frechet_distance`: Frechet distance between Gaussians fitted to the two feature sets
  (the FID formula).
* :func:`kernel_distance`: unbiased squared MMD with the cubic polynomial kernel, averaged over
  random subsets (the KID formula); unbiased, so it can be slightly negative for alike sets.
* :func:`classifier_auc`: cross-validated ROC AUC of a logistic regression told to separate
  the two sets (0.5: indistinguishable, 1: fully separable).
* :func:`bootstrap_interval`: percentile bootstrap interval of any of these, resampling crops
  (or whole images, with ``groups_a`` / ``groups_b``).
* :func:`compare_in_feature_space`: all of them for several candidate sets against one reference,
  beside a *real floor* (other real images against the same reference): a synthetic set can only
  be called realistic relative to that floor.

Crops are taken by :func:`random_crops` from images robust-normalised with
:func:`etem_helpers.realism.robust_normalise`, so the gain and offset of an image do not matter.

Nothing runs at import.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from etem_helpers.io import replace_atomically
from etem_helpers.realism import robust_normalise

__all__ = [
    "random_crops",
    "build_feature_encoder",
    "train_feature_encoder",
    "save_feature_encoder",
    "load_feature_encoder",
    "encode",
    "frechet_distance",
    "kernel_distance",
    "bootstrap_interval",
    "classifier_auc",
    "compare_in_feature_space",
]

ENCODER_FORMAT = "etem_helpers.gan.feature_encoder"
ENCODER_FORMAT_VERSION = 1
_DEFAULT_CHANNELS = (16, 32, 64, 64)


# --------------------------------------------------------------------------------------------
# argument checks
# --------------------------------------------------------------------------------------------
def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def _confidence(value) -> float:
    if not 0.0 < float(value) < 1.0:
        raise ValueError(f"confidence must be in (0, 1), e.g. 0.95; got {value!r}.")
    return float(value)


def _features(feat, name: str, *, min_rows: int = 2) -> np.ndarray:
    """A checked (N, D) float64 feature array."""
    array = np.asarray(feat, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n_samples, n_features); "
                         f"got shape {array.shape}.")
    if array.shape[0] < min_rows:
        raise ValueError(f"{name} has {array.shape[0]} rows; pass at least {min_rows}.")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values.")
    return array


def _pair(feat_a, feat_b, *, min_rows: int = 2) -> tuple[np.ndarray, np.ndarray]:
    a = _features(feat_a, "feat_a", min_rows=min_rows)
    b = _features(feat_b, "feat_b", min_rows=min_rows)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feat_a has {a.shape[1]} features per row but feat_b has "
                         f"{b.shape[1]}; encode both sets with the same encoder.")
    return a, b


def _crops_array(crops, name: str = "crops") -> np.ndarray:
    array = np.asarray(crops, dtype=np.float32)
    if array.ndim != 3 or array.shape[0] < 1 or array.shape[1] != array.shape[2]:
        raise ValueError(f"{name} must be an array (n_crops, crop_px, crop_px) as returned by "
                         f"random_crops; got shape {array.shape}.")
    if array.shape[1] < 16:
        raise ValueError(f"{name} crops are {array.shape[1]} px; the encoder needs >= 16 px.")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values.")
    return array


# --------------------------------------------------------------------------------------------
# crops
# --------------------------------------------------------------------------------------------
def random_crops(images, *, crop_px: int = 64, n_per_image: int = 64, seed: int = 0,
                 return_image_index: bool = False):
    """Random square crops of robust-normalised images.

    Parameters
    ----------
    images : sequence of array_like, or one 2-D array
        Grey-level images (any units, sizes may differ, each side >= ``crop_px``).
    crop_px : int
        Side of each crop (px).
    n_per_image : int
        Crops drawn per image (uniform positions, overlaps allowed).
    seed : int
        Seed of the crop positions.
    return_image_index : bool
        Also return, for each crop, the index of the image it came from (for image-level
        bootstrap or grouped cross-validation).

    Returns
    -------
    numpy.ndarray
        float32 array (n_images * n_per_image, crop_px, crop_px) in [0, 1], images in order.
    numpy.ndarray, optional
        int64 image index of each crop (only with ``return_image_index=True``).
    """
    crop_px = _positive_int(crop_px, "crop_px")
    n_per_image = _positive_int(n_per_image, "n_per_image")
    if crop_px < 16:
        raise ValueError(f"crop_px must be >= 16 (the encoder halves it four times); got {crop_px}.")
    if isinstance(images, np.ndarray) and images.ndim == 2:
        images = [images]
    images = list(images)
    if not images:
        raise ValueError("images is empty; pass at least one 2-D image.")
    rng = np.random.default_rng(seed)
    crops, index = [], []
    for i, image in enumerate(images):
        norm = robust_normalise(image)
        height, width = norm.shape
        if height < crop_px or width < crop_px:
            raise ValueError(f"images[{i}] is {height} x {width} px, smaller than crop_px="
                             f"{crop_px}; pass a smaller crop_px or larger images.")
        ys = rng.integers(0, height - crop_px + 1, size=n_per_image)
        xs = rng.integers(0, width - crop_px + 1, size=n_per_image)
        for y, x in zip(ys, xs, strict=True):
            crops.append(norm[y:y + crop_px, x:x + crop_px])
        index.extend([i] * n_per_image)
    out = np.stack(crops).astype(np.float32)
    if return_image_index:
        return out, np.asarray(index, dtype=np.int64)
    return out


# --------------------------------------------------------------------------------------------
# encoder
# --------------------------------------------------------------------------------------------
def build_feature_encoder(*, channels: Sequence[int] = _DEFAULT_CHANNELS):
    """The small CNN encoder: conv blocks that halve the size, then a global average pool.

    Each block is conv 3x3 -> BatchNorm -> ReLU -> conv 3x3 stride 2 -> BatchNorm -> ReLU.
    BatchNorm, not GroupNorm or InstanceNorm: those normalise each crop on its own and so
    erase the amplitude of the fine-scale responses, i.e. how sharp or noisy the crop is. In
    eval mode (:func:`encode`) BatchNorm uses its running statistics, so a crop's features do
    not depend on the other crops of the batch.

    Parameters
    ----------
    channels : sequence of int
        Output channels of each block; the feature dimension D is ``channels[-1]``.

    Returns
    -------
    torch.nn.Module
        Maps (N, 1, H, W) to (N, D) features; ``H, W >= 2 ** len(channels)``.
    """
    import torch
    from torch import nn

    channels = [_positive_int(c, "channels[i]") for c in channels]
    if not channels:
        raise ValueError("channels is empty; pass e.g. (16, 32, 64, 64).")

    class FeatureEncoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layers, previous = [], 1
            for c in channels:
                layers += [nn.Conv2d(previous, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                           nn.Conv2d(c, c, 3, stride=2, padding=1), nn.BatchNorm2d(c),
                           nn.ReLU(inplace=True)]
                previous = c
            self.body = nn.Sequential(*layers)
            self.feature_dim = previous

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x).mean(dim=(2, 3))

    return FeatureEncoder()


def _projection_head(dim: int):
    from torch import nn

    return nn.Sequential(nn.Linear(dim, dim), nn.ReLU(inplace=True), nn.Linear(dim, 32))


def _views(batch: np.ndarray, rng: np.random.Generator, view_px: int) -> np.ndarray:
    """One random view per crop: a sub-crop of view_px, a random rot90 and a random flip.

    Only geometric changes: the grey levels, the noise and the blur are left as they are, so
    the encoder must keep them (they are what tells a simulated micrograph from a real one).
    """
    n, size, _ = batch.shape
    out = np.empty((n, view_px, view_px), dtype=np.float32)
    ys = rng.integers(0, size - view_px + 1, size=n)
    xs = rng.integers(0, size - view_px + 1, size=n)
    ks = rng.integers(0, 4, size=n)
    flips = rng.random(n) < 0.5
    for i in range(n):
        view = np.rot90(batch[i, ys[i]:ys[i] + view_px, xs[i]:xs[i] + view_px], ks[i])
        out[i] = view[:, ::-1] if flips[i] else view
    return out


def _degrade(views: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A degraded copy of each view: one of Gaussian blur, added noise or a gamma change.

    Blur sigma 0.7-2 px, noise standard deviation 0.02-0.1 (views are in [0, 1]), gamma
    0.5-0.8 or 1.25-2; the result is clipped to [0, 1].
    """
    from scipy import ndimage

    out = np.empty_like(views)
    kinds = rng.integers(0, 3, size=len(views))
    for i, (view, kind) in enumerate(zip(views, kinds, strict=True)):
        if kind == 0:
            out[i] = ndimage.gaussian_filter(view, rng.uniform(0.7, 2.0), mode="reflect")
        elif kind == 1:
            out[i] = view + rng.normal(0.0, rng.uniform(0.02, 0.1), view.shape)
        else:
            gamma = rng.uniform(1.25, 2.0)
            out[i] = np.clip(view, 0.0, 1.0) ** (gamma if rng.random() < 0.5 else 1.0 / gamma)
    return np.clip(out, 0.0, 1.0)


def _nt_xent(z1, z2, temperature: float, z_negative=None):
    """SimCLR's normalised temperature-scaled cross-entropy over a batch of view pairs.

    Each view must pick its partner among the other 2N - 1 views (and the extra negatives
    ``z_negative``, if given, which are never anchors).
    """
    import torch
    import torch.nn.functional as F

    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = z1.shape[0]
    candidates = z if z_negative is None else torch.cat([z, F.normalize(z_negative, dim=1)])
    logits = z @ candidates.T / temperature
    logits[:, : 2 * n].fill_diagonal_(float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return F.cross_entropy(logits, targets)


def _recompute_batchnorm(encoder, crops: np.ndarray, batch_size: int) -> None:
    """Set the BatchNorm running statistics to their average over all crops (whole crops).

    The running averages of a short training lag behind the weights; this pass makes the
    eval-mode features those of the final weights, on crops the size they will be encoded at.
    """
    import torch

    norms = [m for m in encoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for module in norms:
        module.reset_running_stats()
        module.momentum = None  # cumulative average over the batches below
    encoder.train()
    with torch.no_grad():
        for start in range(0, crops.shape[0], batch_size):
            encoder(torch.from_numpy(crops[start:start + batch_size]).unsqueeze(1))
    for module in norms:
        module.momentum = 0.1


def train_feature_encoder(crops, *, epochs: int = 20, seed: int = 0, batch_size: int = 128,
                          learning_rate: float = 2e-3, temperature: float = 0.2,
                          channels: Sequence[int] = _DEFAULT_CHANNELS, progress: bool = False):
    """Train the feature encoder on real crops with a contrastive (SimCLR-style) objective.

    Two random views of each crop (a sub-crop of 7/8 of its side, a random rot90 and a random
    flip) must be matched to each other among all the views of the batch (NT-Xent loss through
    a small projection head, which is dropped afterwards), and *not* to a degraded copy of the
    partner view (blurred, noisier or with another gamma: :func:`_degrade`), which is added to
    the batch as a hard negative. Why this objective:

    * It needs no labels, and trains on a handful of real micrographs.
    * Only *geometric* augmentations make positive pairs. SimCLR's usual blur, noise and colour
      jitter would teach the encoder to ignore exactly what differs between simulated and real
      micrographs (edge sharpness, noise grain, grey-level mapping).
    * Plain instance discrimination on real crops ignores those too: all real crops share the
      same noise and blur, so they do not help to tell crops apart (an encoder trained so did
      not see 5 % added noise at all: its distance stayed at the real floor). The degraded hard
      negatives make the features carry blur, noise level and grey-level mapping, as departures
      from the real crops, without any labels.
    * Rotations and flips have no preferred direction in a micrograph, and invariance to them
      keeps the features about texture and shape rather than orientation.

    A denoising autoencoder is the obvious alternative (not tried here): its pixel loss is
    dominated by low spatial frequencies, and it is trained to remove the noise grain that this
    measure must see.

    Parameters
    ----------
    crops : numpy.ndarray
        (N, crop_px, crop_px) real crops from :func:`random_crops` (N >= 2).
    epochs : int
        Passes over the crops.
    seed : int
        Seed of the weights, the batch order and the views: the same seed and crops give the
        same encoder (on the same machine and torch version, CPU).
    batch_size : int
        Crops per step (2 views and 1 degraded copy each); at least 2, capped at N.
    learning_rate, temperature : float
        Adam learning rate; NT-Xent temperature.
    channels : sequence of int
        Encoder channels (:func:`build_feature_encoder`).
    progress : bool
        Print the mean loss of each epoch.

    Returns
    -------
    torch.nn.Module
        The encoder in eval mode on the CPU, with an ``info`` dict attribute (training settings
        and the loss of each epoch) for :func:`save_feature_encoder`.
    """
    import torch

    crops = _crops_array(crops)
    epochs = _positive_int(epochs, "epochs")
    batch_size = _positive_int(batch_size, "batch_size")
    if batch_size < 2 or crops.shape[0] < 2:
        raise ValueError(f"batch_size and the number of crops must be >= 2 (contrastive pairs); "
                         f"got batch_size={batch_size}, {crops.shape[0]} crops.")
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate!r}.")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}.")
    batch_size = min(batch_size, crops.shape[0])
    view_px = max(16, (crops.shape[1] * 7) // 8)
    rng = np.random.default_rng(seed)
    losses = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = build_feature_encoder(channels=channels)
        head = _projection_head(encoder.feature_dim)
        optimiser = torch.optim.Adam([*encoder.parameters(), *head.parameters()],
                                     lr=learning_rate)
        encoder.train()
        head.train()
        for epoch in range(epochs):
            order = rng.permutation(crops.shape[0])
            total, steps = 0.0, 0
            for start in range(0, len(order) - batch_size + 1, batch_size):
                batch = crops[order[start:start + batch_size]]
                v1 = torch.from_numpy(_views(batch, rng, view_px)).unsqueeze(1)
                v2 = _views(batch, rng, view_px)
                degraded = torch.from_numpy(_degrade(v2, rng)).unsqueeze(1)
                v2 = torch.from_numpy(v2).unsqueeze(1)
                z = head(encoder(torch.cat([v1, v2, degraded])))
                n = v1.shape[0]
                loss = _nt_xent(z[:n], z[n:2 * n], temperature, z[2 * n:])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += float(loss.detach())
                steps += 1
            losses.append(total / max(steps, 1))
            if progress:
                print(f"feature encoder epoch {epoch + 1}/{epochs}: loss {losses[-1]:.4f}",
                      flush=True)
        _recompute_batchnorm(encoder, crops, batch_size)
    encoder.eval()
    encoder.info = {
        "objective": "simclr_geometric_views_degraded_negatives",
        "channels": [int(c) for c in channels],
        "crop_px": int(crops.shape[1]),
        "view_px": int(view_px),
        "n_train_crops": int(crops.shape[0]),
        "epochs": epochs,
        "seed": int(seed),
        "batch_size": batch_size,
        "learning_rate": float(learning_rate),
        "temperature": float(temperature),
        "loss_per_epoch": [float(x) for x in losses],
    }
    return encoder


def save_feature_encoder(path, encoder, info: Mapping | None = None) -> Path:
    """Save an encoder as a state_dict plus a JSON-able dict (``weights_only=True`` loadable).

    Parameters
    ----------
    path : str or pathlib.Path
        Output file (``.pt``); parent directories are created; replaced atomically.
    encoder : torch.nn.Module
        An encoder from :func:`train_feature_encoder` or :func:`build_feature_encoder`.
    info : mapping, optional
        JSON-serialisable description (training data, settings). Default: ``encoder.info``.
        Must contain ``channels`` if the encoder was not built with the default channels.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    import torch

    info = dict(getattr(encoder, "info", {}) if info is None else info)
    info.setdefault("channels", [int(m.out_channels) for m in encoder.modules()
                                 if isinstance(m, torch.nn.Conv2d)][1::2])
    try:
        info_json = json.dumps(info)
    except TypeError as error:
        raise ValueError(f"info must be JSON-serialisable (str/int/float/bool/None, lists, "
                         f"dicts): {error}") from error
    state = {key: value.detach().cpu().clone() for key, value in encoder.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replace_atomically(path) as tmp:
        torch.save({"format": ENCODER_FORMAT, "format_version": ENCODER_FORMAT_VERSION,
                    "info_json": info_json, "state_dict": state}, tmp)
    return path


def load_feature_encoder(path):
    """Load an encoder written by :func:`save_feature_encoder`.

    Parameters
    ----------
    path : str or pathlib.Path
        The ``.pt`` file.

    Returns
    -------
    torch.nn.Module
        The encoder in eval mode on the CPU, with its ``info`` dict as an attribute.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path {path} does not exist; train an encoder with "
                                "train_feature_encoder and save it with save_feature_encoder.")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != ENCODER_FORMAT:
        raise ValueError(f"path {path} is not a feature encoder written by "
                         "save_feature_encoder (no format tag).")
    if checkpoint.get("format_version") != ENCODER_FORMAT_VERSION:
        raise ValueError(f"path {path} has format_version {checkpoint.get('format_version')}; "
                         f"this version reads {ENCODER_FORMAT_VERSION}. Retrain the encoder.")
    info = json.loads(checkpoint["info_json"])
    encoder = build_feature_encoder(channels=info.get("channels", _DEFAULT_CHANNELS))
    encoder.load_state_dict(checkpoint["state_dict"])
    encoder.eval()
    encoder.info = info
    return encoder


def encode(encoder, crops, batch_size: int = 256) -> np.ndarray:
    """Features of crops.

    Parameters
    ----------
    encoder : torch.nn.Module
        From :func:`train_feature_encoder` or :func:`load_feature_encoder`.
    crops : numpy.ndarray
        (N, crop_px, crop_px) crops from :func:`random_crops`.
    batch_size : int
        Crops per forward pass.

    Returns
    -------
    numpy.ndarray
        (N, D) float64 features.
    """
    import torch

    crops = _crops_array(crops)
    batch_size = _positive_int(batch_size, "batch_size")
    device = next(encoder.parameters()).device
    was_training = encoder.training
    encoder.eval()
    out = []
    with torch.no_grad():
        for start in range(0, crops.shape[0], batch_size):
            x = torch.from_numpy(crops[start:start + batch_size]).unsqueeze(1).to(device)
            out.append(encoder(x).cpu().numpy().astype(np.float64))
    encoder.train(was_training)
    return np.concatenate(out)


# --------------------------------------------------------------------------------------------
# distances
# --------------------------------------------------------------------------------------------
def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    from scipy import linalg

    values, vectors = linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(feat_a, feat_b) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (the FID formula).

    ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))``. The trace of the matrix square root
    is computed as that of ``(S_a^(1/2) S_b S_a^(1/2))^(1/2)``, a symmetric positive
    semi-definite matrix with the same eigenvalues, whose small negative eigenvalues (round-off,
    or fewer rows than features) are clipped to zero; this is what ``scipy.linalg.sqrtm`` of the
    non-symmetric product followed by taking the real part approximates, without its complex
    round-off.

    Parameters
    ----------
    feat_a, feat_b : array_like
        (N_a, D) and (N_b, D) features (N >= 2 each).

    Returns
    -------
    float
        Distance in squared feature units (0 for identical sets, >= 0).
    """
    from scipy import linalg

    a, b = _pair(feat_a, feat_b)
    mean_term = float(np.sum((a.mean(0) - b.mean(0)) ** 2))
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))
    root_a = _psd_sqrt(cov_a)
    middle = root_a @ cov_b @ root_a
    eigen = linalg.eigvalsh((middle + middle.T) / 2.0)
    trace_root = float(np.sum(np.sqrt(np.clip(eigen, 0.0, None))))
    value = mean_term + float(np.trace(cov_a) + np.trace(cov_b)) - 2.0 * trace_root
    return max(value, 0.0)


def _polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def kernel_distance(feat_a, feat_b, *, n_subsets: int = 50, subset_size: int = 500,
                    seed: int = 0) -> float:
    """Kernel distance (the KID formula): unbiased squared MMD, cubic polynomial kernel.

    ``k(x, y) = (x . y / D + 1)^3``; the unbiased MMD^2 is computed on ``n_subsets`` random
    subsets of ``min(subset_size, N_a, N_b)`` rows of each set (drawn without replacement) and
    averaged.

    Parameters
    ----------
    feat_a, feat_b : array_like
        (N_a, D) and (N_b, D) features (N >= 2 each).
    n_subsets, subset_size : int
        Number and size of the random subsets.
    seed : int
        Seed of the subsets.

    Returns
    -------
    float
        Squared MMD in kernel units; about 0 for the same distribution (may be slightly
        negative: the estimate is unbiased).
    """
    a, b = _pair(feat_a, feat_b)
    n_subsets = _positive_int(n_subsets, "n_subsets")
    subset_size = _positive_int(subset_size, "subset_size")
    if subset_size < 2:
        raise ValueError(f"subset_size must be >= 2, got {subset_size}.")
    m = min(subset_size, a.shape[0], b.shape[0])
    rng = np.random.default_rng(seed)
    values = np.empty(n_subsets)
    for s in range(n_subsets):
        x = a[rng.choice(a.shape[0], m, replace=False)]
        y = b[rng.choice(b.shape[0], m, replace=False)]
        kxx, kyy, kxy = _polynomial_kernel(x, x), _polynomial_kernel(y, y), _polynomial_kernel(x, y)
        within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        values[s] = within - 2.0 * kxy.mean()
    return float(values.mean())


def _resample(n: int, groups, rng: np.random.Generator) -> np.ndarray:
    """Row indices of one bootstrap replicate: rows, or whole groups, with replacement."""
    if groups is None:
        return rng.integers(0, n, size=n)
    unique, inverse = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(len(unique))]
    drawn = rng.integers(0, len(unique), size=len(unique))
    return np.concatenate([members[g] for g in drawn])


def _groups(groups, n: int, name: str):
    if groups is None:
        return None
    groups = np.asarray(groups)
    if groups.shape != (n,):
        raise ValueError(f"{name} must have one entry per row ({n}); got shape {groups.shape}.")
    return groups


def bootstrap_interval(statistic: Callable, feat_a, feat_b, *, n_boot: int = 200,
                       confidence: float = 0.95, seed: int = 0, groups_a=None,
                       groups_b=None) -> tuple[float, float, float]:
    """A statistic of two feature sets with a percentile bootstrap interval.

    Each replicate resamples the rows of each set independently, with replacement, and
    recomputes the statistic. Crops of one image are not independent; pass ``groups_a`` /
    ``groups_b`` (the image index of each row, from ``random_crops(...,
    return_image_index=True)``) to resample whole images instead (wider, more honest intervals,
    but only meaningful with about 10 or more images per set). Resampled sets repeat rows,
    which shrinks their spread: for the Frechet distance the replicates are biased upwards, and
    for nearly identical sets the interval can lie above the value itself.

    Parameters
    ----------
    statistic : callable
        ``statistic(feat_a, feat_b) -> float``, e.g. :func:`frechet_distance`.
    feat_a, feat_b : array_like
        (N_a, D) and (N_b, D) features.
    n_boot : int
        Bootstrap replicates.
    confidence : float
        Two-sided confidence level in (0, 1).
    seed : int
        Seed of the resampling.
    groups_a, groups_b : array_like, optional
        Resampling units of the rows of each set (None: rows).

    Returns
    -------
    tuple of float
        ``(value, low, high)``: the statistic on the full sets and the interval.
    """
    if not callable(statistic):
        raise ValueError(f"statistic must be a callable (feat_a, feat_b) -> float; "
                         f"got {type(statistic).__name__}.")
    a, b = _pair(feat_a, feat_b)
    n_boot = _positive_int(n_boot, "n_boot")
    confidence = _confidence(confidence)
    groups_a = _groups(groups_a, a.shape[0], "groups_a")
    groups_b = _groups(groups_b, b.shape[0], "groups_b")
    value = float(statistic(a, b))
    rng = np.random.default_rng(seed)
    replicates = np.array([
        float(statistic(a[_resample(a.shape[0], groups_a, rng)],
                        b[_resample(b.shape[0], groups_b, rng)]))
        for _ in range(n_boot)
    ])
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.nanpercentile(replicates, [tail, 100.0 - tail])
    return value, float(low), float(high)


# --------------------------------------------------------------------------------------------
# classifier
# --------------------------------------------------------------------------------------------
def classifier_auc(feat_a, feat_b, *, seed: int = 0, n_folds: int = 5, n_boot: int = 200,
                   confidence: float = 0.95, groups_a=None,
                   groups_b=None) -> tuple[float, float, float]:
    """Cross-validated ROC AUC of a real-vs-synthetic logistic regression.

    A ``StandardScaler`` + ``LogisticRegression`` pipeline is fitted on ``n_folds - 1`` folds
    (stratified by set) and scores the held-out fold; the AUC of the pooled out-of-fold scores
    (set b = positive class) is returned with a percentile bootstrap interval over those
    scores. With ``groups_a`` / ``groups_b`` all crops of one image stay in one fold (so the
    classifier cannot recognise an image it saw in training) and the bootstrap resamples images.

    Parameters
    ----------
    feat_a, feat_b : array_like
        (N_a, D) and (N_b, D) features (each N >= n_folds).
    seed : int
        Seed of the folds and of the bootstrap.
    n_folds : int
        Cross-validation folds (>= 2).
    n_boot : int
        Bootstrap replicates of the AUC.
    confidence : float
        Two-sided confidence level in (0, 1).
    groups_a, groups_b : array_like, optional
        Image (group) of each row; give both or neither.

    Returns
    -------
    tuple of float
        ``(auc, low, high)``: 0.5 = indistinguishable, 1 = fully separable (values below 0.5
        are chance fluctuations).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    n_folds = _positive_int(n_folds, "n_folds")
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2, got {n_folds}.")
    a, b = _pair(feat_a, feat_b, min_rows=n_folds)
    n_boot = _positive_int(n_boot, "n_boot")
    confidence = _confidence(confidence)
    if (groups_a is None) != (groups_b is None):
        raise ValueError("groups_a and groups_b: pass both (image of each row) or neither.")
    x = np.concatenate([a, b])
    y = np.concatenate([np.zeros(a.shape[0], dtype=int), np.ones(b.shape[0], dtype=int)])
    if groups_a is not None:
        ga = _groups(groups_a, a.shape[0], "groups_a")
        gb = _groups(groups_b, b.shape[0], "groups_b")
        groups = np.concatenate([np.char.add("a", ga.astype(str)),
                                 np.char.add("b", gb.astype(str))])
        n_groups = min(len(np.unique(ga)), len(np.unique(gb)))
        if n_groups < n_folds:
            raise ValueError(f"n_folds={n_folds} but a set has only {n_groups} groups; pass "
                             "fewer folds or no groups.")
        splits = StratifiedGroupKFold(n_splits=n_folds, shuffle=True,
                                      random_state=seed).split(x, y, groups)
    else:
        groups = None
        splits = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed).split(x, y)
    scores = np.empty(len(y))
    for train, test in splits:
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        model.fit(x[train], y[train])
        scores[test] = model.decision_function(x[test])
    auc = float(roc_auc_score(y, scores))
    rng = np.random.default_rng(seed)
    replicates = []
    for _ in range(n_boot):
        rows = _resample(len(y), groups, rng)
        if np.unique(y[rows]).size == 2:
            replicates.append(roc_auc_score(y[rows], scores[rows]))
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(replicates, [tail, 100.0 - tail])
    return auc, float(low), float(high)


# --------------------------------------------------------------------------------------------
# all together
# --------------------------------------------------------------------------------------------
def compare_in_feature_space(encoder, reference_crops, candidate_sets: Mapping, *, floor_crops,
                             seed: int = 0, n_boot: int = 200, confidence: float = 0.95,
                             kid_subsets: int = 20, kid_subset_size: int = 500,
                             kid_boot: int | None = 50, n_folds: int = 5,
                             groups: Mapping | None = None):
    """Frechet distance, kernel distance and classifier AUC of crop sets against a reference.

    Parameters
    ----------
    encoder : torch.nn.Module
        The trained feature encoder.
    reference_crops : numpy.ndarray
        (N, crop_px, crop_px) reference crops (held-out real images).
    candidate_sets : mapping of str to numpy.ndarray
        Name -> crops of each set to judge (simulated, generated, ...).
    floor_crops : numpy.ndarray
        Crops of *other* real images: the row ``"real floor"``, what an ideal generator could
        reach at best.
    seed : int
        Seed of the KID subsets, the classifier folds and the bootstraps.
    n_boot : int
        Bootstrap replicates of FD and AUC.
    confidence : float
        Two-sided confidence level of the intervals.
    kid_subsets, kid_subset_size : int
        KID subsets (:func:`kernel_distance`).
    kid_boot : int or None
        Bootstrap replicates of KID (its cost is ``kid_boot * kid_subsets`` kernel evaluations;
        None or 0: no KID interval, NaN bounds).
    n_folds : int
        Classifier cross-validation folds (with ``groups``: at most the number of images of
        the smaller set).
    groups : mapping of str to array_like, optional
        Image index of each crop, keyed ``"reference"``, ``"real floor"`` and the candidate
        names, for image-level bootstraps and grouped folds (all or none).

    Returns
    -------
    pandas.DataFrame
        One row per set (``"real floor"`` first): ``set``, ``n_crops``, ``fd``, ``fd_low``,
        ``fd_high``, ``kid``, ``kid_low``, ``kid_high``, ``auc``, ``auc_low``, ``auc_high``.
    """
    import pandas as pd

    if not isinstance(candidate_sets, Mapping):
        raise ValueError("candidate_sets must be a mapping {name: crops}.")
    if "real floor" in candidate_sets:
        raise ValueError("candidate_sets must not use the name 'real floor' (reserved).")
    sets = {"real floor": floor_crops, **candidate_sets}
    if groups is not None:
        missing = [k for k in ("reference", *sets) if k not in groups]
        if missing:
            raise ValueError(f"groups lacks {missing}; give the image index of every set.")
    reference = encode(encoder, _crops_array(reference_crops, "reference_crops"))
    g_ref = None if groups is None else groups["reference"]

    def kid(x, y):
        return kernel_distance(x, y, n_subsets=kid_subsets, subset_size=kid_subset_size,
                               seed=seed)

    rows = []
    for name, crops in sets.items():
        features = encode(encoder, _crops_array(crops, f"candidate_sets[{name!r}]"))
        g_set = None if groups is None else groups[name]
        fd = bootstrap_interval(frechet_distance, reference, features, n_boot=n_boot,
                                confidence=confidence, seed=seed, groups_a=g_ref,
                                groups_b=g_set)
        if kid_boot:
            kd = bootstrap_interval(kid, reference, features, n_boot=kid_boot,
                                    confidence=confidence, seed=seed, groups_a=g_ref,
                                    groups_b=g_set)
        else:
            kd = (kid(reference, features), math.nan, math.nan)
        folds = n_folds
        if groups is not None:  # at most one fold per image of the smaller set
            folds = min(n_folds, len(np.unique(g_ref)), len(np.unique(g_set)))
            if folds < 2:
                raise ValueError(f"groups: set {name!r} or the reference has a single image; "
                                 "image-level folds need >= 2 images per set (or no groups).")
        auc = classifier_auc(reference, features, seed=seed, n_folds=folds, n_boot=n_boot,
                             confidence=confidence, groups_a=g_ref, groups_b=g_set)
        rows.append({"set": name, "n_crops": int(features.shape[0]),
                     "fd": fd[0], "fd_low": fd[1], "fd_high": fd[2],
                     "kid": kd[0], "kid_low": kd[1], "kid_high": kd[2],
                     "auc": auc[0], "auc_low": auc[1], "auc_high": auc[2]})
    return pd.DataFrame(rows)
