"""The mask-conditioned GAN: conditioning planes, models, crops, training, files, synthesis."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from etem_helpers.datasets.folders import iter_samples, read_particles  # noqa: E402
from etem_helpers.gan.conditioning import (  # noqa: E402
    BASE_CHANNELS,
    condition_planes,
    contact_boundaries,
    scale_value,
)
from etem_helpers.gan.data import PairedCrops, training_images  # noqa: E402
from etem_helpers.gan.model import build_discriminator, build_generator  # noqa: E402
from etem_helpers.gan.synthesis import MaskRequest, draw_masks, generate, render  # noqa: E402
from etem_helpers.gan.train import (  # noqa: E402
    GanCard,
    load_generator,
    run_gan_training,
    save_generator,
)


def _annotated(seed: int = 0, size: int = 64):
    """A tiny 'micrograph': dark discs on a noisy support, with its labels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    labels = np.zeros((size, size), dtype=np.int32)
    for k, (cy, cx, r) in enumerate([(20, 20, 9), (40, 44, 11), (20, 31, 6)], start=1):
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = k
    image = 200.0 - 80.0 * (labels > 0) + rng.normal(0, 10, labels.shape)
    return f"toy_{seed}", image.astype(np.float32), labels, 0.5


def test_contact_boundaries_marks_both_sides_of_a_contact_only():
    labels = np.zeros((6, 8), dtype=np.int32)
    labels[1:5, 1:4] = 1
    labels[1:5, 4:7] = 2
    contact = contact_boundaries(labels)
    assert contact[2, 3] and contact[2, 4]
    assert not contact[2, 1] and not contact[0, 0]
    assert contact.sum() == 8  # two columns of 4 pixels
    separate = labels.copy()
    separate[:, 4] = 0
    assert not contact_boundaries(separate).any()


def test_condition_planes_channels_and_scale():
    name, image, labels, px = _annotated()
    planes = condition_planes(labels, px, rng=np.random.default_rng(0))
    assert planes.shape == (len(BASE_CHANNELS), *labels.shape)
    np.testing.assert_array_equal(planes[0], (labels > 0).astype(np.float32))
    assert np.all(planes[2] == scale_value(px)) and scale_value(0.5) == 0.0
    assert scale_value(1.0) > 0 > scale_value(0.25)
    with_sim = condition_planes(labels, px, rng=np.random.default_rng(0), simulated=image)
    assert with_sim.shape[0] == len(BASE_CHANNELS) + 1
    assert with_sim[-1].min() >= -1 and with_sim[-1].max() <= 1
    with pytest.raises(ValueError, match="pixel_size_nm"):
        condition_planes(labels, 0.0, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="simulated"):
        condition_planes(labels, px, rng=np.random.default_rng(0), simulated=image[:10])


@pytest.mark.parametrize("preset", ["light", "paper"])
def test_generator_and_discriminator_shapes(preset):
    generator = build_generator(preset, in_channels=4, seed=0)
    discriminator = build_discriminator(preset, in_channels=4, seed=0)
    x = torch.randn(2, 4, 64, 64)
    with torch.no_grad():
        y = generator.eval()(x)
        scores = discriminator(torch.cat([x, y], 1))
    assert y.shape == (2, 1, 64, 64)
    assert float(y.abs().max()) <= 1.0
    assert scores.shape[:2] == (2, 1) and scores.shape[-1] > 1  # one score per patch
    with pytest.raises(ValueError, match="preset"):
        build_generator("huge", in_channels=4)
    with pytest.raises(ValueError, match="in_channels"):
        build_discriminator(preset, in_channels=0)


def test_paired_crops_are_deterministic_and_follow_the_epoch():
    images = training_images([_annotated(0), _annotated(1)])
    crops = PairedCrops(images, crop_px=32, crops_per_epoch=4, seed=3)
    a_cond, a_img = crops.pair(1)
    b_cond, b_img = crops.pair(1)
    np.testing.assert_array_equal(a_cond, b_cond)
    np.testing.assert_array_equal(a_img, b_img)
    assert a_cond.shape == (4, 32, 32) and a_img.shape == (1, 32, 32)
    assert a_img.min() >= -1 and a_img.max() <= 1
    crops.set_epoch(1)
    assert not np.array_equal(crops.pair(1)[1], a_img)
    # the image stays registered with its mask: particles are dark in the toy images
    fg = a_cond[0] > 0.5
    assert a_img[0][fg].mean() < a_img[0][~fg].mean()
    with pytest.raises(ValueError, match="crop_px"):
        PairedCrops(images, crop_px=30)
    with pytest.raises(ValueError, match="with_simulation"):
        PairedCrops(images, crop_px=32, with_simulation=True)


