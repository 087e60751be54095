"""Tests for etem_helpers.segmentation (U-Net presets, loss, checkpoints, tiled inference)."""

import math

import numpy as np
import pytest
import torch

from etem_helpers.preprocess import Normalization, TileStitcher, iter_tiles, tile_positions
from etem_helpers.segmentation import (
    PRESETS,
    CheckpointError,
    ModelCard,
    build_unet,
    dice_bce_loss,
    inference_tile_shape,
    load_checkpoint,
    predict_probabilities,
    save_checkpoint,
)
from etem_helpers.segmentation.checkpoint import CHECKPOINT_FORMAT_VERSION

CARD = ModelCard(
    preset="tiny",
    normalization=Normalization(method="percentile", low_percentile=0.5, high_percentile=99.5),
    pixel_size_nm=0.5,
    pixel_size_range_nm=(0.3, 0.8),
    tile_px=64,
)


class PointwiseModel(torch.nn.Module):
    """A 1x1 convolution: the exact per-pixel answer is known, so tiling errors show.

    It records the shape of every batch it is given (what a user's network sees).
    """

    def __init__(self):
        super().__init__()
        self.batch_shapes = []
        self.conv = torch.nn.Conv2d(1, 2, kernel_size=1)
        with torch.no_grad():
            self.conv.weight[:] = torch.tensor([2.0, -3.0]).view(2, 1, 1, 1)
            self.conv.bias[:] = torch.tensor([-1.0, 0.5])

    def forward(self, x):
        self.batch_shapes.append(tuple(x.shape))
        return self.conv(x)


def _expected_pointwise(image):
    image = image.astype(np.float64)
    return np.stack([1 / (1 + np.exp(-(2 * image - 1))), 1 / (1 + np.exp(-(-3 * image + 0.5)))])


@pytest.fixture(scope="module")
def tiny_model():
    return build_unet("tiny", seed=0)


# ---------------------------------------------------------------- build_unet


@pytest.mark.parametrize("preset", ["tiny", "light"])
def test_build_unet_shapes(preset):
    model = build_unet(preset, seed=0).eval()
    with torch.inference_mode():
        out = model(torch.zeros(2, 1, 64, 96))
    assert out.shape == (2, 2, 64, 96)


def test_presets_paper_is_resnet34_unet():
    assert PRESETS["paper"]["encoder_name"] == "resnet34"
    assert PRESETS["paper"]["encoder_depth"] == 5
    with pytest.raises(TypeError):
        PRESETS["mine"] = {}  # read-only


def test_build_unet_seed_is_reproducible_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = build_unet("tiny", seed=7)
    assert torch.equal(torch.rand(1), expected_next)
    b = build_unet("tiny", seed=7)
    c = build_unet("tiny", seed=8)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_build_unet_rejects_unknown_preset_and_weights():
    with pytest.raises(ValueError, match="preset"):
        build_unet("huge")
    with pytest.raises(ValueError, match="encoder_weights"):
        build_unet("tiny", encoder_weights="coco")


# ---------------------------------------------------------------- loss


def _random_targets(seed=0, shape=(2, 2, 16, 16)):
    gen = torch.Generator().manual_seed(seed)
    targets = (torch.rand(shape, generator=gen) > 0.6).float()
    targets[:, 1] *= targets[:, 0]  # boundary inside foreground
    return targets


def test_loss_is_near_zero_for_perfect_logits_and_larger_otherwise():
    targets = _random_targets()
    perfect = (targets * 2 - 1) * 30.0
    assert dice_bce_loss(perfect, targets).item() < 1e-6
    wrong = -perfect
    assert dice_bce_loss(wrong, targets).item() > 1.0
    assert dice_bce_loss(torch.zeros_like(targets), targets).item() > 0.5


def test_loss_gradient_flows_to_both_channels():
    targets = _random_targets(seed=1)
    logits = torch.zeros_like(targets, requires_grad=True)
    dice_bce_loss(logits, targets).backward()
    assert torch.isfinite(logits.grad).all()
    assert logits.grad[:, 0].abs().sum() > 0 and logits.grad[:, 1].abs().sum() > 0


