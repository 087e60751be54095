"""Tests for etem_helpers.segmentation.train: a real (tiny) training run on CPU, early stopping,
the CLI, and the dataset-reuse check it uses (etem_helpers.datasets.ensure_dataset)."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from etem_helpers.datasets.ensure import dataset_identity, ensure_dataset
from etem_helpers.preprocess import Normalization
from etem_helpers.segmentation import (
    DEFAULT_POSTPROCESS,
    ModelCard,
    build_unet,
    labels_to_targets,
    load_checkpoint,
    predict_probabilities,
    save_checkpoint,
)
from etem_helpers.segmentation.train import (
    checkpoint_dataset_split,
    evaluate_segmentation,
    load_config,
    main,
    run_training,
    train_segmentation,
)

SIZE = 64


def _disk_scene(rng, shape=(SIZE, SIZE)):
    """Instance labels of 2-5 random disks and an image where they are bright or dark."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, dtype=np.int32)
    for pid in range(1, int(rng.integers(2, 6)) + 1):
        radius = rng.uniform(5, 10)
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = pid
    sign = 1.0 if rng.random() < 0.5 else -1.0
    image = 0.5 + sign * 0.3 * (labels > 0) + rng.normal(0, 0.05, shape)
    return image.astype(np.float32), labels


def _tensor_dataset(n, seed):
    rng = np.random.default_rng(seed)
    images, targets = [], []
    for _ in range(n):
        image, labels = _disk_scene(rng)
        images.append(image[None])
        targets.append(labels_to_targets(labels))
    return TensorDataset(torch.from_numpy(np.stack(images)), torch.from_numpy(np.stack(targets)))


def _loaders(seed=0):
    train = DataLoader(
        _tensor_dataset(16, seed), batch_size=4, shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )  # fmt: skip
    val = DataLoader(_tensor_dataset(8, seed + 100), batch_size=4)
    return train, val


@pytest.fixture(scope="module")
def trained():
    """Three epochs of the tiny preset; the last epoch's weights are spoiled in the callback."""
    train_loader, val_loader = _loaders()
    model = build_unet("tiny", seed=0)
    seen = []

    def spoil_last_epoch(epoch, history):
        seen.append((epoch, len(history["train_loss"])))
        if epoch == 3:  # after recording epoch 3: only restoring the best weights undoes this
            with torch.no_grad():
                for parameter in model.parameters():
                    parameter.add_(0.5)

    history = train_segmentation(
        model, train_loader, val_loader, epochs=3, lr=3e-3, progress=False,
        callback=spoil_last_epoch, early_stopping_patience=None,
    )  # fmt: skip
    return model, history, seen, val_loader


def test_smoke_training_learns_and_reports_history(trained):
    model, history, seen, _ = trained
    for key in ("epoch", "train_loss", "val_loss", "val_dice", "lr", "seconds", "best_epoch"):
        assert key in history
    assert history["epoch"] == [1, 2, 3]
    assert len(history["val_dice"]) == 3 and all(0 <= d <= 1 for d in history["val_dice"])
    # With this seed the network learns: training and validation loss fall after epoch 1,
    # so the best epoch is a later one (the argmin of the monitored validation loss).
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert min(history["val_loss"][1:]) < history["val_loss"][0]
    assert history["best_epoch"] == int(np.argmin(history["val_loss"])) + 1
    assert history["best_epoch"] > 1
    assert seen == [(1, 1), (2, 2), (3, 3)]  # callback after each recorded epoch
    json.dumps(history)  # plain types


def test_best_weights_are_restored(trained):
    model, history, _, val_loader = trained
    scores = evaluate_segmentation(model, val_loader)
    best = history["best_epoch"]
    assert scores["loss"] == pytest.approx(history["val_loss"][best - 1], rel=1e-5)
    assert scores["dice"] == pytest.approx(history["val_dice"][best - 1], rel=1e-5)


def test_training_is_deterministic_on_cpu():
    runs = []
    for _ in range(2):
        train_loader, val_loader = _loaders(seed=1)
        model = build_unet("tiny", seed=1)
        history = train_segmentation(
            model, train_loader, val_loader, epochs=2, progress=False, scheduler="plateau"
        )
        runs.append((history["train_loss"], history["val_loss"], model.state_dict()))
    assert runs[0][0] == runs[1][0] and runs[0][1] == runs[1][1]
    assert all(torch.equal(runs[0][2][k], runs[1][2][k]) for k in runs[0][2])


def test_early_stopping_when_nothing_improves():
    train_loader, val_loader = _loaders(seed=2)
    model = build_unet("tiny", seed=2)
    history = train_segmentation(
        model, train_loader, val_loader, epochs=10, lr=0.0, early_stopping_patience=2,
        scheduler=None, progress=False,
    )  # fmt: skip
    assert history["stopped_early"]
    assert history["epoch"] == [1, 2, 3] and history["best_epoch"] == 1