def test_training_images_turns_a_binary_mask_into_instances():
    name, image, labels, px = _annotated()
    (item,) = training_images([(name, image, labels > 0, px)])
    assert item.labels.max() == 2  # the two touching discs are one blob, plus one
    with pytest.raises(ValueError, match="same shape"):
        training_images([(name, image, labels[:10], px)])
    with pytest.raises(ValueError, match="empty"):
        training_images([])


def test_smoke_training_save_load_and_generate(tmp_path):
    images = training_images([_annotated(0), _annotated(1)])
    config = {"crop_px": 32, "crops_per_epoch": 8, "batch_size": 4, "epochs": 2, "seed": 0,
              "device": "cpu"}
    out = tmp_path / "gan.pt"
    generator, card, history = run_gan_training(images, config, out, progress=False)
    assert len(history["loss_d"]) == 2 and all(np.isfinite(history["loss_g_l1"]))
    assert card.training_images == ("toy_0", "toy_1") and card.pixel_size_nm == 0.5
    assert json.loads(out.with_name("gan.history.json").read_text())["epoch"] == [1, 2]
    with pytest.raises(FileExistsError, match="overwrite"):
        run_gan_training(images, config, out, progress=False)
    # weights_only loading gives the same images (float16 storage: close, not identical)
    loaded, loaded_card = load_generator(out)
    assert loaded_card == card
    labels = _annotated()[2]
    a = render(generator.eval(), labels, 0.5, seed=1)
    b = render(loaded, labels, 0.5, seed=1)
    np.testing.assert_allclose(a, b, atol=0.02)
    assert torch.load(out, weights_only=True)["format"] == "etem_helpers.gan_generator"

    dataset = generate(out, tmp_path / "gan_data", 2, image_size_px=64,
                       request=MaskRequest(diameter_range_nm=(4.0, 8.0), n_particles=3,
                                           kinds=("round", "rod")), progress=False)
    samples = list(iter_samples(dataset))
    assert [s[0] for s in samples] == ["gan_00000", "gan_00001"]
    for _, image, true_labels, px in samples:
        assert image.shape == (64, 64) and px == 0.5 and true_labels.max() >= 1
    particles = read_particles(dataset)
    assert set(particles["micrograph_id"]) <= {"gan_00000", "gan_00001"}
    assert len(particles) == sum(int(s[2].max()) for s in samples)
    # a folder written by generate may be replaced; anything else is refused, untouched
    with pytest.raises(FileExistsError, match="overwrite"):
        generate(out, dataset, 1, image_size_px=64, progress=False)
    generate(out, dataset, 1, image_size_px=64, overwrite=True, progress=False)
    assert len(list((dataset / "images").iterdir())) == 1
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="nothing was deleted"):
        generate(out, foreign, 1, image_size_px=64, overwrite=True, progress=False)
    assert (foreign / "notes.txt").read_text() == "keep"


def test_save_generator_refuses_a_mismatched_card(tmp_path):
    generator = build_generator("light", in_channels=4, seed=0)
    card = GanCard(preset="light", channels=BASE_CHANNELS + ("simulated",), pixel_size_nm=0.5)
    with pytest.raises(ValueError, match="does not match"):
        save_generator(tmp_path / "g.pt", generator, card)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_generator(tmp_path / "missing.pt")


def test_draw_masks_follows_the_request():
    request = MaskRequest(diameter_range_nm=(20.0, 30.0), kinds=("rod",), n_particles=6,
                          touching_fraction=0.0)
    masks = draw_masks(2, request, image_size_px=256, pixel_size_nm=0.5, seed=4)
    again = draw_masks(2, request, image_size_px=256, pixel_size_nm=0.5, seed=4)
    np.testing.assert_array_equal(masks[0][0], again[0][0])
    table = masks[0][1]
    assert set(table["kind"]) == {"rod"}
    inside = table[~table["touches_border"].astype(bool)]
    assert (inside["aspect_ratio"] > 1.0).all()
    rounds = draw_masks(1, MaskRequest(diameter_range_nm=(20.0, 30.0), kinds=("round",),
                                       n_particles=6, outline_roughness=0.0),
                        image_size_px=256, pixel_size_nm=0.5, seed=4)[0][1]
    whole = rounds[~rounds["touches_border"].astype(bool)]
    assert whole["aspect_ratio"].median() < inside["aspect_ratio"].median()
    with pytest.raises(ValueError, match="kinds"):
        draw_masks(1, MaskRequest(kinds=("cube",)))
    with pytest.raises(ValueError, match="n_images"):
        draw_masks(0)


