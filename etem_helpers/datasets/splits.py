"""Leakage-free splits of a dataset by micrograph."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

SPLIT_NAMES = ("train", "val", "test")


# --------------------------------------------------------------------------------------
# Splits
# --------------------------------------------------------------------------------------
def _split_counts(n: int, fractions: Sequence[float]) -> list[int]:
    exact = [n * f for f in fractions]
    counts = [math.floor(e) for e in exact]
    remainders = [e - c for e, c in zip(exact, counts, strict=True)]
    # Largest remainder (Hamilton): ties go to the earlier split (train, then val).
    for index in sorted(range(len(counts)), key=lambda i: -remainders[i])[: n - sum(counts)]:
        counts[index] += 1
    # Non-empty splits when possible: take one item from the largest split.
    wanted = [i for i, f in enumerate(fractions) if f > 0]
    if n >= len(wanted):
        for index in wanted:
            if counts[index] == 0:
                donor = int(np.argmax(counts))
                counts[donor] -= 1
                counts[index] += 1
    return counts


def split_by_micrograph(
    micrograph_ids: Iterable[Any],
    *,
    fractions: Sequence[float] = (0.70, 0.15, 0.15),
    seed: int = 0,
) -> dict[str, list]:
    """Split micrographs (not tiles, not particles) into train / val / test.

    All tiles and particles of a micrograph share its noise, defocus and neighbours, so a
    micrograph cut across two splits leaks test information into training. Splitting the
    micrograph ids avoids that.

    Parameters
    ----------
    micrograph_ids : iterable
        Ids (duplicates allowed, e.g. one per tile or particle; each id is placed once).
    fractions : sequence of 3 float
        Train, val and test fractions (non-negative, sum 1).
    seed : int
        Seed of the shuffle; the same ids and seed give the same split in any order.

    Returns
    -------
    dict
        ``{"train": [...], "val": [...], "test": [...]}``, ids sorted within each split.

    Notes
    -----
    Counts use the largest-remainder rule: each split first gets ``floor(n·fraction)``
    micrographs, the left-over ones go to the splits with the largest fractional parts, so
    every count is within one micrograph of ``n·fraction``. Then, if n is at least the number
    of splits with a positive fraction, an empty split takes one micrograph from the largest
    split (for n = 3 and 70/15/15 this gives 1/1/1, a deliberate departure from the
    fractions so that validation and test are never empty).
    """
    fractions = [float(f) for f in fractions]
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(
            f"fractions must be three non-negative numbers (train, val, test) summing to 1, "
            f"got {tuple(fractions)}."
        )
    unique = sorted(set(micrograph_ids), key=lambda v: (str(type(v)), v))
    rng = np.random.default_rng(seed)
    order = [unique[i] for i in rng.permutation(len(unique))]
    counts = _split_counts(len(unique), fractions)
    splits: dict[str, list] = {}
    start = 0
    for name, count in zip(SPLIT_NAMES, counts, strict=True):
        splits[name] = sorted(order[start : start + count], key=lambda v: (str(type(v)), v))
        start += count
    return splits


def assign_split_column(
    manifest: pd.DataFrame,
    *,
    id_column: str = "micrograph_id",
    fractions: Sequence[float] = (0.70, 0.15, 0.15),
    seed: int = 0,
    column: str = "split",
) -> pd.DataFrame:
    """Return a copy of a table with a ``split`` column from :func:`split_by_micrograph`.

    Works for the manifest (one row per micrograph) and for particle or tile tables (many
    rows per micrograph: all rows of a micrograph get the same split).

    Parameters
    ----------
    manifest : pandas.DataFrame
        Table with an ``id_column``.
    id_column : str
        Column holding the micrograph id.
    fractions, seed
        As in :func:`split_by_micrograph`.
    column : str
        Name of the new column.
    """
    if id_column not in manifest.columns:
        raise KeyError(
            f"Column {id_column!r} not in the table (columns: {list(manifest.columns)}); "
            "pass id_column=... naming the micrograph id column."
        )
    splits = split_by_micrograph(manifest[id_column], fractions=fractions, seed=seed)
    lookup = {mid: name for name, ids in splits.items() for mid in ids}
    out = manifest.copy()
    out[column] = out[id_column].map(lookup)
    return out