def test_trained_checkpoint_round_trip(trained, tmp_path):
    model, history, _, _ = trained
    card = ModelCard(
        preset="tiny", normalization=Normalization(method="percentile"), pixel_size_nm=0.5,
        pixel_size_range_nm=(0.4, 0.6), tile_px=SIZE,
        metrics={"val_dice": history["val_dice"][history["best_epoch"] - 1]},
    )  # fmt: skip
    path = save_checkpoint(tmp_path / "tiny.pt", model, card)
    loaded, loaded_card = load_checkpoint(path)
    image = _disk_scene(np.random.default_rng(9), shape=(70, 90))[0]
    kwargs = dict(tile_px=SIZE, overlap_px=16)
    np.testing.assert_array_equal(
        predict_probabilities(model, image, **kwargs), predict_probabilities(loaded, image, **kwargs)
    )
    assert loaded_card.metrics["val_dice"] == history["val_dice"][history["best_epoch"] - 1]
    assert loaded_card == card.replace(torch_version=loaded_card.torch_version)


def test_train_rejects_bad_arguments():
    train_loader, _ = _loaders()
    model = build_unet("tiny", seed=0)
    with pytest.raises(ValueError, match="epochs"):
        train_segmentation(model, train_loader, epochs=0, progress=False)
    with pytest.raises(ValueError, match="scheduler"):
        train_segmentation(model, train_loader, epochs=1, scheduler="step", progress=False)
    with pytest.raises(ValueError, match="CUDA"):
        train_segmentation(model, train_loader, epochs=1, amp=True, progress=False)


def test_load_config_defaults_and_typos(tmp_path):
    config = load_config({"dataset_dir": "somewhere", "epochs": 2})
    assert config["epochs"] == 2 and config["preset"] == "light"
    with pytest.raises(ValueError, match="epoch"):
        load_config({"dataset_dir": "x", "epoch": 2})
    with pytest.raises(ValueError, match="exactly one"):
        load_config({"epochs": 2})
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        load_config(bad)


def _write_fake_dataset(root, n=4, seed=0):
    """Minimal dataset in the simulator's layout (images/*.mrc, labels/*.tif, manifest.csv)."""
    import mrcfile
    import tifffile

    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    rows = []
    for index in range(n):
        mid = f"sim_{index:05d}"
        image, labels = _disk_scene(rng, shape=(80, 96))
        with mrcfile.new(root / "images" / f"{mid}.mrc") as mrc:
            mrc.set_data(image)
            mrc.voxel_size = 5.0  # Å: 0.5 nm/px
        tifffile.imwrite(root / "labels" / f"{mid}.tif", labels.astype(np.uint16))
        rows.append(
            {"micrograph_id": mid, "image_path": f"images/{mid}.mrc",
             "labels_path": f"labels/{mid}.tif", "regime": "lowmag", "pixel_size_nm": 0.5,
             "seed": index, "n_particles": int(labels.max())}
        )  # fmt: skip
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root


def test_cli_trains_and_writes_a_loadable_checkpoint(tmp_path):
    dataset_dir = _write_fake_dataset(tmp_path / "ds")
    config = {
        "dataset_dir": str(dataset_dir), "preset": "tiny", "epochs": 1, "batch_size": 4,
        "tile_px": 64, "tiles_per_image": 2, "split_fractions": [0.5, 0.25, 0.25],
        "device": "cpu", "seed": 0,
    }  # fmt: skip
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    out = tmp_path / "model.pt"
    assert main(["--config", str(config_path), "--out", str(out), "--no-progress"]) == 0
    model, card = load_checkpoint(out)
    assert card.preset == "tiny" and card.tile_px == 64
    assert card.pixel_size_nm == pytest.approx(0.5)
    assert card.normalization.method == "percentile"
    assert 0 <= card.metrics["test_dice"] <= 1
    low, high = card.diameter_range_px  # the training particles' sizes in px, for analysis
    assert 0 < low <= high < 96
    assert json.loads((tmp_path / "model.history.json").read_text())["epoch"] == [1]
    with pytest.raises(FileExistsError, match="overwrite"):
        main(["--config", str(config_path), "--out", str(out), "--no-progress"])
    # post-processing chosen on the validation split and stored with the model
    assert set(card.postprocess) == set(DEFAULT_POSTPROCESS)
    assert 0 <= card.metrics["val_instance_f1"] <= 1
    assert card.metrics["val_instance_f1"] >= card.metrics[
        "val_instance_f1_default_postprocess"
    ]
    # --retune on an existing checkpoint gives the same settings, weights unchanged
    retuned = tmp_path / "retuned.pt"
    assert main(["--retune", str(out), "--out", str(retuned)]) == 0
    model2, card2 = load_checkpoint(retuned)
    assert card2.postprocess == card.postprocess
    for key, value in model.state_dict().items():
        assert torch.equal(value, model2.state_dict()[key]), key
    with pytest.raises(FileExistsError, match="overwrite"):
        main(["--retune", str(out), "--out", str(retuned)])


