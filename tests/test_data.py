"""Tests of normalisation, resampling, tiling (preprocess), splits and cards (datasets), and the
training dataset (segmentation.data)."""

from __future__ import annotations

import json
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest
import tifffile
import torch

from etem_helpers.datasets import (
    assign_split_column,
    dataset_card,
    plot_dataset_card,
    read_manifest,
    save_dataset_card,
    split_by_micrograph,
)
from etem_helpers.preprocess import (
    iter_tiles,
    normalize_image,
    resample_to_pixel_size,
    stitch_tiles,
    tile_image,
    tile_positions,
)
from etem_helpers.segmentation.data import SegmentationDataset, augment_pair

TILE = 48


# --------------------------------------------------------------------------------------
# A tiny fake dataset directory in the simulator's layout (no simulator needed)
# --------------------------------------------------------------------------------------
def _disk_labels(shape, rng, *, n_disks, radius_range=(5, 11)):
    """Instance labels of random disks (later ids occlude earlier ones; some touch)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, dtype=np.uint16)
    for pid in range(1, n_disks + 1):
        radius = rng.uniform(*radius_range)
        cy, cx = rng.uniform(radius, shape[0] - radius), rng.uniform(radius, shape[1] - radius)
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = pid
    return labels


def _write_dataset(root: Path, *, image_equals_labels: bool, seed: int = 0) -> Path:
    """Write images/*.mrc, labels/*.tif, manifest.csv, particles.csv, dataset.json."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    kinds = ["nanoparticle", "rod", "aggregate"]
    shapes = [(96, 128), (80, 80), (112, 72), (96, 96), (40, 56), (88, 120)]
    pixel_sizes = [0.2, 0.25, 0.2, 0.3, 0.2, 0.25]
    regimes = ["hrtem", "lowmag", "hrtem", "lowmag", "hrtem", "hrtem"]
    manifest_rows, particle_rows = [], []
    for index, (shape, pixel_size_nm, regime) in enumerate(
        zip(shapes, pixel_sizes, regimes, strict=True)
    ):
        mid = f"sim_{index:05d}"
        labels = _disk_labels(shape, rng, n_disks=int(rng.integers(3, 7)))
        if image_equals_labels:
            image = (labels > 0).astype(np.float32)
        else:
            image = (100.0 - 40.0 * (labels > 0) + rng.normal(0, 5, shape)).astype(np.float32)
        with mrcfile.new(root / "images" / f"{mid}.mrc", overwrite=True) as mrc:
            mrc.set_data(image)
            mrc.voxel_size = pixel_size_nm * 10.0  # MRC headers store Å
        tifffile.imwrite(root / "labels" / f"{mid}.tif", labels)
        manifest_rows.append(
            {
                "micrograph_id": mid,
                "image_path": f"images/{mid}.mrc",
                "labels_path": f"labels/{mid}.tif",
                "regime": regime,
                "pixel_size_nm": pixel_size_nm,
                "voltage_kv": 300.0,
                "cs_mm": 1.2,
                "defocus_nm": float(rng.uniform(20, 80)),
                "dose_e_per_a2": float(rng.uniform(50, 2000)),
                "gas_fraction": float(rng.uniform(0, 0.3)),
                "seed": index,
                "n_particles": 0,
            }
        )
        ids = [int(v) for v in np.unique(labels) if v > 0]
        manifest_rows[-1]["n_particles"] = len(ids)
        for pid in ids:
            area_px = int((labels == pid).sum())
            has_fault = bool(rng.random() < 0.4)
            particle_rows.append(
                {
                    "micrograph_id": mid,
                    "particle_id": pid,
                    "area_nm2": area_px * pixel_size_nm**2,
                    "diameter_nm": 2 * np.sqrt(area_px * pixel_size_nm**2 / np.pi),
                    "aspect_ratio": float(rng.uniform(1.0, 2.0)),
                    "kind": kinds[int(rng.integers(len(kinds)))],
                    "has_fault": has_fault,
                    "fault_visible": has_fault and regime == "hrtem" and bool(rng.random() < 0.7),
                }
            )
    pd.DataFrame(manifest_rows).to_csv(root / "manifest.csv", index=False)
    pd.DataFrame(particle_rows).to_csv(root / "particles.csv", index=False)
    (root / "dataset.json").write_text(json.dumps({"n_micrographs": len(shapes)}))
    return root


@pytest.fixture(scope="module")
def fake_dataset(tmp_path_factory) -> Path:
    return _write_dataset(tmp_path_factory.mktemp("fake_ds"), image_equals_labels=False)


@pytest.fixture(scope="module")
def aligned_dataset(tmp_path_factory) -> Path:
    """Images equal to (labels > 0): any misalignment shows up exactly."""
    return _write_dataset(tmp_path_factory.mktemp("aligned_ds"), image_equals_labels=True)


# --------------------------------------------------------------------------------------
# normalize_image
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["percentile", "zscore"])
def test_normalize_constant_image_gives_zeros(method):
    out = normalize_image(np.full((20, 30), 7.5), method=method)
    assert out.dtype == np.float32
    assert out.shape == (20, 30)
    assert np.all(out == 0)


@pytest.mark.parametrize("method", ["percentile", "zscore"])
def test_normalize_ignores_hot_and_dead_pixels(method):
    rng = np.random.default_rng(1)
    image = rng.normal(100.0, 10.0, (100, 100))
    reference = normalize_image(image, method=method)
    spoiled = image.copy()
    spoiled[10, 10] = 1e6  # hot pixel
    spoiled[50, 50] = 0.0  # dead pixel
    out = normalize_image(spoiled, method=method)
    keep = np.ones(image.shape, dtype=bool)
    keep[10, 10] = keep[50, 50] = False
    # A min-max normalisation would shrink the useful range ~1e4 times; robust stays put.
    assert np.max(np.abs(out[keep] - reference[keep])) < 0.02
    assert np.all(np.isfinite(out))


def test_normalize_percentile_range_and_nan():
    rng = np.random.default_rng(2)
    image = rng.gamma(2.0, 10.0, (64, 64))
    image[0, 0] = np.nan
    out = normalize_image(image)
    assert np.all(np.isfinite(out))
    assert out.min() == 0.0 and out.max() == 1.0
    assert out[0, 0] == 0.0
    # monotonic: the ordering of valid pixels is kept
    valid = np.isfinite(image)
    order = np.argsort(image[valid])
    assert np.all(np.diff(out[valid][order]) >= 0)


def test_normalize_rejects_bad_arguments():
    with pytest.raises(ValueError, match="method"):
        normalize_image(np.ones((3, 3)), method="minmax")
    with pytest.raises(ValueError, match="low_percentile"):
        normalize_image(np.ones((3, 3)), low_percentile=50, high_percentile=10)


# --------------------------------------------------------------------------------------
# resample_to_pixel_size
# --------------------------------------------------------------------------------------
def test_resample_pixel_size_round_trip_and_exactness():
    rng = np.random.default_rng(3)
    image = rng.random((90, 130)).astype(np.float32)
    down, size_down = resample_to_pixel_size(image, 0.25, 0.4)
    assert down.dtype == np.float32
    # the achieved size is exact for the returned shape (long axis field of view kept) ...
    assert np.isclose(size_down * down.shape[1], 0.25 * 130)
    # ... and within half an output pixel of the target
    assert abs(size_down - 0.4) <= 0.4 * 0.5 / down.shape[1] + 1e-12
    back, size_back = resample_to_pixel_size(down, size_down, 0.25)
    assert abs(size_back - 0.25) <= 0.25 * 0.5 / back.shape[1] + 1e-12
    assert abs(back.shape[0] - 90) <= 1 and abs(back.shape[1] - 130) <= 1


def test_resample_identity_keeps_values():
    image = np.arange(20.0).reshape(4, 5)
    out, size = resample_to_pixel_size(image, 0.3, 0.3)
    assert size == 0.3
    np.testing.assert_array_equal(out, image.astype(np.float32))


@pytest.mark.parametrize("target_nm", [0.13, 0.2, 0.45, 1.0])
def test_resample_labels_creates_no_new_ids(target_nm):
    labels = _disk_labels((80, 100), np.random.default_rng(4), n_disks=6).astype(np.uint16)
    out, _ = resample_to_pixel_size(labels, 0.2, target_nm, is_label=True)
    assert out.dtype == np.uint16
    assert set(np.unique(out)) <= set(np.unique(labels))
    if target_nm < 0.2:  # upsampling keeps every particle
        assert set(np.unique(out)) == set(np.unique(labels))


def test_resample_antialiases_when_shrinking():
    checker = ((np.indices((120, 120)).sum(axis=0) % 2) * 2.0 - 1.0).astype(np.float32)
    out, _ = resample_to_pixel_size(checker, 0.1, 0.25)
    # Nyquist-frequency pattern must not alias into a visible pattern after shrinking
    assert np.std(out) < 0.1


def test_resample_image_and_labels_stay_registered():
    labels = _disk_labels((100, 140), np.random.default_rng(5), n_disks=5)
    image = (labels > 0).astype(np.float32)
    img_out, _ = resample_to_pixel_size(image, 0.2, 0.33)
    lab_out, _ = resample_to_pixel_size(labels, 0.2, 0.33, is_label=True)
    assert img_out.shape == lab_out.shape
    predicted, truth = img_out > 0.5, lab_out > 0
    iou = (predicted & truth).sum() / (predicted | truth).sum()
    assert iou > 0.85


@pytest.mark.parametrize(("pixel_size_nm", "target_nm"), [(0.2, 0.5), (0.2, 0.07)])
def test_resample_keeps_physical_positions(pixel_size_nm, target_nm):
    # Pixel i covers [i, i + 1) * pixel size: its centre is at (i + 0.5) * pixel size (nm).
    yy, xx = np.mgrid[:80, :100]
    centre_px = np.array([30.3, 41.7])
    blob = np.exp(-((yy - centre_px[0]) ** 2 + (xx - centre_px[1]) ** 2) / (2 * 4.0**2))
    out, size = resample_to_pixel_size(blob, pixel_size_nm, target_nm)
    oy, ox = np.mgrid[: out.shape[0], : out.shape[1]]
    centroid_out = np.array([(oy * out).sum(), (ox * out).sum()]) / out.sum()
    np.testing.assert_allclose(
        (centroid_out + 0.5) * size, (centre_px + 0.5) * pixel_size_nm, atol=0.1 * size
    )


def test_resample_refuses_missing_pixel_size():
    with pytest.raises(ValueError, match="pixel_size_nm"):
        resample_to_pixel_size(np.ones((8, 8)), None, 0.2)
    with pytest.raises(ValueError, match="target_pixel_size_nm"):
        resample_to_pixel_size(np.ones((8, 8)), 0.2, 0.0)


# --------------------------------------------------------------------------------------
# tiling / stitching
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "shape", [(100, 130), (40, 50), (64, 64), (200, 77), (1, 90), (65, 129)]
)
def test_tile_then_stitch_is_identity(shape):
    image = np.random.default_rng(6).random(shape)
    tiles, positions = tile_image(image, tile_px=64, overlap_px=16)
    assert tiles.shape[1:] == (64, 64)
    assert positions.shape == (len(tiles), 2)
    stitched = stitch_tiles(tiles, positions, image.shape, overlap_px=16)
    assert stitched.shape == image.shape
    assert stitched.dtype == np.float32
    np.testing.assert_allclose(stitched, image, atol=1e-6)


def test_tiles_cover_every_pixel_and_snap_to_edges():
    shape = (150, 221)
    positions = tile_positions(shape, tile_px=64, overlap_px=16)
    covered = np.zeros(shape, dtype=int)
    for y, x in positions:
        covered[y : y + 64, x : x + 64] += 1
    assert covered.min() >= 1
    assert positions[:, 0].max() + 64 == shape[0]
    assert positions[:, 1].max() + 64 == shape[1]
    ys = np.unique(positions[:, 0])
    assert np.all(np.diff(ys) <= 64 - 16)  # neighbours overlap at least overlap_px


def test_tile_small_image_is_padded_not_distorted():
    image = np.arange(30 * 20, dtype=np.float64).reshape(30, 20)
    tiles, positions = tile_image(image, tile_px=32, overlap_px=8)
    assert tiles.shape == (1, 32, 32)
    np.testing.assert_array_equal(positions, [[0, 0]])
    np.testing.assert_array_equal(tiles[0, :30, :20], image)


def test_stitch_multichannel_and_generator():
    image = np.random.default_rng(7).random((3, 90, 150)).astype(np.float32)
    tiles, positions = tile_image(image, tile_px=40, overlap_px=10)
    assert tiles.shape[1:] == (3, 40, 40)
    generated = (tile for tile, _ in iter_tiles(image, tile_px=40, overlap_px=10))
    stitched = stitch_tiles(generated, positions, image.shape[-2:], overlap_px=10)
    assert stitched.shape == image.shape
    np.testing.assert_allclose(stitched, image, atol=1e-6)
    mean_blend = stitch_tiles(tiles, positions, image.shape, overlap_px=10, blend="mean")
    np.testing.assert_allclose(mean_blend, image, atol=1e-6)


def test_cosine_blend_is_smooth_across_seams():
    # Tiles of different constants: the blend must ramp, not jump by the full step.
    image = np.zeros((64, 200))
    tiles, positions = tile_image(image, tile_px=64, overlap_px=32)
    tiles = np.stack([np.full((64, 64), float(i)) for i in range(len(tiles))])
    out = stitch_tiles(tiles, positions, image.shape, overlap_px=32)
    assert np.abs(np.diff(out[0])).max() < 0.2
    assert out.min() >= 0 and out.max() <= len(tiles) - 1


def test_stitch_refuses_missing_tiles():
    image = np.zeros((100, 100))
    tiles, positions = tile_image(image, tile_px=64, overlap_px=16)
    with pytest.raises(ValueError, match="tiles"):
        stitch_tiles(tiles[:-1], positions, image.shape, overlap_px=16)


# --------------------------------------------------------------------------------------
# splits
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [3, 4, 5, 7, 10, 17, 33, 60])
def test_split_disjoint_complete_and_sized(n):
    ids = [f"sim_{i:05d}" for i in range(n)]
    splits = split_by_micrograph(ids, seed=3)
    assert set(splits) == {"train", "val", "test"}
    groups = [set(v) for v in splits.values()]
    assert sum(len(g) for g in groups) == n
    assert set().union(*groups) == set(ids)
    assert all(len(g) > 0 for g in groups)  # n >= 3: nothing empty
    if n >= 10:
        for name, fraction in zip(("train", "val", "test"), (0.7, 0.15, 0.15), strict=True):
            assert abs(len(splits[name]) - n * fraction) <= 1


def test_split_deterministic_and_grouped():
    ids = [i % 23 for i in range(230)]  # ten tiles per micrograph
    first = split_by_micrograph(ids, seed=11)
    again = split_by_micrograph(list(reversed(ids)), seed=11)
    assert first == again
    other = split_by_micrograph(ids, seed=12)
    assert other != first
    assert sum(len(v) for v in first.values()) == 23


def test_split_rejects_bad_fractions():
    with pytest.raises(ValueError, match="fractions"):
        split_by_micrograph(range(10), fractions=(0.5, 0.2, 0.2))


def test_assign_split_column_keeps_micrographs_together():
    table = pd.DataFrame({"micrograph_id": [f"m{i % 12}" for i in range(120)], "v": range(120)})
    out = assign_split_column(table, seed=1)
    assert "split" not in table.columns
    assert out["split"].notna().all()
    assert (out.groupby("micrograph_id")["split"].nunique() == 1).all()
    with pytest.raises(KeyError, match="id_column"):
        assign_split_column(table, id_column="image")


# --------------------------------------------------------------------------------------
# SegmentationDataset
# --------------------------------------------------------------------------------------
def test_dataset_items_shapes_and_dtypes(fake_dataset):
    ds = SegmentationDataset(
        fake_dataset, tile_px=TILE, tiles_per_image=3, target="foreground", seed=0
    )
    assert len(ds) == 6 * 3
    image, target = ds[0]
    assert isinstance(image, torch.Tensor) and isinstance(target, torch.Tensor)
    assert image.dtype == torch.float32 and target.dtype == torch.float32
    assert image.shape == (1, TILE, TILE) and target.shape == (1, TILE, TILE)
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    assert set(torch.unique(target).tolist()) <= {0.0, 1.0}
    images, targets = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert images.shape == (4, 1, TILE, TILE) and targets.shape == (4, 1, TILE, TILE)


def test_dataset_instance_targets(fake_dataset):
    ds = SegmentationDataset(fake_dataset, tile_px=TILE, tiles_per_image=2, seed=0)
    image, target = ds[1]
    assert target.shape == (2, TILE, TILE)
    # boundary channel is a subset of the foreground channel
    assert bool(torch.all(target[1] <= target[0]))


def test_dataset_split_has_no_leakage(fake_dataset):
    manifest = read_manifest(fake_dataset)
    splits = split_by_micrograph(manifest["micrograph_id"], seed=0)
    seen = {}
    for name, ids in splits.items():
        ds = SegmentationDataset(
            fake_dataset, ids, tile_px=TILE, mode="grid", overlap_px=8, target="foreground"
        )
        seen[name] = {item.micrograph_id for item in ds.items}
        assert seen[name] == set(ids)
    assert not (seen["train"] & seen["val"]) and not (seen["train"] & seen["test"])
    with pytest.raises(ValueError, match="not in"):
        SegmentationDataset(fake_dataset, ["nope"], tile_px=TILE)


def test_dataset_grid_reassembles_micrograph(aligned_dataset):
    ds = SegmentationDataset(
        aligned_dataset, ["sim_00000"], tile_px=TILE, mode="grid", overlap_px=8,
        target="foreground",
    )
    tiles = np.stack([ds[i][0].numpy() for i in range(len(ds))])
    positions = [(item.y, item.x) for item in ds.items]
    stitched = stitch_tiles(tiles, positions, (96, 128), overlap_px=8)
    labels = tifffile.imread(aligned_dataset / "labels" / "sim_00000.tif")
    np.testing.assert_allclose(stitched[0], (labels > 0).astype(np.float32), atol=1e-6)


def test_geometric_augmentation_keeps_masks_aligned(aligned_dataset):
    n_changed = 0
    for seed in range(4):
        plain = SegmentationDataset(
            aligned_dataset, tile_px=TILE, tiles_per_image=4, target="foreground", seed=seed
        )
        augmented = SegmentationDataset(
            aligned_dataset, tile_px=TILE, tiles_per_image=4, target="foreground", seed=seed,
            augment=True, intensity_augment=False,
        )
        for index in range(len(augmented)):
            image, target = augmented[index]
            assert torch.equal(image[0], target[0])
            n_changed += not torch.equal(image, plain[index][0])
    assert n_changed > 0  # the augmentation did something


def test_intensity_augmentation_keeps_threshold_aligned(aligned_dataset):
    from skimage.filters import threshold_otsu

    ds = SegmentationDataset(
        aligned_dataset, tile_px=TILE, tiles_per_image=6, target="foreground", seed=5,
        augment=True,
    )
    ious, n_modified = [], 0
    for index in range(len(ds)):
        image, target = (t.numpy() for t in ds[index])
        truth = target[0] > 0.5
        n_modified += not np.array_equal(image[0], target[0])
        if truth.mean() < 0.05 or truth.mean() > 0.95:
            continue
        predicted = image[0] > threshold_otsu(image[0])
        ious.append((predicted & truth).sum() / (predicted | truth).sum())
    assert n_modified > len(ds) // 2
    assert len(ious) >= 10
    assert np.median(ious) > 0.9 and min(ious) > 0.7


def test_dataset_resampled_stays_aligned(aligned_dataset):
    ds = SegmentationDataset(
        aligned_dataset, tile_px=TILE, tiles_per_image=2, target="foreground",
        target_pixel_size_nm=0.3, seed=1,
    )
    for index in range(len(ds)):
        image, target = ds[index]
        assert np.mean((image[0].numpy() > 0.5) == (target[0].numpy() > 0.5)) > 0.9
    assert len(ds.pixel_sizes_nm) == 6
    assert all(abs(size - 0.3) < 0.3 * 0.02 for size in ds.pixel_sizes_nm.values())


def test_dataset_deterministic_per_seed_and_epoch(fake_dataset):
    def make(seed):
        return SegmentationDataset(
            fake_dataset, tile_px=TILE, tiles_per_image=2, target="foreground", seed=seed,
            augment=True,
        )

    first, second = make(3), make(3)
    for index in (0, 5, 11):
        assert torch.equal(first[index][0], second[index][0])
        assert torch.equal(first[index][0], first[index][0])
    first.set_epoch(1)
    assert any(not torch.equal(first[i][0], second[i][0]) for i in range(len(first)))


def test_dataset_tile_larger_than_image(fake_dataset):
    ds = SegmentationDataset(
        fake_dataset, ["sim_00004"], tile_px=64, mode="grid", target="foreground"
    )  # sim_00004 is 40 x 56 px
    assert len(ds) == 1
    image, target = ds[0]
    assert image.shape == (1, 64, 64) and target.shape == (1, 64, 64)


# --------------------------------------------------------------------------------------
# dataset card
# --------------------------------------------------------------------------------------
def test_dataset_card_matches_direct_counts(fake_dataset, tmp_path):
    particles = pd.read_csv(fake_dataset / "particles.csv")
    manifest = pd.read_csv(fake_dataset / "manifest.csv")
    splits = split_by_micrograph(manifest["micrograph_id"], seed=0)
    card = dataset_card(fake_dataset, splits=splits)
    json.dumps(card)  # serialisable
    assert card["n_micrographs"] == len(manifest)
    assert card["n_particles"] == len(particles)
    assert card["kinds"] == particles["kind"].value_counts().to_dict()
    assert card["regimes"] == manifest["regime"].value_counts().to_dict()
    assert card["faults"]["has_fault"]["all"]["true"] == int(particles["has_fault"].sum())
    assert card["faults"]["fault_visible"]["all"]["true"] == int(particles["fault_visible"].sum())
    for kind, group in particles.groupby("kind"):
        assert card["diameter_nm"][kind]["n"] == len(group)
        assert np.isclose(card["diameter_nm"][kind]["q50"], group["diameter_nm"].median())
    assert np.isclose(card["pixel_size_nm"]["max"], manifest["pixel_size_nm"].max())
    for name, ids in splits.items():
        assert card["splits"][name]["n_micrographs"] == len(ids)
        assert card["splits"][name]["n_particles"] == int(
            particles["micrograph_id"].isin(ids).sum()
        )

    path = save_dataset_card(card, tmp_path / "card.json")
    assert json.loads(path.read_text())["n_particles"] == len(particles)
    with pytest.raises(FileExistsError, match="overwrite"):
        save_dataset_card(card, path)
    save_dataset_card({"n_particles": 0}, path, overwrite=True)
    assert json.loads(path.read_text()) == {"n_particles": 0}


def test_plot_dataset_card_returns_figure(fake_dataset):
    from matplotlib.figure import Figure

    fig = plot_dataset_card(fake_dataset)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 4
    assert len(fig.axes[0].patches) > 0  # diameter histogram drawn
    fig_df = plot_dataset_card(pd.read_csv(fake_dataset / "particles.csv"))
    assert isinstance(fig_df, Figure)


def test_blur_augmentation_strength_is_configurable_and_checked():

    rng_image = np.random.default_rng(0)
    image = rng_image.random((64, 64)).astype(np.float32)
    labels = (image > 0.5).astype(np.int32)

    def blurred_fraction(**blur):
        # high-frequency energy left after augmentation, over 40 draws
        rng = np.random.default_rng(1)
        out = [augment_pair(image, labels, rng=rng, geometric=False, **blur)[0] for _ in range(40)]
        return np.mean([np.abs(np.diff(o, axis=1)).mean() for o in out])

    never = blurred_fraction(blur_probability=0.0)
    strong = blurred_fraction(blur_probability=1.0, max_blur_sigma_px=3.0)
    assert strong < 0.5 * never  # blurring removes pixel-to-pixel variation
    for bad in ({"blur_probability": 1.5}, {"max_blur_sigma_px": 0.1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            augment_pair(image, labels, rng=np.random.default_rng(0), **bad)
