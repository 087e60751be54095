"""Outlines moved to the half-contrast line (issue 13, item 6)."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from etem_helpers.segmentation.outline import half_contrast_outlines


def _scene(radii, centres, *, shape=(160, 160), blur_px=3.0, noise=0.02, seed=0):
    """Dark disks on a bright support, blurred; returns (image, true labels)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    truth = np.zeros(shape, np.int32)
    for k, ((cy, cx), r) in enumerate(zip(centres, radii, strict=True), start=1):
        truth[(yy - cy) ** 2 + (xx - cx) ** 2 <= r**2] = k
    image = ndi.gaussian_filter(np.where(truth > 0, 0.3, 1.0), blur_px)
    return (image + np.random.default_rng(seed).normal(0, noise, shape)).astype(np.float32), truth


def test_outline_drawn_on_the_foot_moves_to_the_edge():
    image, truth = _scene([15, 20], [(45, 45), (110, 105)])
    too_big = np.zeros_like(truth)
    for k in (1, 2):  # outlines 4 px outside the edge, as the network draws them on real images
        too_big[ndi.binary_dilation(truth == k, iterations=4)] = k
    moved = half_contrast_outlines(image, too_big)
    for k in (1, 2):
        area_true, area_moved = (truth == k).sum(), (moved == k).sum()
        assert area_moved == pytest.approx(area_true, rel=0.08), k
        assert (too_big == k).sum() > 1.3 * area_true
    assert set(np.unique(moved)) == {0, 1, 2}


def test_outline_inside_the_edge_grows_and_never_into_a_neighbour():
    image, truth = _scene([14, 14], [(80, 60), (80, 89)], blur_px=1.5)  # nearly touching
    shrunk = np.zeros_like(truth)
    for k in (1, 2):
        shrunk[ndi.binary_erosion(truth == k, iterations=3)] = k
    moved = half_contrast_outlines(image, shrunk)
    for k in (1, 2):
        assert (moved == k).sum() == pytest.approx((truth == k).sum(), rel=0.1)
    # Each pixel has one id; the two particles did not swallow each other.
    assert ((moved == 1) & (truth == 2)).sum() == 0 and ((moved == 2) & (truth == 1)).sum() == 0


def test_particle_without_contrast_keeps_its_outline_and_errors():
    flat = np.random.default_rng(1).normal(1.0, 0.05, (96, 96)).astype(np.float32)
    labels = np.zeros((96, 96), np.int32)
    labels[30:60, 30:60] = 1
    np.testing.assert_array_equal(half_contrast_outlines(flat, labels), labels)
    with pytest.raises(ValueError, match="same shape"):
        half_contrast_outlines(flat, labels[:10])
    with pytest.raises(ValueError, match="ring_px"):
        half_contrast_outlines(flat, labels, ring_px=(5, 3))


def test_analyzer_outline_setting():
    from etem_helpers.pipeline import Analyzer

    image, _ = _scene([18, 22], [(60, 60), (180, 170)], shape=(256, 256))
    settings = {"faults": False, "annotations": False}
    physical = Analyzer(device="cpu", size_estimator=None, **settings)(image, 0.5)
    half = Analyzer(device="cpu", outline="half_contrast", **settings)(image, 0.5)
    assert physical.info["outline"] == "physical" and half.info["outline"] == "half_contrast"
    assert half.info["size_estimator"] == "mask"  # sizes follow the moved outlines
    assert half.labels.max() == physical.labels.max() >= 1
    with pytest.raises(ValueError, match="outline"):
        Analyzer(device="cpu", outline="hand", **settings)