def test_loss_alpha_one_is_pure_soft_dice():
    targets = _random_targets(seed=2)
    logits = torch.randn(targets.shape, generator=torch.Generator().manual_seed(3))
    p, y = torch.sigmoid(logits[:, 0]), targets[:, 0]
    dice = 1 - (2 * (p * y).sum() + 1) / (p.sum() + y.sum() + 1)
    got = dice_bce_loss(logits, targets, alpha=1.0, boundary_weight=0.0)
    assert torch.allclose(got, dice, atol=1e-6)
    # alpha=0 is pure BCE on the foreground channel
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 0], y)
    assert torch.allclose(dice_bce_loss(logits, targets, alpha=0.0, boundary_weight=0.0), bce)
    # the boundary term adds a positive amount
    assert dice_bce_loss(logits, targets, alpha=1.0, boundary_weight=1.0) > got


def test_loss_rejects_bad_arguments():
    targets = _random_targets()
    with pytest.raises(ValueError, match="alpha"):
        dice_bce_loss(targets, targets, alpha=1.5)
    with pytest.raises(ValueError, match="differ"):
        dice_bce_loss(targets, targets[..., :8])


# ---------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path, tiny_model):
    card = CARD.replace(
        metrics={"val_dice": np.float32(0.9), "epochs": np.int64(3)},
        config={"tile_px": 64, "sizes": (1, 2)},
    )
    path = save_checkpoint(tmp_path / "sub" / "model.pt", tiny_model, card)
    assert path.is_file()
    model, loaded = load_checkpoint(path)
    assert not model.training
    x = torch.randn(1, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    tiny_model.eval()
    with torch.inference_mode():
        assert torch.equal(model(x), tiny_model(x))
    assert isinstance(loaded, ModelCard)
    assert loaded.preset == "tiny" and loaded.pixel_size_nm == 0.5
    assert loaded.pixel_size_range_nm == (0.3, 0.8)
    assert loaded.normalization == CARD.normalization
    assert loaded.metrics == {"val_dice": pytest.approx(0.9), "epochs": 3}
    assert type(loaded.metrics["val_dice"]) is float
    assert loaded.config == {"tile_px": 64, "sizes": [1, 2]}
    from etem_helpers._version import __version__

    assert loaded.etem_helpers_version == __version__
    assert not hasattr(loaded, "state_dict")
    # plain types: loadable by torch with weights_only=True directly
    raw = torch.load(path, weights_only=True)
    assert raw["normalization"]["method"] == "percentile"


def test_save_checkpoint_refuses_overwrite_and_bad_metadata(tmp_path, tiny_model):
    path = save_checkpoint(tmp_path / "m.pt", tiny_model, CARD)
    with pytest.raises(FileExistsError, match="overwrite"):
        save_checkpoint(path, tiny_model, CARD)
    save_checkpoint(path, tiny_model, CARD, overwrite=True)
    with pytest.raises(TypeError, match="plain"):
        CARD.replace(config={"f": object()})
    with pytest.raises(ValueError, match="preset"):
        save_checkpoint(tmp_path / "y.pt", tiny_model, CARD.replace(preset="light"))
    with pytest.raises(ValueError, match="pixel_size_nm"):
        CARD.replace(pixel_size_nm=0)
    with pytest.raises(TypeError, match="ModelCard"):
        save_checkpoint(tmp_path / "x.pt", tiny_model, CARD.to_dict())
    assert not (tmp_path / "x.pt").exists() and not (tmp_path / "y.pt").exists()


def test_load_checkpoint_errors_name_the_file(tmp_path, tiny_model):
    missing = tmp_path / "nothere.pt"
    with pytest.raises(CheckpointError, match="nothere.pt"):
        load_checkpoint(missing)

    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match="garbage.pt"):
        load_checkpoint(garbage)

    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(CheckpointError, match="not an etem_helpers"):
        load_checkpoint(foreign)

    good = save_checkpoint(tmp_path / "good.pt", tiny_model, CARD)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated.pt"):
        load_checkpoint(truncated)

    checkpoint = torch.load(good, weights_only=True)
    for name, edit, message in [
        ("wrong_preset.pt", {"preset": "light"}, "do not fit"),
        ("unknown_preset.pt", {"preset": "gigantic"}, "unknown"),
        ("future.pt", {"format_version": CHECKPOINT_FORMAT_VERSION + 1}, "upgrade"),
    ]:
        torch.save({**checkpoint, **edit}, tmp_path / name)
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(tmp_path / name)

    state = dict(checkpoint["state_dict"])
    state.pop(next(iter(state)))
    torch.save({**checkpoint, "state_dict": state}, tmp_path / "missing_key.pt")
    with pytest.raises(CheckpointError, match="missing_key.pt"):
        load_checkpoint(tmp_path / "missing_key.pt")
    no_weights = {k: v for k, v in checkpoint.items() if k != "state_dict"}
    torch.save(no_weights, tmp_path / "no_weights.pt")
    with pytest.raises(CheckpointError, match="state_dict"):
        load_checkpoint(tmp_path / "no_weights.pt")


