"""Fine-tuning on a user's annotated micrographs: pairing, masks, a smoke-size run, the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from etem_helpers import cli
from etem_helpers.datasets.annotated import pair_files, read_mask, write_annotated_dataset
from etem_helpers.io import write_micrograph
from etem_helpers.pipeline import Analyzer
from etem_helpers.preprocess import Normalization
from etem_helpers.segmentation import ModelCard, build_unet, load_checkpoint, save_checkpoint
from etem_helpers.segmentation.finetune import FinetuneSettings, finetune
from etem_helpers.simulate import sample_params, simulate_micrograph


def _annotated_folders(root, n=3, size=96):
    images, masks = root / "images", root / "masks"
    images.mkdir()
    masks.mkdir()
    for i in range(n):
        params = sample_params(np.random.default_rng(i), "lowmag", image_size_px=size)
        sim = simulate_micrograph(params, seed=i)
        write_micrograph(images / f"m{i}.mrc", sim.image.astype(np.float32),
                         params.pixel_size_nm)
        Image.fromarray(((sim.labels > 0) * 255).astype(np.uint8)).save(masks / f"m{i}.png")
    return images, masks


@pytest.fixture
def tiny_base(tmp_path):
    card = ModelCard(preset="tiny", normalization=Normalization(), pixel_size_nm=0.5,
                     pixel_size_range_nm=(0.05, 2.0), tile_px=64)
    return save_checkpoint(tmp_path / "base.pt", build_unet("tiny", seed=0), card)


def test_pairs_by_name_and_refuses_an_image_without_mask(tmp_path):
    images, masks = _annotated_folders(tmp_path, n=2, size=64)
    assert [p.name for p in pair_files(images, masks)] == ["m0", "m1"]
    (images / "m9.mrc").write_bytes((images / "m0.mrc").read_bytes())
    with pytest.raises(FileNotFoundError, match="m9.mrc"):
        pair_files(images, masks)


def test_binary_masks_become_instances_and_labels_stay(tmp_path):
    mask = np.zeros((20, 20), np.uint8)
    mask[2:6, 2:6] = 255
    mask[10:15, 10:15] = 255
    Image.fromarray(mask).save(tmp_path / "a.png")
    assert read_mask(tmp_path / "a.png").max() == 2
    labels = np.zeros((20, 20), np.uint16)
    labels[2:6, 2:6], labels[6:9, 2:6], labels[12:14, 12:14] = 1, 2, 3  # 1 and 2 touch
    tifffile.imwrite(tmp_path / "b.tif", labels)
    assert np.array_equal(read_mask(tmp_path / "b.tif"), labels.astype(np.int32))


def test_uncalibrated_images_need_a_pixel_size(tmp_path):
    images, masks = tmp_path / "i", tmp_path / "m"
    images.mkdir()
    masks.mkdir()
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(images / "a.png")
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(masks / "a.png")
    with pytest.raises(ValueError, match="pixel"):
        write_annotated_dataset(pair_files(images, masks), tmp_path / "ds")
    assert not (tmp_path / "ds").exists()
    write_annotated_dataset(pair_files(images, masks), tmp_path / "ds", pixel_size_nm=0.5)


def test_finetune_smoke_writes_a_model_that_analyze_uses(tmp_path, tiny_base):
    images, masks = _annotated_folders(tmp_path)
    out = tmp_path / "tuned.pt"
    settings = FinetuneSettings(epochs=1, tile_px=64, tiles_per_image=2, batch_size=2)
    report = finetune(images, masks, out, base_model=tiny_base, settings=settings, device="cpu")
    assert len(report["split"]["val"]) == 1 and len(report["split"]["train"]) == 2
    assert 0.0 <= report["val_f1_after"] <= 1.0 and report["seconds"] > 0
    _, card = load_checkpoint(out)
    assert card.config["finetuned_from"] == str(tiny_base)
    assert card.postprocess == report["postprocess"]
    assert (tmp_path / "tuned_report.md").is_file()
    result = Analyzer(out, device="cpu")(np.random.default_rng(0).random((64, 64)), 0.5)
    assert result.labels.shape == (64, 64)
    with pytest.raises(FileExistsError):
        finetune(images, masks, out, base_model=tiny_base, settings=settings, device="cpu")


def test_finetune_command_reports_user_errors(tmp_path, capsys):
    code = cli.main(["finetune", "--images", str(tmp_path / "none"), "--masks", str(tmp_path),
                     "--out", str(tmp_path / "m.pt")])
    assert code == 2 and "--images folder" in capsys.readouterr().err


def test_settings_are_checked():
    with pytest.raises(ValueError, match="epochs"):
        FinetuneSettings(epochs=0)
