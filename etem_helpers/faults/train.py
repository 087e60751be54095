"""Train and select the fault classifiers; the reproducing command of the shipped model.

Usage::

    python -m etem_helpers.faults.train \\
        --config etem_helpers/models/faults_default_config.json \\
        --out etem_helpers/models/faults_default.skops [--cache /tmp/faults_dataset]

Builds the simulated HRTEM dataset (:func:`classify.build_dataset`), trains a random forest
on each feature set and the small CNN on the training micrographs, scores each on the
validation micrographs (lattice-resolved particles), chooses each threshold on validation,
and saves the candidate chosen by the decision rule (highest validation balanced accuracy;
a forest is preferred over the CNN when within ``prefer_forest_margin``). The test split is
not touched here (``benchmarks/eval_faults.py`` scores it). A JSON summary is written next
to ``--out`` (``*_train.json``).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np
import pandas as pd

from .classify import (
    CNNConfig,
    DatasetConfig,
    ParticleDataset,
    balanced_accuracy,
    build_dataset,
    choose_threshold,
    forest_probability,
    predict_cnn,
    train_cnn,
    train_forest,
)
from .lattice import LatticeSettings

__all__ = ["load_config", "candidate_inputs", "train_candidates", "save_dataset",
           "load_dataset", "dataset_for", "main"]

FOREST_SETS = ("groschner2021", "physics", "physics+groschner2021")


def load_config(path) -> dict:
    """Read a training config (JSON with ``dataset``, ``forest``, ``cnn``, ``selection``)."""
    cfg = json.loads(Path(path).read_text())
    for key in ("dataset", "forest", "cnn"):
        if key not in cfg:
            raise ValueError(f"config {str(path)!r} lacks the {key!r} section.")
    return cfg


def candidate_inputs(ds: ParticleDataset, feature_set: str) -> np.ndarray:
    """The model input of each row for a feature set."""
    if feature_set == "groschner2021":
        return ds.groschner
    if feature_set == "physics":
        return ds.physics
    if feature_set == "physics+groschner2021":
        return np.concatenate([ds.physics, ds.groschner], axis=1)
    if feature_set == "fft_patch":
        return ds.patches
    raise ValueError(f"unknown feature_set {feature_set!r}.")


def save_dataset(ds: ParticleDataset, folder) -> None:
    """Cache a dataset (``table.csv`` + ``arrays.npz``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ds.table.to_csv(folder / "table.csv", index=False)
    np.savez_compressed(folder / "arrays.npz", groschner=ds.groschner, physics=ds.physics,
                        patches=ds.patches)


def load_dataset(folder) -> ParticleDataset:
    """Load a dataset cached by :func:`save_dataset`."""
    folder = Path(folder)
    arrays = np.load(folder / "arrays.npz")
    table = pd.read_csv(folder / "table.csv", keep_default_na=False,
                        na_values={"d_spacing_nm": [""]})
    return ParticleDataset(table, arrays["groschner"], arrays["physics"], arrays["patches"])


def dataset_for(config: DatasetConfig, cache=None, *, progress: bool = True) -> ParticleDataset:
    """Build the dataset, or load it from ``cache`` when it was built with the same config."""
    if cache is not None:
        cache = Path(cache)
        stamp = cache / "config.json"
        if stamp.is_file() and json.loads(stamp.read_text()) == asdict(config):
            return load_dataset(cache)
    ds = build_dataset(config, progress=progress)
    if cache is not None:
        save_dataset(ds, cache)
        (cache / "config.json").write_text(json.dumps(asdict(config)))
    return ds


def _resolved(ds: ParticleDataset, split: str) -> ParticleDataset:
    t = ds.table
    rows = np.flatnonzero((t["split"] == split).to_numpy() & t["lattice_resolved"].to_numpy())
    return ds.subset(rows)


def train_candidates(ds: ParticleDataset, cfg: dict) -> dict:
    """Fit every candidate on train, choose its threshold on validation and score it there.

    Returns
    -------
    dict
        ``{name: {"model", "feature_set", "threshold", "val_accuracy",
        "val_balanced_accuracy", "fit_s"}}``.
    """
    train, val = _resolved(ds, "train"), _resolved(ds, "val")
    y_train = train.table["fault_visible"].to_numpy(bool)
    y_val = val.table["fault_visible"].to_numpy(bool)
    out = {}
    names = list(cfg.get("candidates", [*FOREST_SETS, "fft_patch"]))
    for name in names:
        start = time.perf_counter()
        if name == "fft_patch":
            cnn_cfg = CNNConfig(**cfg["cnn"])
            model = train_cnn(train.patches, y_train, cnn_cfg)
            p_val = predict_cnn(model, val.patches)
        else:
            model = train_forest(candidate_inputs(train, name), y_train, **cfg["forest"])
            p_val = forest_probability(model, candidate_inputs(val, name))
        threshold = choose_threshold(p_val, y_val)
        pred = p_val >= threshold
        out[name] = {"model": model, "feature_set": name, "threshold": threshold,
                     "val_accuracy": float(np.mean(pred == y_val)),
                     "val_balanced_accuracy": balanced_accuracy(y_val, pred),
                     "fit_s": time.perf_counter() - start}
        print(f"  {name:24s} val acc {out[name]['val_accuracy']:.3f}  bal acc "
              f"{out[name]['val_balanced_accuracy']:.3f}  threshold {threshold:.3f}  "
              f"({out[name]['fit_s']:.0f} s)", flush=True)
    return out


def select(candidates: dict, *, prefer_forest_margin: float = 0.01) -> str:
    """The decision rule: best validation balanced accuracy; a forest within the margin wins."""
    best = max(c["val_balanced_accuracy"] for c in candidates.values())
    forests = [n for n in candidates if n != "fft_patch"
               and candidates[n]["val_balanced_accuracy"] >= best - prefer_forest_margin]
    if forests:
        return max(forests, key=lambda n: (candidates[n]["val_balanced_accuracy"], -len(n)))
    return max(candidates, key=lambda n: candidates[n]["val_balanced_accuracy"])


def main(argv=None) -> int:
    from . import FaultClassifier, save_classifier

    parser = argparse.ArgumentParser(prog="python -m etem_helpers.faults.train",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="training config JSON")
    parser.add_argument("--out", required=True, help="output model (.skops or .pt)")
    parser.add_argument("--cache", default=None, help="folder to cache the simulated dataset")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    cfg = load_config(args.config)
    data_cfg = DatasetConfig(**cfg["dataset"])
    start = time.perf_counter()
    ds = dataset_for(data_cfg, args.cache)
    build_s = time.perf_counter() - start
    t = ds.table
    print(f"dataset: {len(t)} particles from {data_cfg.n_micrographs} micrographs "
          f"({build_s:.0f} s); lattice resolved: {int(t['lattice_resolved'].sum())}", flush=True)
    candidates = train_candidates(ds, cfg)
    chosen = select(candidates, prefer_forest_margin=cfg.get("selection", {}).get(
        "prefer_forest_margin", 0.01))
    c = candidates[chosen]
    out = Path(args.out)
    if (chosen == "fft_patch") != (out.suffix == ".pt"):
        out = out.with_suffix(".pt" if chosen == "fft_patch" else ".skops")
    settings = {f.name: getattr(LatticeSettings(), f.name) for f in fields(LatticeSettings)}
    info = {"config": cfg, "chosen": chosen, "val_accuracy": c["val_accuracy"],
            "val_balanced_accuracy": c["val_balanced_accuracy"],
            "channels": cfg["cnn"].get("channels", 16)}
    save_classifier(FaultClassifier(c["model"], chosen, c["threshold"], settings, info), out)
    summary = {
        "chosen": chosen, "model_path": str(out), "build_s": build_s,
        "n_particles": len(t), "n_resolved": int(t["lattice_resolved"].sum()),
        "split_counts": t.groupby("split")["lattice_resolved"].agg(["size", "sum"])
        .astype(int).to_dict(),
        "candidates": {n: {k: v for k, v in d.items() if k != "model"}
                       for n, d in candidates.items()},
    }
    summary_path = out.with_name(out.stem + "_train.json")
    summary_path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    print(f"chosen: {chosen} -> {out} (summary {summary_path})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