# ---------------------------------------------------------------- tiled inference


@pytest.mark.parametrize("shape", [(100, 150), (20, 300), (64, 64), (7, 5), (130, 97)])
def test_tiling_and_blending_are_exact_for_a_pointwise_model(shape):
    image = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    out = predict_probabilities(PointwiseModel(), image, tile_px=64, overlap_px=16, batch_size=3)
    assert out.shape == (2, *shape) and out.dtype == np.float32
    np.testing.assert_allclose(out, _expected_pointwise(image), atol=1e-5)


def test_prediction_holds_at_most_batch_size_tiles_and_covers_the_image():
    image = np.random.default_rng(4).normal(size=(300, 200)).astype(np.float32)
    model = PointwiseModel()
    out = predict_probabilities(model, image, tile_px=64, overlap_px=16, batch_size=4)
    # Stitched tiles give the whole-image answer everywhere (every pixel covered).
    np.testing.assert_allclose(out, _expected_pointwise(image), atol=1e-5)
    sizes = [shape[0] for shape in model.batch_shapes]
    assert max(sizes) <= 4 and all(shape[1:] == (1, 64, 64) for shape in model.batch_shapes)
    # Tiles per axis: ceil((L - overlap) / (tile - overlap)).
    expected = math.ceil((300 - 16) / 48) * math.ceil((200 - 16) / 48)
    assert sum(sizes) == expected


def test_predict_unet_any_size_deterministic_and_mode_restored(tiny_model):
    image = np.random.default_rng(0).random((90, 133)).astype(np.float32)
    tiny_model.train()
    first = predict_probabilities(tiny_model, image, tile_px=64, overlap_px=16)
    assert tiny_model.training  # mode restored
    second = predict_probabilities(tiny_model, image, tile_px=64, overlap_px=16)
    np.testing.assert_array_equal(first, second)
    assert first.shape == (2, 90, 133)
    assert (first >= 0).all() and (first <= 1).all()


def test_tta_is_flip_equivariant(tiny_model):
    # One exact tile (no padding), so flipping the input only flips the output.
    image = np.random.default_rng(2).random((64, 64)).astype(np.float32)
    kwargs = dict(tile_px=64, overlap_px=16)
    out = predict_probabilities(tiny_model, image, tta=True, **kwargs)
    flipped = predict_probabilities(tiny_model, image[:, ::-1].copy(), tta=True, **kwargs)
    np.testing.assert_allclose(flipped[:, :, ::-1], out, atol=1e-5)
    plain = predict_probabilities(tiny_model, image, tta=False, **kwargs)
    assert not np.allclose(plain, out, atol=1e-6)  # random net is not flip-invariant


