"""Comparison runner, equivalence table and the ``etem compare`` command on small inputs."""

import numpy as np
import pandas as pd
import pytest
from skimage.draw import disk

from etem_helpers.measure import measure_particles
from etem_helpers.stats import (
    METHOD_BUILDERS,
    compare_on_dataset,
    default_methods,
    equivalence_table,
)
from etem_helpers.stats.cli import compare_command, compare_parser, dataset_split_ids


def _labels(centres, radius, shape=(96, 96)):
    out = np.zeros(shape, dtype=np.int32)
    for k, (r, c) in enumerate(centres, start=1):
        rr, cc = disk((r, c), radius, shape=shape)
        out[rr, cc] = k
    return out


CENTRES = [(20 + 25 * a, 20 + 25 * b) for a in range(3) for b in range(3)]


def _samples(n=5, pixel_size_nm=0.5):
    rng = np.random.default_rng(1)
    out = []
    for i in range(n):
        centres = [(r + rng.integers(-2, 3), c + rng.integers(-2, 3)) for r, c in CENTRES]
        truth = _labels(centres, 7)
        image = np.where(truth > 0, 0.2, 1.0).astype(np.float32)
        out.append((f"img{i}", image, truth, pixel_size_nm))
    return out


def _threshold(image, pixel_size_nm):
    from scipy import ndimage

    labels, _ = ndimage.label(image < 0.5)
    return labels.astype(np.int32)


def _dilated(image, pixel_size_nm):
    from skimage.morphology import dilation
    from skimage.morphology import disk as footprint

    return dilation(_threshold(image, pixel_size_nm), footprint(1))


def test_runner_matches_measures_and_times_every_method():
    samples = _samples()
    tables = compare_on_dataset(iter(samples), {"exact": _threshold, "dilated": _dilated},
                                quantities=("diameter_nm",))
    assert tables.methods == ("exact", "dilated")
    det = tables.detections
    assert len(det) == 2 * len(samples)
    assert (det["tp"] == 9).all() and (det[["fp", "fn"]].to_numpy() == 0).all()
    assert (det["seconds"] >= 0).all() and (det["pixel_size_nm"] == 0.5).all()
    p = tables.particles
    exact = p[p["method"] == "exact"]
    np.testing.assert_allclose(exact["measured"], exact["reference"])
    dil = p[p["method"] == "dilated"]
    # One pixel more radius at 0.5 nm/px: about 1 nm more diameter.
    assert (dil["measured"] - dil["reference"]).mean() == pytest.approx(1.0, abs=0.2)


def test_a_method_with_its_own_particle_table_is_compared_with_that_table():
    """A sizing estimator: same labels, its own diameters (here 10 % larger)."""

    def sizing(image, pixel_size_nm):
        labels = _threshold(image, pixel_size_nm)
        table = measure_particles(labels, pixel_size_nm)
        table["diameter_nm"] *= 1.1
        return labels, table

    tables = compare_on_dataset(_samples(3), {"mask": _threshold, "sizing": sizing},
                                quantities=("diameter_nm",))
    p = tables.particles
    mask = p[p["method"] == "mask"].sort_values(["image", "true_id"])
    sized = p[p["method"] == "sizing"].sort_values(["image", "true_id"])
    np.testing.assert_allclose(sized["measured"].to_numpy(), 1.1 * mask["measured"].to_numpy())


def test_runner_refuses_bad_method_outputs():
    with pytest.raises(ValueError, match="'bad'.*integer label map"):
        compare_on_dataset(_samples(1), {"bad": lambda im, px: im > 0.5})
    with pytest.raises(ValueError, match="without the ids"):
        compare_on_dataset(_samples(1), {"short": lambda im, px: (
            _threshold(im, px), pd.DataFrame({"particle_id": [1]}))})
    with pytest.raises(ValueError, match="methods is empty"):
        compare_on_dataset(_samples(1), {})


