"""ModelCard: the checkpoint's metadata as a validated dataclass; save/load round trip."""

from __future__ import annotations

import pytest
import torch

from etem_helpers.preprocess import Normalization
from etem_helpers.segmentation import (
    CheckpointError,
    ModelCard,
    build_unet,
    load_checkpoint,
    save_checkpoint,
)


def _card(**changes):
    fields = dict(preset="tiny", normalization=Normalization(), pixel_size_nm=0.5,
                  pixel_size_range_nm=(0.25, 1.0), tile_px=64,
                  postprocess={"threshold": 0.4}, config={"seed": 3})
    return ModelCard(**{**fields, **changes})


def test_round_trip_keeps_every_field(tmp_path):
    model = build_unet("tiny", seed=0)
    path = save_checkpoint(tmp_path / "m.pt", model, _card())
    loaded, card = load_checkpoint(path)
    assert card.replace(torch_version="", etem_helpers_version="") == _card().replace(
        torch_version="", etem_helpers_version="")
    assert card.torch_version == torch.__version__.split("+")[0]
    raw = torch.load(path, weights_only=True)
    assert raw["normalization"]["function"] == "etem_helpers.preprocess.normalize_image"
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_replace_validates_again():
    card = _card()
    assert card.replace(postprocess={"threshold": 0.6}).postprocess == {"threshold": 0.6}
    with pytest.raises(ValueError, match="Unknown post-processing"):
        card.replace(postprocess={"treshold": 0.6})
    with pytest.raises(ValueError, match="pixel_size_range_nm"):
        card.replace(pixel_size_range_nm=(1.0, 0.5))
    with pytest.raises(ValueError, match="preset"):
        card.replace(preset="huge")


def test_normalization_is_data_and_old_names_load():
    card = _card(normalization={"function": "etem_helpers.data.normalize_image",
                                "method": "zscore", "low_percentile": 1, "high_percentile": 99})
    assert card.normalization == Normalization("zscore", 1, 99)
    with pytest.raises(ValueError, match="cannot reproduce"):
        _card(normalization={"function": "my.own.normalise", "method": "percentile"})


def test_a_bad_card_in_a_file_is_a_checkpoint_error(tmp_path):
    model = build_unet("tiny", seed=0)
    path = save_checkpoint(tmp_path / "m.pt", model, _card())
    raw = torch.load(path, weights_only=True)
    raw["pixel_size_range_nm"] = [2.0, 1.0]
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match="model card"):
        load_checkpoint(path)


def test_save_refuses_a_model_of_another_preset(tmp_path):
    with pytest.raises(ValueError, match="preset"):
        save_checkpoint(tmp_path / "m.pt", build_unet("tiny", seed=0), _card(preset="light"))
    assert not (tmp_path / "m.pt").exists()