def test_predict_rejects_bad_input(tiny_model):
    with pytest.raises(ValueError, match="2-D"):
        predict_probabilities(tiny_model, np.zeros((1, 32, 32)))
    with pytest.raises(ValueError, match="NaN"):
        predict_probabilities(tiny_model, np.full((32, 32), np.nan))
    with pytest.raises(ValueError, match="tile_px"):
        predict_probabilities(PointwiseModel(), np.zeros((32, 32)), tile_px=100)
    with pytest.raises(ValueError, match="overlap_px"):
        predict_probabilities(tiny_model, np.zeros((32, 32)), tile_px=64, overlap_px=64)


def test_inference_uses_rectangular_tiles_on_a_thin_image():
    # An axis shorter than a tile gets one tile just large enough (a multiple of 32).
    assert inference_tile_shape((20, 300), tile_px=64) == (32, 64)
    assert inference_tile_shape((1024, 1024), tile_px=544) == (544, 544)
    image = np.random.default_rng(5).normal(size=(20, 300)).astype(np.float32)
    model = PointwiseModel()
    out = predict_probabilities(model, image, tile_px=64, overlap_px=16)
    np.testing.assert_allclose(out, _expected_pointwise(image), atol=1e-5)
    positions = tile_positions((20, 300), tile_px=(32, 64), overlap_px=16)
    assert set(positions[:, 0]) == {0} and positions[-1, 1] + 64 == 300
    assert {shape[2:] for shape in model.batch_shapes} == {(32, 64)}
    assert sum(shape[0] for shape in model.batch_shapes) == len(positions)


def test_stitcher_divides_in_place_and_is_finished_after_result():
    image = np.random.default_rng(9).random((2, 70, 90)).astype(np.float32)
    stitcher = TileStitcher((70, 90), tile_px=(32, 48), overlap_px=8, n_channels=2)
    for tile, position in iter_tiles(image, tile_px=(32, 48), overlap_px=8):
        stitcher.add(tile, position)
    out = stitcher.result()
    np.testing.assert_allclose(out, image, atol=1e-6)
    assert stitcher.result() is out
    with pytest.raises(ValueError, match="finished"):
        stitcher.add(np.zeros((2, 32, 48)), (0, 0))


def test_bfloat16_inference_is_close_to_float32_and_leaves_the_model_as_it_was():
    model = build_unet("tiny", seed=0).eval()
    image = np.random.default_rng(0).random((96, 160)).astype(np.float32)
    exact = predict_probabilities(model, image, tile_px=64, overlap_px=16)
    reduced = predict_probabilities(
        model, image, tile_px=64, overlap_px=16, precision="bfloat16"
    )
    assert reduced.dtype == np.float32 and reduced.shape == exact.shape
    assert 0 < np.abs(reduced - exact).max() < 0.05  # really computed differently, but close
    weight = next(p for p in model.parameters() if p.ndim == 4)
    assert weight.is_contiguous() and weight.dtype == torch.float32
    again = predict_probabilities(model, image, tile_px=64, overlap_px=16)
    np.testing.assert_array_equal(again, exact)
    with pytest.raises(ValueError, match="precision"):
        predict_probabilities(model, image, tile_px=64, overlap_px=0, precision="half")


def test_auto_precision_is_bfloat16_only_on_cpus_that_compute_it(monkeypatch):
    from etem_helpers import device

    assert isinstance(device.cpu_has_native_bfloat16(), bool)
    with pytest.raises(ValueError, match="precision"):
        device.inference_precision("half", "cpu")
    monkeypatch.setattr(device, "cpu_has_native_bfloat16", lambda: True)
    assert device.inference_precision("auto", "cpu") == "bfloat16"
    assert device.inference_precision("auto", torch.device("cuda")) == "float32"
    assert device.inference_precision("float32", "cpu") == "float32"
    monkeypatch.setattr(device, "cpu_has_native_bfloat16", lambda: False)
    assert device.inference_precision("auto", "cpu") == "float32"