def test_equivalence_table_decides_by_the_margin():
    tables = compare_on_dataset(_samples(6), {"exact": _threshold, "dilated": _dilated},
                                quantities=("diameter_nm",))
    eq = equivalence_table(tables, 0.5).set_index("method")
    assert eq.loc["exact", "equivalent"] and eq.loc["exact", "estimate"] == pytest.approx(0.0)
    assert not eq.loc["dilated", "equivalent"]  # about +1 nm, outside +-0.5 nm
    assert eq.loc["dilated", "n_images"] == 6
    wide = equivalence_table(tables, 2.0).set_index("method")
    assert wide.loc["dilated", "equivalent"]


def test_default_methods_names_and_errors():
    assert set(METHOD_BUILDERS) >= {"unet", "otsu_watershed", "adaptive_threshold_watershed"}
    methods = default_methods(names=["otsu_watershed"])
    assert list(methods) == ["otsu_watershed"]
    image, truth = _samples(1)[0][1:3]
    assert methods["otsu_watershed"](image, 0.5).shape == truth.shape
    with pytest.raises(ValueError, match="unknown method"):
        default_methods(names=["nope"])


def _write_dataset(folder, samples):
    """A minimal dataset folder (manifest + MRC images + TIFF labels) for the command."""
    import tifffile

    from etem_helpers.io import write_micrograph

    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    rows = []
    for name, image, labels, px in samples:
        write_micrograph(folder / "images" / f"{name}.mrc", image, pixel_size_nm=px)
        tifffile.imwrite(folder / "labels" / f"{name}.tif", labels.astype(np.uint16))
        rows.append({"micrograph_id": name, "image_path": f"images/{name}.mrc",
                     "labels_path": f"labels/{name}.tif", "pixel_size_nm": px,
                     "split": "test" if name != "img0" else "train"})
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)


def test_compare_command_writes_a_report(tmp_path, capsys):
    _write_dataset(tmp_path / "ds", _samples(4))
    assert dataset_split_ids(tmp_path / "ds", "test") == ["img1", "img2", "img3"]
    out = tmp_path / "report"
    status = compare_command(["--dataset", str(tmp_path / "ds"), "--out", str(out),
                              "--methods", "otsu_watershed", "--n-resamples", "200"])
    assert status == 0
    for name in ("summary.md", "summary.csv", "particles.csv", "detections.csv",
                 "equivalence.csv", "forest.png", "bland_altman_otsu_watershed.png"):
        assert (out / name).is_file(), name
    det = pd.read_csv(out / "detections.csv")
    assert sorted(det["image"]) == ["img1", "img2", "img3"]
    text = (out / "summary.md").read_text()
    assert "+-1 px = +-0.5 nm" in text and "otsu_watershed" in text
    assert "3 images" in capsys.readouterr().out


def test_compare_command_help_and_errors(tmp_path):
    assert compare_parser().prog == "etem compare"
    with pytest.raises(SystemExit):
        compare_command(["--help"])
    with pytest.raises(SystemExit):  # --dataset or --real is required
        compare_command(["--out", str(tmp_path / "r")])
    with pytest.raises(FileNotFoundError, match="--dataset"):
        compare_command(["--dataset", str(tmp_path / "none"), "--out", str(tmp_path / "r")])


def test_compare_command_on_the_real_sample(tmp_path, monkeypatch):
    from pathlib import Path

    shared = Path(__file__).resolve().parents[2] / "shared" / "real" / "msa-em-sintering"
    if not shared.is_dir():
        pytest.skip("the shared real sample is not beside the project")
    monkeypatch.setenv("ETEM_DATA_DIR", str(tmp_path / "cache"))
    out = tmp_path / "report"
    assert compare_command(["--real", "--real-source", str(shared), "--max-images", "2",
                            "--methods", "otsu_watershed", "--out", str(out),
                            "--n-resamples", "100"]) == 0
    det = pd.read_csv(out / "detections.csv")
    assert sorted(det["image"]) == ["image_5", "image_6"]  # evaluation ids only
    assert (det["pixel_size_nm"] == 0.5).all()
    assert "+-1 px = +-0.5 nm" in (out / "summary.md").read_text()