def test_combine_datasets_copies_and_prefixes(tmp_path):
    from etem_helpers.datasets.combine import combine_datasets
    from etem_helpers.simulate import generate_dataset

    a = generate_dataset(2, tmp_path / "a", image_size_px=64, progress=False, regime="lowmag")
    b = generate_dataset(1, tmp_path / "b", image_size_px=64, progress=False, regime="lowmag",
                         seed=5)
    both = combine_datasets({"sim": a, "other": b}, tmp_path / "both")
    ids = [s[0] for s in iter_samples(both)]
    assert ids == ["sim_sim_00000", "sim_sim_00001", "other_sim_00000"]
    originals = {mid: labels for mid, _, labels, _ in iter_samples(a)}
    for mid, _, labels, _ in iter_samples(both):
        if mid.startswith("sim_"):
            np.testing.assert_array_equal(labels, originals[mid[4:]])
    particles = read_particles(both)
    assert set(particles["source"]) == {"sim", "other"}
    assert (a / "manifest.csv").is_file()  # sources untouched
    with pytest.raises(FileExistsError):
        combine_datasets({"sim": a}, tmp_path / "both")
    with pytest.raises(ValueError, match="source name"):
        combine_datasets({"a/b": a}, tmp_path / "other")


def test_conditioning_fidelity_scores_a_perfect_and_a_blind_segmenter():
    from etem_helpers.gan.judge import conditioning_fidelity

    generator = build_generator("light", in_channels=4, seed=0).eval()
    request = MaskRequest(diameter_range_nm=(8.0, 12.0), n_particles=4, touching_fraction=0.0)
    masks = {}

    def oracle(image, px):  # returns the mask the image was drawn from
        return masks[image.tobytes()]

    import etem_helpers.gan.judge as judge

    original = judge.render

    def remember(generator, labels, px, **kw):
        image = original(generator, labels, px, **kw)
        masks[image.tobytes()] = labels
        return image

    judge.render = remember
    try:
        perfect = conditioning_fidelity(generator, oracle, pixel_size_nm=0.5, n_images=2,
                                        request=request, image_size_px=64)
        blind = conditioning_fidelity(generator, lambda im, px: np.zeros(im.shape, np.int32),
                                      pixel_size_nm=0.5, n_images=2, request=request,
                                      image_size_px=64)
    finally:
        judge.render = original
    assert perfect["pixel_dice"] == 1.0 and perfect["f1"] == 1.0
    assert perfect["diameter_error"] == 0.0 and perfect["median_area_ratio"] == 1.0
    assert blind["f1"] == 0.0 and blind["pixel_dice"] == 0.0
    assert len(perfect["images"]) == len(perfect["masks"]) == 2


