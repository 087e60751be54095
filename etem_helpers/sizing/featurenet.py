"""FeatureNet: a small CNN that regresses size and shape from a particle's crop.

After the reference paper's second network (diameter, aspect ratio, roundness from each
detected particle's crop; loss: the sum of the three MSEs on standardised targets), with two
changes: the crop is scaled to the particle and its scale is a scalar input (so absolute size
is kept), and a heteroscedastic head predicts a log-variance per target (trained with a
Gaussian negative log-likelihood on the *detached* mean, so the mean is trained by the
paper's MSE alone) for the per-particle uncertainty.

Checkpoints are plain dicts of tensors and numbers, loaded with ``weights_only=True``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .data import CROP_PX, N_SCALARS, TARGETS

__all__ = [
    "PRESETS",
    "FeatureNetConfig",
    "build_featurenet",
    "save_featurenet",
    "load_featurenet",
    "default_featurenet_path",
    "predict_featurenet",
]


@dataclass(frozen=True)
class FeatureNetConfig:
    """Architecture of a FeatureNet.

    Attributes
    ----------
    channels : tuple of int
        Output channels of the convolution blocks (each: conv 3x3, BN, ReLU, conv 3x3, BN,
        ReLU, 2x2 max-pool).
    hidden : int
        Width of the dense layer after global pooling and the scalar inputs.
    dropout : float
        Dropout before the output layer.
    """

    channels: tuple = (16, 32, 64)
    hidden: int = 64
    dropout: float = 0.1

    def to_dict(self) -> dict:
        """The configuration as a JSON-friendly dict."""
        out = asdict(self)
        out["channels"] = list(self.channels)
        return out


#: ``paper``: wider, four blocks (as the paper's VGG-like regressor, scaled to 48 px crops);
#: ``light``: three narrow blocks, ~0.1 M parameters, trains in minutes on one CPU core.
PRESETS = {
    "paper": FeatureNetConfig(channels=(32, 64, 128, 256), hidden=256, dropout=0.3),
    "light": FeatureNetConfig(channels=(16, 32, 64), hidden=64, dropout=0.1),
}


def build_featurenet(config: FeatureNetConfig | str = "light"):
    """Build an untrained FeatureNet.

    Parameters
    ----------
    config : FeatureNetConfig or {"paper", "light"}

    Returns
    -------
    torch.nn.Module
        ``forward(crops (B, 3, CROP_PX, CROP_PX), scalars (B, N_SCALARS))`` returns
        ``(mean (B, 3), log_var (B, 3))`` on standardised targets (diameter / crop side,
        log aspect ratio, roundness).
    """
    import torch
    from torch import nn

    if isinstance(config, str):
        if config not in PRESETS:
            raise ValueError(f"unknown FeatureNet preset {config!r}; use one of {sorted(PRESETS)}.")
        config = PRESETS[config]

    def block(c_in, c_out):
        return nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
            nn.MaxPool2d(2),
        )

    class FeatureNet(nn.Module):
        def __init__(self):
            super().__init__()
            chans = (3, *config.channels)
            self.features = nn.Sequential(*(block(a, b) for a, b in zip(chans[:-1], chans[1:],
                                                                         strict=True)))
            self.head = nn.Sequential(
                nn.Linear(config.channels[-1] + N_SCALARS, config.hidden), nn.ReLU(),
                nn.Dropout(config.dropout), nn.Linear(config.hidden, 2 * len(TARGETS)),
            )

        def forward(self, crops, scalars):
            pooled = self.features(crops).mean(dim=(2, 3))
            out = self.head(torch.cat([pooled, scalars], dim=1))
            mean, log_var = out.chunk(2, dim=1)
            return mean, log_var.clamp(-10.0, 5.0)

    return FeatureNet()


def save_featurenet(path, network, *, config: FeatureNetConfig, standardisation: dict,
                    calibration: dict, meta: dict) -> Path:
    """Write a FeatureNet checkpoint loadable with ``torch.load(weights_only=True)``.

    Parameters
    ----------
    path : path-like
        Output ``.pt`` file.
    network : torch.nn.Module
        Trained network (weights stored as float16 to keep the file small).
    config : FeatureNetConfig
    standardisation : dict
        ``target_mean``, ``target_std`` (lists of 3 floats), ``scalar_mean``, ``scalar_std``.
    calibration : dict
        ``std_scale``: list of 3 factors multiplying the predicted standard deviations.
    meta : dict
        JSON-friendly training facts (config, seed, data sizes, metrics).
    """
    import torch

    state = {k: (v.half() if v.is_floating_point() else v)
             for k, v in network.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": "featurenet-1", "state_dict": state, "config": config.to_dict(),
                "standardisation": standardisation, "calibration": calibration,
                "meta": meta, "crop_px": CROP_PX, "targets": list(TARGETS)}, path)
    return path


def default_featurenet_path() -> Path:
    """Path of the FeatureNet shipped with the package."""
    return Path(__file__).resolve().parents[1] / "models" / "featurenet_default.pt"


def load_featurenet(path: str | os.PathLike | None = None):
    """Load a FeatureNet checkpoint (no code is executed: ``weights_only=True``).

    Parameters
    ----------
    path : path-like, optional
        Checkpoint written by :func:`save_featurenet`; None loads the shipped default.

    Returns
    -------
    (torch.nn.Module, dict)
        The network in eval mode (float32, CPU) and the checkpoint without its weights.
    """
    import torch

    path = Path(path) if path is not None else default_featurenet_path()
    if not path.is_file():
        raise FileNotFoundError(
            f"FeatureNet checkpoint {path} not found; train one with "
            "`python -m etem_helpers.sizing.train --config "
            "etem_helpers/models/featurenet_default_config.json --out <dir>`."
        )
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if checkpoint.get("format") != "featurenet-1":
        raise ValueError(f"{path} is not a FeatureNet checkpoint (format "
                         f"{checkpoint.get('format')!r}).")
    cfg = checkpoint["config"]
    config = FeatureNetConfig(channels=tuple(cfg["channels"]), hidden=cfg["hidden"],
                              dropout=cfg["dropout"])
    network = build_featurenet(config)
    network.load_state_dict({k: v.float() if v.is_floating_point() else v
                             for k, v in checkpoint["state_dict"].items()})
    network.eval()
    meta = {k: v for k, v in checkpoint.items() if k != "state_dict"}
    return network, meta


def predict_featurenet(network, meta: dict, crops, scalars, side_nm, *, batch_size=256):
    """Predict size and shape with calibrated standard deviations.

    Parameters
    ----------
    network, meta
        From :func:`load_featurenet` (or a network in training and its standardisation).
    crops, scalars, side_nm
        From :func:`etem_helpers.sizing.data.instance_inputs`.

    Returns
    -------
    mean, std : (N, 3) ndarrays
        ``diameter_nm``, ``aspect_ratio``, ``roundness`` and their 1-sigma uncertainties
        (predicted by the heteroscedastic head, times the validation calibration factors).
    """
    import torch

    st = meta["standardisation"]
    t_mean, t_std = np.asarray(st["target_mean"]), np.asarray(st["target_std"])
    s_mean, s_std = np.asarray(st["scalar_mean"]), np.asarray(st["scalar_std"])
    scale = np.asarray(meta.get("calibration", {}).get("std_scale", [1.0, 1.0, 1.0]))
    n = len(side_nm)
    mean = np.zeros((n, 3))
    std = np.zeros((n, 3))
    network.eval()
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            sl = slice(start, start + batch_size)
            c = torch.from_numpy(np.ascontiguousarray(crops[sl], dtype=np.float32))
            s = torch.from_numpy(((scalars[sl] - s_mean) / s_std).astype(np.float32))
            m, lv = network(c, s)
            mean[sl] = m.double().numpy() * t_std + t_mean
            std[sl] = np.exp(0.5 * lv.double().numpy()) * t_std * scale
    side_nm = np.asarray(side_nm, dtype=np.float64)
    mean[:, 0] *= side_nm
    std[:, 0] *= side_nm
    # the network regresses log(aspect ratio): back-transform, std by the delta method
    mean[:, 1] = np.exp(np.maximum(mean[:, 1], 0.0))
    std[:, 1] *= mean[:, 1]
    mean[:, 2] = np.clip(mean[:, 2], 1e-6, 1.0)
    return mean, std
