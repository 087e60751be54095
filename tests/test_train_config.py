"""Training configuration errors name the key, its value and what is expected."""

from __future__ import annotations

import pytest

from etem_helpers.segmentation.train import load_config


@pytest.mark.parametrize("key, value", [("epochs", "ten"), ("lr", "0.1"), ("augment", 1),
                                        ("split_fractions", 0.5), ("seed", 1.5)])
def test_a_value_of_the_wrong_type_names_its_key(key, value):
    with pytest.raises(ValueError, match=f"'{key}' in the configuration is {value!r}"):
        load_config({"dataset_dir": "somewhere", key: value})


def test_integers_are_accepted_where_floats_are_expected():
    assert load_config({"dataset_dir": "somewhere", "lr": 1})["lr"] == 1


def test_unknown_keys_are_named(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"dataset_dir": "x", "epoch": 3}')
    with pytest.raises(ValueError, match=r"Unknown keys \['epoch'\] in .*c.json"):
        load_config(path)