def test_etem_gan_command(tmp_path, capsys):
    from etem_helpers.cli import main

    images = training_images([_annotated(0)])
    out = tmp_path / "g.pt"
    run_gan_training(images, {"crop_px": 32, "crops_per_epoch": 4, "batch_size": 4, "epochs": 1,
                              "device": "cpu"}, out, progress=False)
    assert main(["gan", "generate", "--generator", str(out), "--out", str(tmp_path / "d"),
                 "--n-images", "1", "--image-size-px", "64", "--diameter-range-nm", "4", "8",
                 "--kinds", "round", "rod"]) == 0
    assert len(list(iter_samples(tmp_path / "d"))) == 1
    assert main(["gan", "generate", "--generator", str(out), "--out", str(tmp_path / "d"),
                 "--n-images", "1", "--image-size-px", "64"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["gan", "generate", "--generator", str(tmp_path / "none.pt"), "--out",
                 str(tmp_path / "e"), "--n-images", "1"]) == 2
    assert not (tmp_path / "e").exists()


def test_shipped_generator_loads_safely_and_says_where_it_came_from():
    from etem_helpers.datasets.real import SINTERING_CALIBRATION_IDS
    from etem_helpers.gan.train import DEFAULT_GENERATOR_PATH, load_gan_config

    assert DEFAULT_GENERATOR_PATH.is_file(), "the shipped light generator is missing"
    assert DEFAULT_GENERATOR_PATH.stat().st_size < 10 * 2**20  # under 10 MB (issue #11)
    payload = torch.load(DEFAULT_GENERATOR_PATH, map_location="cpu", weights_only=True)
    assert payload["format"] == "etem_helpers.gan_generator"
    generator, card = load_generator("default")
    # learned only from the calibration images, never from the evaluation images
    assert card.training_images == SINTERING_CALIBRATION_IDS
    assert card.preset == "light" and card.channels == BASE_CHANNELS
    config_file = DEFAULT_GENERATOR_PATH.with_name("gan_light_config.json")
    assert load_gan_config(card.config) == load_gan_config(config_file)
    assert DEFAULT_GENERATOR_PATH.with_name("gan_light_report.md").is_file()
    labels = draw_masks(1, MaskRequest(n_particles=4), image_size_px=128, seed=0)[0][0]
    image = render(generator, labels, card.pixel_size_nm, seed=0)
    # particles are darker than the support, as in the real bright-field images
    assert image[labels > 0].mean() < image[labels == 0].mean() - 0.2


def _runs(condition, f1s, dices):
    keys = ("precision", "recall", "foreground_ratio", "median_area_ratio", "diameter_bias")
    return [{"condition": condition, "seed": k,
             "real": {"f1": f, "pixel_dice": d, **dict.fromkeys(keys, 1.0)}}
            for k, (f, d) in enumerate(zip(f1s, dices, strict=True))]


def test_downstream_decision_rule_needs_a_gain_beyond_the_seed_spread():
    from etem_helpers.gan.judge import decide_downstream, summarise_downstream

    a = _runs("a", [0.80, 0.82, 0.81], [0.90, 0.91, 0.90])
    summary = summarise_downstream(a + _runs("b", [0.90, 0.91, 0.89], [0.91, 0.92, 0.90]))
    assert summary["a"]["f1"]["range"] == pytest.approx(0.02)
    assert summary["b"]["f1"]["mean"] == pytest.approx(0.90)
    assert decide_downstream(summary).startswith("(b) beats (a)")
    # the same mean gain inside a wide seed spread decides nothing
    wide = summarise_downstream(_runs("a", [0.95, 0.82, 0.66], [0.90, 0.91, 0.90])
                                + _runs("b", [0.90, 0.91, 0.89], [0.91, 0.92, 0.90]))
    assert decide_downstream(wide).startswith("(b) does not beat (a)")
    # a gain in F1 paid for with a Dice drop beyond its spread does not count either
    worse = summarise_downstream(a + _runs("b", [0.90, 0.91, 0.89], [0.80, 0.81, 0.80]))
    assert decide_downstream(worse).startswith("(b) does not beat (a)")
    assert decide_downstream(summarise_downstream(a)).startswith("undecided")


def test_a_generator_conditioned_on_the_simulated_image_trains_and_generates(tmp_path):
    from dataclasses import replace

    from etem_helpers.gan.conditioning import to_signed_unit

    items = training_images([_annotated(0), _annotated(1)])
    rng = np.random.default_rng(0)
    # a stand-in "simulated image" of each mask: the mask blurred, plus noise
    items = [replace(item, simulated=to_signed_unit(
        (item.labels > 0) * 1.0 + rng.normal(0, 0.1, item.labels.shape))) for item in items]
    out = tmp_path / "sim_gan.pt"
    _, card, _ = run_gan_training(items, {"crop_px": 32, "crops_per_epoch": 4, "batch_size": 4,
                                          "epochs": 1, "device": "cpu"}, out, progress=False)
    assert card.with_simulation and card.channels[-1] == "simulated"
    dataset = generate(out, tmp_path / "d", 1, image_size_px=64,
                       request=MaskRequest(diameter_range_nm=(4.0, 8.0), n_particles=3),
                       progress=False)
    ((_, image, labels, _),) = list(iter_samples(dataset))
    assert image.shape == labels.shape == (64, 64) and np.isfinite(image).all()
