"""datasets.ensure_dataset: the one reuse check (same revision, version and arguments, or refuse)."""

from __future__ import annotations

import json

import pytest

from etem_helpers.datasets import ensure_dataset, read_manifest


def test_simulates_once_then_reuses(tmp_path):
    out = tmp_path / "ds"
    first = ensure_dataset(out, 2, seed=1, image_size_px=64)
    assert not first.reused and first.seconds > 0
    stamp = (out / "manifest.csv").stat().st_mtime_ns
    again = ensure_dataset(out, 2, seed=1, image_size_px=64, n_jobs=2)  # n_jobs: same images
    assert again.reused and again.seconds == 0.0
    assert (out / "manifest.csv").stat().st_mtime_ns == stamp
    assert len(read_manifest(out)) == 2


@pytest.mark.parametrize("change", [{"seed": 2}, {"n_images": 3}, {"image_size_px": 96}])
def test_another_dataset_is_refused_and_kept(tmp_path, change):
    out = tmp_path / "ds"
    ensure_dataset(out, 2, seed=1, image_size_px=64)
    before = sorted(p.name for p in out.rglob("*"))
    settings = {"n_images": 2, "seed": 1, "image_size_px": 64, **change}
    with pytest.raises(FileExistsError, match="another dataset"):
        ensure_dataset(out, **settings)
    assert sorted(p.name for p in out.rglob("*")) == before


@pytest.mark.parametrize("key, value", [("simulator_revision", 1), ("generator_version", "0.0.1")])
def test_other_simulator_revision_or_version_is_refused(tmp_path, key, value):
    out = tmp_path / "ds"
    ensure_dataset(out, 2, seed=1, image_size_px=64)
    info = json.loads((out / "dataset.json").read_text())
    info[key] = value
    (out / "dataset.json").write_text(json.dumps(info))
    with pytest.raises(FileExistsError, match=key):
        ensure_dataset(out, 2, seed=1, image_size_px=64)