def test_float16_weights_halve_the_checkpoint_and_load_as_float32(tmp_path, capsys):
    dataset_dir = _write_fake_dataset(tmp_path / "ds")
    base = {
        "dataset_dir": str(dataset_dir), "preset": "tiny", "epochs": 1, "batch_size": 4,
        "tile_px": 64, "tiles_per_image": 2, "split_fractions": [0.5, 0.25, 0.25],
        "device": "cpu", "seed": 0,
    }  # fmt: skip
    paths = {}
    for dtype in ("float32", "float16"):
        config_path = tmp_path / f"{dtype}.json"
        config_path.write_text(json.dumps({**base, "weights_dtype": dtype}))
        paths[dtype] = tmp_path / f"{dtype}.pt"
        assert main(["--config", str(config_path), "--out", str(paths[dtype]), "--no-progress"]) == 0
    assert "epoch 1: train loss" in capsys.readouterr().out  # one log line per epoch
    assert paths["float16"].stat().st_size < 0.6 * paths["float32"].stat().st_size
    raw = torch.load(paths["float16"], weights_only=True)["state_dict"]
    assert {v.dtype for v in raw.values() if v.is_floating_point()} == {torch.float16}
    (full, _), (half, card) = load_checkpoint(paths["float32"]), load_checkpoint(paths["float16"])
    assert card.config["weights_dtype"] == "float16" and card.metrics["train_seconds"] > 0
    assert all(v.dtype == torch.float32 for v in half.state_dict().values() if v.is_floating_point())
    image = _disk_scene(np.random.default_rng(3), shape=(64, 64))[0]
    np.testing.assert_allclose(
        predict_probabilities(half, image, tile_px=64, overlap_px=0),
        predict_probabilities(full, image, tile_px=64, overlap_px=0),
        atol=0.02,
    )
    with pytest.raises(ValueError, match="weights_dtype"):
        load_config({**base, "weights_dtype": "int8"})


def test_a_dataset_from_another_simulator_revision_is_not_reused(tmp_path):
    out = _write_fake_dataset(tmp_path / "sim")
    settings = {"regime": "lowmag", "image_size_px": 96}
    identity = dataset_identity({"n_images": 4, "seed": 3, **settings})
    info = {
        "arguments": {"n_images": 4, "seed": 3, **settings},
        "simulator_revision": identity["simulator_revision"],
        "generator_version": identity["generator_version"],
    }
    (out / "dataset.json").write_text(json.dumps(info))
    status = ensure_dataset(out, 4, seed=3, **settings)
    assert status.path == out and status.reused  # same revision, version and settings
    for changed in ({**info, "simulator_revision": info["simulator_revision"] - 1},
                    {**info, "generator_version": "0.0.0"},
                    {**info, "arguments": {**info["arguments"], "seed": 4}}):  # fmt: skip
        (out / "dataset.json").write_text(json.dumps(changed))
        with pytest.raises(FileExistsError, match="delete that folder"):
            ensure_dataset(out, 4, seed=3, **settings)
    assert (out / "manifest.csv").is_file()  # nothing was deleted



def test_extra_training_images_join_the_training_split_only(tmp_path):
    from etem_helpers.segmentation.train import _concat_training_sets

    dataset_dir = _write_fake_dataset(tmp_path / "ds")
    extra = {"n_images": 2, "out_dir": str(tmp_path / "extra"), "seed": 5, "regime": "lowmag",
             "image_size_px": 96, "progress": False}
    config = {
        "dataset_dir": str(dataset_dir), "preset": "tiny", "epochs": 1, "batch_size": 4,
        "tile_px": 64, "tiles_per_image": 2, "split_fractions": [0.5, 0.25, 0.25],
        "device": "cpu", "seed": 0, "extra_train_simulate": extra,
    }  # fmt: skip
    out = tmp_path / "model.pt"
    run_training(config, out, progress=False)
    _, card = load_checkpoint(out)
    assert card.config["extra_train_dataset_dir"] == str(tmp_path / "extra")
    assert len(list((tmp_path / "extra" / "images").iterdir())) == 2
    # validation and test hold only the main dataset's micrographs
    main_ids = set(pd.read_csv(dataset_dir / "manifest.csv")["micrograph_id"])
    assert set(card.config["split"]["val"]) | set(card.config["split"]["test"]) <= main_ids
    # the benchmarks find the model's own data and split again
    found_dir, split = checkpoint_dataset_split(card.config)
    assert found_dir == dataset_dir and split == card.config["split"]

    class _Part:
        def __init__(self):
            self.epochs = []

        def __len__(self):
            return 1

        def set_epoch(self, epoch):
            self.epochs.append(epoch)

    parts = [_Part(), _Part()]
    joined = _concat_training_sets(parts)
    joined.set_epoch(3)
    assert len(joined) == 2 and [p.epochs for p in parts] == [[3], [3]]


@pytest.mark.parametrize("extra, message", [
    ({"n_images": 2, "out_dir": "x"}, "seed"),
    ({"n_images": 2, "out_dir": "x", "seed": 7}, "another 'seed'"),
])  # fmt: skip
def test_extra_training_images_need_their_own_seed(tmp_path, extra, message):  # before any file
    config = {"simulate": {"n_images": 2, "out_dir": str(tmp_path / "main")}, "seed": 7,
              "extra_train_simulate": extra}  # fmt: skip
    with pytest.raises(ValueError, match=message):
        load_config(config)
