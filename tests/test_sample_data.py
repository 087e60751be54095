"""The committed sample in data/sample is readable, calibrated and exactly what its documented command makes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from etem_helpers.io import read_micrograph
from etem_helpers.simulate import generate_dataset, load_manifest


@pytest.fixture(scope="module")
def sample_dir(repository_root):
    return repository_root / "data" / "sample"


def test_sample_is_small_and_holds_both_regimes(sample_dir):
    size_mb = sum(p.stat().st_size for p in sample_dir.rglob("*") if p.is_file()) / 2**20
    assert size_mb < 10
    manifest = load_manifest(sample_dir)
    assert set(manifest["regime"]) == {"hrtem", "lowmag"}


def test_sample_images_carry_the_manifest_calibration(sample_dir):
    manifest = load_manifest(sample_dir)
    for row in manifest.itertuples():
        micrograph = read_micrograph(sample_dir / row.image_path)
        assert micrograph.pixel_size_nm == pytest.approx(row.pixel_size_nm, rel=1e-6)
        assert micrograph.image.shape == (256, 256)


def test_sample_is_regenerated_exactly_by_the_documented_command(sample_dir, tmp_path):
    # data/README.md: python -m etem_helpers.simulate --n-images 8 --image-size-px 256 --seed 2026 ...
    fresh = generate_dataset(8, tmp_path / "sample", image_size_px=256, seed=2026, progress=False)
    for row in load_manifest(sample_dir).itertuples():
        committed = read_micrograph(sample_dir / row.image_path).image
        regenerated = read_micrograph(fresh / row.image_path).image
        assert np.array_equal(committed, regenerated), row.micrograph_id
    pd.testing.assert_frame_equal(pd.read_csv(sample_dir / "particles.csv"),
                                  pd.read_csv(fresh / "particles.csv"))
