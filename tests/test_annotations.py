"""Tests for etem_helpers.preprocess.annotations: burned-in scale bars, labels and data bars.

Every annotated image is written here with real fonts: the bar and its label by matplotlib
(anti-aliased, sub-pixel positions; :func:`etem_helpers.simulate.overlays.burn_in_scale_bar`),
data bars and PIL-drawn bars with Pillow (DejaVu Sans shipped with matplotlib, or Pillow's
default font), on simulated low-magnification micrographs of known pixel size.
"""

from __future__ import annotations

import numpy as np
import pytest

from etem_helpers.preprocess.annotations import (
    Annotations,
    drop_masked_particles,
    find_annotations,
    mask_annotations,
    measure_scale_bar,
    pixel_size_from_scale_bar,
    strip_annotations,
)
from etem_helpers.simulate import sample_params, simulate_micrograph
from etem_helpers.simulate.overlays import burn_in_scale_bar, export_8bit

SIZE_PX = 384
BAR_CHOICES_NM = (1, 2, 5, 10, 20, 50, 100, 200, 500)


@pytest.fixture(scope="module")
def micrograph():
    """(image, pixel_size_nm) of one simulated low-magnification micrograph."""
    params = sample_params(np.random.default_rng(3), "lowmag", SIZE_PX)
    sim = simulate_micrograph(params, seed=3)
    return sim.image, float(params.pixel_size_nm)


def _bar_nm(pixel_size_nm: float, fraction: float = 0.3) -> int:
    """The round bar length nearest to ``fraction`` of the field of view."""
    target = fraction * SIZE_PX * pixel_size_nm
    return min(BAR_CHOICES_NM, key=lambda nm: abs(np.log(nm / target)))


