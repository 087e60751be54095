"""Train a FeatureNet on simulated crops with exact truth; one command reproduces a model.

Usage::

    python -m etem_helpers.sizing.train \\
        --config etem_helpers/models/featurenet_default_config.json --out outputs/featurenet

writes ``featurenet.pt`` (loadable with ``weights_only=True``), ``history.json`` and
``report.json`` into ``--out``; the example sets are cached there as ``examples_*.npz``.
Deterministic given the config (CPU, one thread).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from .data import simulate_sizing_image, training_examples
from .featurenet import PRESETS, build_featurenet, predict_featurenet, save_featurenet

__all__ = ["TrainConfig", "build_examples", "network_targets", "target_standardisation",
           "augment_crops", "batch_tensors", "train_epoch", "validation_scores", "train_featurenet",
           "calibrate_std_scale", "main"]


@dataclass
class TrainConfig:
    """Settings of one FeatureNet training run.

    Attributes
    ----------
    preset : {"light", "paper"}
        Architecture (:data:`etem_helpers.sizing.featurenet.PRESETS`).
    train_seed, val_seed : int
        Seeds of the simulated training and validation micrographs (the benchmark's test set
        uses another seed).
    n_train_images, n_val_images : int
        Number of simulated micrographs of each set.
    image_size_px : int
        Side of the simulated micrographs.
    regime : str
        ``"mixed"``, ``"hrtem"`` or ``"lowmag"``.
    epochs, batch_size : int
    lr, weight_decay : float
        AdamW settings (cosine schedule).
    seed : int
        Seed of the weights and the batch order.
    threads : int
        ``torch.set_num_threads``.
    """

    preset: str = "light"
    train_seed: int = 14001
    val_seed: int = 14002
    n_train_images: int = 300
    n_val_images: int = 80
    image_size_px: int = 512
    regime: str = "mixed"
    epochs: int = 25
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    threads: int = 1
    sources: list = field(default_factory=lambda: ["pred", "true"])

    @classmethod
    def from_json(cls, path) -> TrainConfig:
        """Read a config file (unknown keys are refused)."""
        data = json.loads(Path(path).read_text())
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{path}: unknown keys {sorted(unknown)}; allowed: {sorted(known)}.")
        return cls(**data)


def build_examples(seed: int, n_images: int, *, cache: Path | None = None,
                   image_size_px: int = 512, regime: str = "mixed", sources=("pred", "true"),
                   progress: bool = False) -> dict:
    """FeatureNet examples of ``n_images`` simulated micrographs (cached as npz).

    Returns
    -------
    dict
        As :func:`etem_helpers.sizing.data.training_examples`, concatenated, plus ``image``
        (index of the micrograph).
    """
    if cache is not None and Path(cache).is_file():
        with np.load(cache) as data:
            return dict(data)
    parts = []
    for index in range(n_images):
        sample = simulate_sizing_image(index, seed=seed, regime=regime,
                                       image_size_px=image_size_px)
        ex = training_examples(sample, sources=tuple(sources))
        if ex:
            ex["image"] = np.full(len(ex["targets"]), index, dtype=np.int32)
            parts.append(ex)
        if progress and index % 20 == 0:
            print(f"  simulated {index + 1}/{n_images}", flush=True)
    out = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    if cache is not None:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(cache, **out)
    return out


def network_targets(targets) -> np.ndarray:
    """The targets the network regresses: diameter / side, log(aspect ratio), roundness.

    The aspect ratio is regressed as its logarithm: it runs from 1 to above 30 (nanotubes),
    and the squared error of the raw ratio would be ruled by a few long objects.
    """
    out = np.asarray(targets, dtype=np.float64).copy()
    out[:, 1] = np.log(np.maximum(out[:, 1], 1.0))
    return out


def target_standardisation(train: dict) -> dict:
    """Means and standard deviations of the network targets and scalar inputs of a set."""
    t = network_targets(train["targets"])
    s = train["scalars"].astype(np.float64)
    return {"target_mean": t.mean(0).tolist(), "target_std": (t.std(0) + 1e-6).tolist(),
            "scalar_mean": s.mean(0).tolist(), "scalar_std": (s.std(0) + 1e-6).tolist()}


def augment_crops(crops, rng):
    """Random flips and 90-degree rotations (size and shape do not change)."""
    k = int(rng.integers(4))
    crops = np.rot90(crops, k, axes=(2, 3))
    if rng.random() < 0.5:
        crops = crops[:, :, :, ::-1]
    return np.ascontiguousarray(crops)


def batch_tensors(examples, st, idx):
    """Standardised (scalars, targets) tensors of the examples ``idx``."""
    import torch

    scal = (examples["scalars"][idx] - np.asarray(st["scalar_mean"])) / np.asarray(
        st["scalar_std"])
    targ = (network_targets(examples["targets"][idx]) - np.asarray(st["target_mean"])) / np.asarray(
        st["target_std"])
    return torch.from_numpy(scal.astype(np.float32)), torch.from_numpy(targ.astype(np.float32))


def train_epoch(network, optimiser, examples, st, rng, batch_size) -> float:
    """One training epoch: MSE on the mean (paper) + Gaussian NLL on the detached mean."""
    import torch

    network.train()
    order = rng.permutation(len(examples["targets"]))
    total = 0.0
    for start in range(0, order.size, batch_size):
        idx = np.sort(order[start:start + batch_size])
        crops = torch.from_numpy(augment_crops(examples["crops"][idx], rng))
        scal, targ = batch_tensors(examples, st, idx)
        mean, log_var = network(crops, scal)
        mse = ((mean - targ) ** 2).mean(0).sum()
        nll = (0.5 * (log_var + (targ - mean.detach()) ** 2 * torch.exp(-log_var))).mean(0).sum()
        loss = mse + nll
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        total += float(mse.detach()) * idx.size
    return total / order.size


def _standardised_error(mean, truth, side_nm, st):
    """Errors in standardised network-target units (crop-unit diameter, log aspect ratio)."""
    err = mean - truth
    err[:, 0] = err[:, 0] / side_nm
    err[:, 1] = np.log(mean[:, 1]) - np.log(np.maximum(truth[:, 1], 1.0))
    return err / np.asarray(st["target_std"])


def validation_scores(network, st, val) -> dict:
    """Diameter MRE, aspect-ratio and roundness RMSE, standardised loss (and raw errors)."""
    meta = {"standardisation": st}
    mean, std = predict_featurenet(network, meta, val["crops"], val["scalars"], val["side_nm"])
    truth = np.column_stack([val["true_diameter_nm"], val["targets"][:, 1:]])
    err = mean - truth
    return {
        "diameter_mre": float(np.mean(np.abs(err[:, 0]) / truth[:, 0])),
        "aspect_ratio_rmse": float(np.sqrt(np.mean(err[:, 1] ** 2))),
        "roundness_rmse": float(np.sqrt(np.mean(err[:, 2] ** 2))),
        "mse_std": float(np.sum(np.mean(_standardised_error(mean, truth, val["side_nm"], st) ** 2,
                                        axis=0))),
        "_err": err, "_std": std,
    }


def calibrate_std_scale(errors, std, *, coverage=0.95) -> list:
    """Factors ``k`` so that ``|error| <= 1.96 k std`` holds for ``coverage`` of the rows.

    Parameters
    ----------
    errors, std : (N, Q) ndarrays
        Prediction errors and predicted standard deviations on validation data.

    Returns
    -------
    list of float
        One factor per column: the ``coverage`` quantile of ``|error| / std`` over 1.96.
    """
    ratio = np.abs(errors) / np.maximum(std, 1e-12)
    return (np.quantile(ratio, coverage, axis=0) / 1.959964).tolist()


def train_featurenet(config: TrainConfig, out_dir, *, progress=True, on_epoch=None):
    """Train, select the best epoch on validation, calibrate, save. Returns the report dict."""
    import torch

    torch.set_num_threads(int(config.threads))
    out_dir = Path(out_dir)
    t0 = time.time()
    common = {"image_size_px": config.image_size_px, "regime": config.regime,
              "sources": config.sources, "progress": progress}
    train = build_examples(config.train_seed, config.n_train_images,
                           cache=out_dir / "examples_train.npz", **common)
    val = build_examples(config.val_seed, config.n_val_images,
                         cache=out_dir / "examples_val.npz", **{**common, "sources": ["pred"]})
    t_data = time.time() - t0
    st = target_standardisation(train)
    # seeded after the data: making the examples runs the U-Net, whose construction draws
    # from torch's global generator, so a cached and a fresh run would otherwise differ
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    network = build_featurenet(PRESETS[config.preset])
    optimiser = torch.optim.AdamW(network.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=config.epochs)
    history, best, best_state = [], np.inf, None
    for epoch in range(config.epochs):
        train_mse = train_epoch(network, optimiser, train, st, rng, config.batch_size)
        scheduler.step()
        scores = validation_scores(network, st, val)
        row = {"epoch": epoch + 1, "train_mse": train_mse,
               **{k: v for k, v in scores.items() if not k.startswith("_")}}
        history.append(row)
        if on_epoch is not None:
            on_epoch(row)
        if progress:
            print(json.dumps({k: round(v, 4) for k, v in row.items()}), flush=True)
        if row["mse_std"] < best:
            best = row["mse_std"]
            best_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
    network.load_state_dict(best_state)
    scores = validation_scores(network, st, val)
    calibration = {"std_scale": calibrate_std_scale(scores["_err"], scores["_std"]),
                   "coverage": 0.95}
    report = {
        "config": asdict(config), "n_train": int(len(train["targets"])),
        "n_val": int(len(val["targets"])), "data_time_s": round(t_data, 1),
        "train_time_s": round(time.time() - t0 - t_data, 1),
        "best_epoch": int(min(history, key=lambda r: r["mse_std"])["epoch"]),
        "val": {k: v for k, v in scores.items() if not k.startswith("_")},
        "calibration": calibration,
    }
    save_featurenet(out_dir / "featurenet.pt", network, config=PRESETS[config.preset],
                    standardisation=st, calibration=calibration, meta=report)
    (out_dir / "history.json").write_text(json.dumps(history, indent=1))
    (out_dir / "report.json").write_text(json.dumps(report, indent=1))
    return report


def main(argv=None) -> int:
    """Command line: ``python -m etem_helpers.sizing.train --config C --out DIR``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="JSON TrainConfig (defaults if omitted)")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    args = parser.parse_args(argv)
    config = TrainConfig.from_json(args.config) if args.config else TrainConfig()
    report = train_featurenet(config, args.out)
    print(json.dumps(report["val"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
