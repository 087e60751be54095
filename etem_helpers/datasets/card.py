"""Dataset cards: what is in a dataset, as numbers and as a figure."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from etem_helpers.datasets.folders import read_manifest, read_particles
from etem_helpers.io import as_path, replace_atomically

# --------------------------------------------------------------------------------------
# Dataset card
# --------------------------------------------------------------------------------------
_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def _summary(values: pd.Series) -> dict[str, Any]:
    values = pd.to_numeric(values, errors="coerce").dropna()
    if values.empty:
        return {"n": 0}
    out: dict[str, Any] = {"n": int(values.size), "mean": float(values.mean())}
    for q in _QUANTILES:
        out[f"q{round(q * 100):02d}"] = float(values.quantile(q))
    out["min"], out["max"] = float(values.min()), float(values.max())
    return out


def _bool_count(values: pd.Series) -> dict[str, int]:
    """Count true/false in a column that may be bool, 0/1, or "True"/"False" text with gaps."""
    values = values.dropna()
    if not pd.api.types.is_bool_dtype(values):
        lookup = {"true": True, "false": False, "1": True, "0": False, "1.0": True, "0.0": False}
        values = values.astype(str).str.strip().str.lower().map(lookup).dropna()
    values = values.astype(bool)
    return {"true": int(values.sum()), "false": int((~values).sum())}


def dataset_card(
    dataset_dir: str | Path, *, splits: dict[str, Sequence[Any]] | None = None
) -> dict[str, Any]:
    """Summarise a dataset directory as a JSON-serialisable dict.

    Parameters
    ----------
    dataset_dir : str or pathlib.Path
        Dataset directory with ``manifest.csv`` and ``particles.csv``.
    splits : dict or None
        Output of :func:`split_by_micrograph`; adds per-split counts.

    Returns
    -------
    dict
        ``n_micrographs``, ``n_particles``, ``regimes`` (micrographs per regime), ``kinds``
        (particles per kind), ``diameter_nm`` (quantiles per kind and ``"all"``),
        ``aspect_ratio`` (quantiles), ``faults`` (true/false counts of ``has_fault`` and
        ``fault_visible``, overall and per regime), ``pixel_size_nm``, ``dose_e_per_a2``,
        ``defocus_nm``, ``gas_fraction`` (quantiles over micrographs) and ``splits``; for
        datasets simulated with ``dense_fraction > 0`` also ``packing`` (micrographs that are
        dense assemblies or randomly placed particles).
    """
    manifest = read_manifest(dataset_dir)
    particles = read_particles(dataset_dir)
    card: dict[str, Any] = {
        "dataset_dir": str(Path(dataset_dir)),
        "n_micrographs": int(len(manifest)),
        "n_particles": int(len(particles)),
    }
    if "regime" in manifest.columns:
        card["regimes"] = {str(k): int(v) for k, v in manifest["regime"].value_counts().items()}
    if "packing" in manifest.columns:  # datasets with dense assemblies (dense_fraction > 0)
        card["packing"] = {str(k): int(v) for k, v in manifest["packing"].value_counts().items()}
    if "kind" in particles.columns:
        card["kinds"] = {str(k): int(v) for k, v in particles["kind"].value_counts().items()}
    if "diameter_nm" in particles.columns:
        diameters = {"all": _summary(particles["diameter_nm"])}
        if "kind" in particles.columns:
            for kind, group in particles.groupby("kind"):
                diameters[str(kind)] = _summary(group["diameter_nm"])
        card["diameter_nm"] = diameters
    if "aspect_ratio" in particles.columns:
        card["aspect_ratio"] = _summary(particles["aspect_ratio"])
    faults: dict[str, Any] = {}
    regime_of = (
        manifest.set_index("micrograph_id")["regime"] if "regime" in manifest.columns else None
    )
    for column in ("has_fault", "fault_visible"):
        if column not in particles.columns:
            continue
        entry: dict[str, Any] = {"all": _bool_count(particles[column])}
        if regime_of is not None and "micrograph_id" in particles.columns:
            regimes = particles["micrograph_id"].map(regime_of)
            for regime, group in particles.groupby(regimes):
                entry[str(regime)] = _bool_count(group[column])
        faults[column] = entry
    if faults:
        card["faults"] = faults
    for column in ("pixel_size_nm", "dose_e_per_a2", "defocus_nm", "gas_fraction"):
        if column in manifest.columns:
            card[column] = _summary(manifest[column])
    if splits is not None:
        per_split = {}
        counts = (
            particles["micrograph_id"].value_counts()
            if "micrograph_id" in particles.columns
            else pd.Series(dtype=int)
        )
        known = set(manifest["micrograph_id"])
        for name, ids in splits.items():
            ids = [str(mid) for mid in ids]
            per_split[str(name)] = {
                "n_micrographs": int(sum(mid in known for mid in ids)),
                "n_particles": int(sum(int(counts.get(mid, 0)) for mid in ids)),
            }
        card["splits"] = per_split
    return card


def save_dataset_card(card: dict[str, Any], path: str | Path, *, overwrite: bool = False) -> Path:
    """Write a dataset card as JSON.

    Parameters
    ----------
    card : dict
        Output of :func:`dataset_card`.
    path : str or pathlib.Path
        Output file (parent directories are created).
    overwrite : bool
        Replace an existing file; otherwise an existing file raises ``FileExistsError``.

    Returns
    -------
    pathlib.Path
        The written path.
    """
    path = as_path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it.")
    text = json.dumps(card, indent=2, sort_keys=False) + "\n"  # fails before any file is touched
    with replace_atomically(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def plot_dataset_card(
    source: str | Path | pd.DataFrame, *, manifest: pd.DataFrame | None = None
):
    """Plot what a dataset contains (no ``plt.show``; the figure is returned).

    Four panels: diameter histograms per kind; micrographs per regime; fault balance
    (``has_fault`` and ``fault_visible``); pixel size against dose per micrograph.

    Parameters
    ----------
    source : str, pathlib.Path or pandas.DataFrame
        A dataset directory, or a particles table (then pass ``manifest`` for the regime and
        imaging panels).
    manifest : pandas.DataFrame or None
        Manifest table when ``source`` is a particles table.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    if isinstance(source, pd.DataFrame):
        particles = source
    else:
        particles = read_particles(source)
        manifest = read_manifest(source)

    fig = Figure(figsize=(10, 7), layout="constrained")
    ax_d, ax_r, ax_f, ax_p = fig.subplots(2, 2).ravel()

    if "diameter_nm" in particles.columns and len(particles):
        groups = particles.groupby("kind") if "kind" in particles.columns else [("all", particles)]
        bins = np.histogram_bin_edges(particles["diameter_nm"].dropna(), bins=30)
        for kind, group in groups:
            ax_d.hist(group["diameter_nm"].dropna(), bins=bins, alpha=0.6, label=str(kind))
        ax_d.legend(fontsize="small")
    ax_d.set(xlabel="diameter (nm)", ylabel="particles", title="Size by kind")

    regimes = None
    if manifest is not None and "regime" in manifest.columns:
        regimes = manifest["regime"].value_counts()
    if regimes is not None and len(regimes):
        ax_r.bar([str(k) for k in regimes.index], regimes.to_numpy())
    else:
        ax_r.text(0.5, 0.5, "no regime information", ha="center", va="center",
                  transform=ax_r.transAxes)
    ax_r.set(ylabel="micrographs", title="Imaging regime")

    columns = [c for c in ("has_fault", "fault_visible") if c in particles.columns]
    if columns:
        counts = [_bool_count(particles[c]) for c in columns]
        positions = np.arange(len(columns))
        ax_f.bar(positions - 0.2, [c["true"] for c in counts], width=0.4, label="true")
        ax_f.bar(positions + 0.2, [c["false"] for c in counts], width=0.4, label="false")
        ax_f.set_xticks(positions, columns)
        ax_f.legend(fontsize="small")
    else:
        ax_f.text(0.5, 0.5, "no fault labels", ha="center", va="center",
                  transform=ax_f.transAxes)
    ax_f.set(ylabel="particles", title="Fault balance")

    if manifest is not None and {"pixel_size_nm", "dose_e_per_a2"} <= set(manifest.columns):
        ax_p.scatter(manifest["pixel_size_nm"], manifest["dose_e_per_a2"], s=12)
        ax_p.set_xscale("log")
        ax_p.set_yscale("log")
    else:
        ax_p.text(0.5, 0.5, "no imaging metadata", ha="center", va="center",
                  transform=ax_p.transAxes)
    ax_p.set(xlabel="pixel size (nm/px)", ylabel="dose (e/Å²)", title="Imaging conditions")
    return fig