CASES = [
    dict(corner="bottom-right", colour="white"),
    dict(corner="bottom-left", colour="black", offset_px=0.4),
    dict(corner="top-left", colour="white", label_above=False, font_px=12.0),
    dict(corner="top-right", colour="black", ticks_px=4.0, thickness_px=4.0),
    dict(corner="bottom-right", colour="white", strip_px=36),
    dict(corner="bottom-left", colour="black", to_8bit=False, font_px=20.0),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{v}" for v in c.values()))
def test_pixel_size_within_2_percent_and_mask_covers_bar_and_text(micrograph, case):
    image, pixel_size_nm = micrograph
    bar_nm = _bar_nm(pixel_size_nm)
    burned = burn_in_scale_bar(image, bar_length_px=bar_nm / pixel_size_nm,
                               label=f"{bar_nm} nm", **case)
    found = find_annotations(burned.image)
    measured, bar = pixel_size_from_scale_bar(burned.image, bar_nm, annotations=found)
    assert measured == pytest.approx(pixel_size_nm, rel=0.02)
    assert bar.length_px == pytest.approx(burned.bar_length_px, abs=1.0)
    assert bar.has_label
    assert bar.has_end_ticks == bool(case.get("ticks_px"))
    drawn = burned.coverage > 0.25
    assert not (drawn & ~found.mask).any(), "an overlay pixel is not masked"
    kinds = {item.kind for item in found.items}
    assert {"scale bar", "text"} <= kinds
    assert ("data bar" in kinds) == bool(case.get("strip_px"))
    # nothing far from the overlays is masked
    near = np.zeros_like(drawn)
    rows, cols = np.nonzero(drawn)
    near[max(rows.min() - 12, 0):rows.max() + 13, max(cols.min() - 12, 0):cols.max() + 13] = True
    if not case.get("strip_px"):
        assert not (found.mask & ~near).any()
        assert found.masked_fraction < 0.1


def test_pil_bar_and_default_font_label_integer_length(micrograph):
    from PIL import Image, ImageDraw, ImageFont

    image, _ = micrograph
    canvas = Image.fromarray(export_8bit(image))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle([40, 340, 40 + 119, 345], fill=255)  # 120 px, both ends inclusive
    draw.text((80, 322), "50 nm", fill=255, font=ImageFont.load_default())
    array = np.asarray(canvas)
    found = find_annotations(array)
    bar = measure_scale_bar(array, found)
    assert bar is not None and bar.length_px == pytest.approx(120.0, abs=0.3)
    assert pixel_size_from_scale_bar(array, 50, found)[0] == pytest.approx(50 / 120, rel=0.01)
    glyphs = (array.astype(int) - export_8bit(image).astype(int)) > 40
    glyphs[338:, :] = False  # the label only
    assert glyphs.sum() > 20 and found.mask[glyphs].all()
    assert {item.kind for item in found.items} == {"scale bar", "text"}


def test_png_round_trip_through_read_micrograph(micrograph, tmp_path):
    from PIL import Image

    from etem_helpers.io import read_micrograph

    image, pixel_size_nm = micrograph
    bar_nm = _bar_nm(pixel_size_nm, 0.25)
    burned = burn_in_scale_bar(image, bar_length_px=bar_nm / pixel_size_nm, label=f"{bar_nm} nm")
    path = tmp_path / "export.png"
    Image.fromarray(burned.image).save(path)
    micro = read_micrograph(path, require_calibration=False)
    measured, _ = pixel_size_from_scale_bar(micro.image, bar_nm)
    assert measured == pytest.approx(pixel_size_nm, rel=0.02)


@pytest.mark.parametrize("regime", ["lowmag", "hrtem"])
@pytest.mark.parametrize("seed", [0, 1])
def test_nothing_found_on_clean_simulated_images(regime, seed):
    params = sample_params(np.random.default_rng(100 + seed), regime, 256)
    image = simulate_micrograph(params, seed=seed).image
    for version in (image, export_8bit(image), export_8bit(image, saturated_percent=1.0)):
        found = find_annotations(version)
        assert not found.found and not found.mask.any() and not found.scale_bars


def test_nothing_found_on_real_images(shared_real_dir):
    from PIL import Image

    paths = sorted((shared_real_dir / "images").glob("image_*.png"))
    assert len(paths) == 20
    for path in paths:
        image = np.asarray(Image.open(path))[..., 0]
        for version in (image, export_8bit(image, saturated_percent=2.0)):
            found = find_annotations(version)
            assert not found.found, f"{path.name}: {found.items}"


def test_no_bar_or_ambiguous_bars_give_clear_errors(micrograph):
    image, _ = micrograph
    clean = export_8bit(image)
    assert measure_scale_bar(clean) is None
    with pytest.raises(ValueError, match=r"scale_bar_nm=100.*no scale bar found.*pixel_size_nm"):
        pixel_size_from_scale_bar(clean, 100)
    two = clean.copy()
    two[300:305, 20:120] = 255
    two[40:45, 250:330] = 255
    with pytest.raises(ValueError, match=r"scale_bar_nm=100.*ambiguous"):
        pixel_size_from_scale_bar(two, 100)
    for bad in (0, -5, float("nan"), "100", True):
        with pytest.raises(ValueError, match="scale_bar_nm"):
            pixel_size_from_scale_bar(two, bad)


def test_mask_annotations_leaves_no_edge(micrograph):
    image, pixel_size_nm = micrograph
    burned = burn_in_scale_bar(image, bar_length_px=100.0, label="x nm", strip_px=30)
    found = find_annotations(burned.image)
    cleaned = mask_annotations(burned.image, found)
    assert cleaned.dtype == np.float32
    outside = ~found.mask
    np.testing.assert_array_equal(cleaned[outside], burned.image[outside].astype(np.float32))
    # the filled pixels look like the background: no saturated values, same level
    background = burned.image[outside].astype(np.float64)
    low, high = np.percentile(background, [1, 99])
    assert np.percentile(cleaned[found.mask], 99) < high + 0.1 * (high - low)
    assert np.percentile(cleaned[found.mask], 1) > low - 0.1 * (high - low)
    assert not find_annotations(cleaned).found
    np.testing.assert_array_equal(cleaned, mask_annotations(burned.image, found))  # seeded
    with pytest.raises(ValueError, match="annotations"):
        mask_annotations(burned.image, np.zeros((3, 3), dtype=bool))


def test_drop_masked_particles():
    labels = np.zeros((20, 20), dtype=np.int32)
    labels[1:5, 1:5] = 1  # fully masked
    labels[8:12, 8:12] = 2  # a quarter masked: kept, loses the masked pixels
    labels[15:18, 15:18] = 3
    mask = np.zeros_like(labels, dtype=bool)
    mask[0:6, 0:6] = True
    mask[8:10, 8:10] = True
    out = drop_masked_particles(labels, mask)
    assert out.dtype == np.int32
    assert set(np.unique(out)) == {0, 1, 2}
    assert not out[mask].any()
    assert np.count_nonzero(out == 1) == 12 and np.count_nonzero(out == 2) == 9
    assert drop_masked_particles(labels, Annotations(mask=mask)).tolist() == out.tolist()


def test_analyze_after_masking_reports_no_particle_on_bar_or_text(micrograph):
    from etem_helpers import analyze

    image, pixel_size_nm = micrograph
    bar_nm = _bar_nm(pixel_size_nm)
    burned = burn_in_scale_bar(image, bar_length_px=bar_nm / pixel_size_nm,
                               label=f"{bar_nm} nm", colour="black", font_px=22.0,
                               thickness_px=8.0)
    found = find_annotations(burned.image)
    measured, _ = pixel_size_from_scale_bar(burned.image, bar_nm, found)
    result = analyze(mask_annotations(burned.image, found), measured, device="cpu")
    labels = drop_masked_particles(result.labels, found)
    assert not (labels[burned.coverage > 0.05] > 0).any(), "a particle on the bar or its text"
    assert labels.max() > 0  # the micrograph's own particles are still found
    # every particle left is one of the micrograph's own (found on the image without overlays)
    clean = analyze(export_8bit(image), measured, device="cpu").labels
    for particle_id in range(1, int(labels.max()) + 1):
        assert (clean[labels == particle_id] > 0).any(), f"particle {particle_id} is new"


def test_strip_annotations_one_call(micrograph):
    import json

    image, pixel_size_nm = micrograph
    bar_nm = _bar_nm(pixel_size_nm)
    burned = burn_in_scale_bar(image, bar_length_px=bar_nm / pixel_size_nm,
                               label=f"{bar_nm} nm", strip_px=30)
    stripped = strip_annotations(burned.image, scale_bar_nm=bar_nm)
    assert stripped.pixel_size_nm == pytest.approx(pixel_size_nm, rel=0.02)
    assert stripped.image.dtype == np.float32 and stripped.image.shape == image.shape
    info = json.loads(json.dumps(stripped.to_info()))
    assert info["scale_bar_used"]["length_px"] == pytest.approx(bar_nm / pixel_size_nm, abs=1)
    assert {"scale bar", "text", "data bar"} <= {item["kind"] for item in info["items"]}
    plain = strip_annotations(export_8bit(image))
    assert plain.pixel_size_nm is None and not plain.annotations.found
    np.testing.assert_array_equal(plain.image, export_8bit(image).astype(np.float32))
    with pytest.raises(ValueError, match="scale_bar_nm=50.*pixel_size_nm"):
        strip_annotations(export_8bit(image), scale_bar_nm=50)
