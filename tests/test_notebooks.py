"""Every course notebook: committed clean, badges valid, and executed end to end in the smoke profile.

The execution tests run each notebook with papermill (``PROFILE="smoke"``), then check numbers the
notebook saved in ``OUTPUT_DIR/NN_results.json``. They record the wall time and the kernel's peak
resident memory (printed at the end of the session); above 2 GB (Binder's limit) the test fails.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from etem_helpers import course
from etem_helpers.datasets import real

# The shared real sample beside the project (as in conftest.py's SHARED_REAL).
SHARED_REAL = Path(__file__).resolve().parents[2] / "shared" / "real" / "msa-em-sintering"

NOTEBOOKS = course.list_notebooks()
NAMES = [p.name for p in NOTEBOOKS]
PEAK_MEMORY_LIMIT_MB = 2048


def test_the_course_has_notebooks():
    assert NAMES and NAMES[0].startswith("00_")
    numbers = [int(n[:2]) for n in NAMES]
    assert numbers == sorted(set(numbers)), "notebook numbers must be unique"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=NAMES)
def test_committed_notebook_is_clean(notebook):
    assert course.notebook_problems(notebook) == []


REQUIRED_PARAMETERS = ("PROFILE", "DATA_DIR", "OUTPUT_DIR", "SEED", "DEVICE", "INTERACTIVE")


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=NAMES)
def test_parameters_cell_defines_the_course_parameters(notebook):
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    (cell,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    names = re.findall(r"^([A-Z][A-Z0-9_]*)\s*=", cell.source, flags=re.M)
    assert set(REQUIRED_PARAMETERS) <= set(names), f"{notebook.name} lacks {set(REQUIRED_PARAMETERS) - set(names)}"
    assert all(name.isupper() for name in names)
    assert parameters_follow_imports(nb.cells), \
        f"{notebook.name}: the parameters cell must come right after the imports cell"


def _is_import_cell(cell) -> bool:
    """A code cell whose statements are all imports (comments, blank lines and continuations allowed)."""
    lines = [line for line in cell.source.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    starts = [line for line in lines if not line[0].isspace() and not line.startswith(")")]
    return cell.cell_type == "code" and bool(starts) and all(
        line.startswith(("import ", "from ")) for line in starts)


def parameters_follow_imports(cells) -> bool:
    """True when the code cell just before the one tagged ``parameters`` is an imports-only cell."""
    index = next(i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", []))
    before = [c for c in cells[:index] if c.cell_type == "code"]
    return bool(before) and _is_import_cell(before[-1])


def test_parameters_check_can_fail():
    """The ordering check rejects a parameters cell that is not right after the imports."""
    import nbformat

    imports = nbformat.v4.new_code_cell("import numpy as np\nfrom pathlib import (\n    Path,\n)")
    setup = nbformat.v4.new_code_cell("x = np.zeros(3)")
    parameters = nbformat.v4.new_code_cell("SEED = 0")
    parameters.metadata["tags"] = ["parameters"]
    assert parameters_follow_imports([imports, parameters, setup])
    assert not parameters_follow_imports([imports, setup, parameters])
    assert not parameters_follow_imports([parameters, imports])


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=NAMES)
def test_notebook_has_its_own_colab_badge_and_the_skeleton(notebook):
    text = notebook.read_text()
    assert course.colab_url(notebook.name) in text
    for heading in ("## Overview", "## Prerequisites", "## Summary", "## Exercises", "## What's next",
                    "## Resources and references", "show_versions()", "<details>"):
        assert heading in text, f"{notebook.name} lacks {heading!r}"


def test_readme_badges_point_at_existing_notebooks(repository_root):
    readme = (repository_root / "README.md").read_text()
    linked = re.findall(r"colab\.research\.google\.com/github/[^)\s]+/notebooks/([^)\s]+\.ipynb)", readme)
    assert linked, "README has no Colab badges"
    assert set(linked) == set(NAMES), "every notebook needs one README badge, and every badge a notebook"
    assert course.binder_url() in readme


def _check_00(results):
    assert results["io_roundtrip"]["mrc"]["relative_error"] < 1e-6
    assert results["io_roundtrip"]["tif"]["relative_error"] < 1e-6
    assert all(r["pixels_equal"] for r in results["io_roundtrip"].values())
    assert set(results["errors_demonstrated"]) == {"MissingCalibrationError", "FileExistsError"}
    assert results["profile"]["name"] == "smoke"


def _check_01(results):
    n_images = results["profile"]["n_images"]
    assert results["n_images"] == n_images
    assert results["n_particles"] > 0
    assert results["dataset_reused"] is False and results["images_per_s"] > 0
    assert results["readback"]["all_match"]
    assert results["readback"]["max_pixel_size_rel_error"] < 1e-6
    errors = results["thon_rings"]["relative_errors"]
    assert len(errors) >= 3 and all(e < 0.03 for e in errors), errors
    assert results["stitch_max_error"] < 1e-5
    assert results["leakage"] is False
    assert sum(results["split_sizes"].values()) == n_images
    assert min(results["split_sizes"].values()) >= 1
    assert results["card"]["n_particles"] == results["n_particles"]
    assert results["real_available"] == SHARED_REAL.is_dir()
    if results["real_available"]:
        assert "sim_vs_real" in results["figures"]
    for path in results["figures"].values():
        assert Path(path).is_file(), path


def _prepare_01(data_dir):
    """Put the shared real sample into the notebook's data cache (no network in tests)."""
    if SHARED_REAL.is_dir():
        real.populate_cache_from(SHARED_REAL, data_dir)


def _check_03(results):
    n_epochs = results["profile"]["epochs"]
    history = results["history"]
    assert results["epochs_run"] == len(history["epoch"]) == n_epochs
    for key in ("train_loss", "val_loss"):
        assert len(history[key]) == n_epochs
        assert all(math.isfinite(v) and v > 0 for v in history[key]), history[key]
    hand = results["hand_epoch"]  # the epoch written out in the notebook
    assert all(math.isfinite(hand[key]) and hand[key] > 0 for key in ("train_loss", "val_loss")), hand
    if results["device"] == "cpu":  # same weights, crops and order: the helper's first epoch is the hand one
        for key in ("train_loss", "val_loss"):
            assert math.isclose(history[key][0], hand[key], rel_tol=1e-4), (key, history[key][0], hand[key])
    splits = results["splits"]
    assert sum(len(ids) for ids in splits.values()) == results["n_images"]
    assert not set(splits["train"]) & set(splits["val"])
    assert not set(splits["train"]) & set(splits["test"])
    assert not set(splits["val"]) & set(splits["test"])
    assert {k: len(v) for k, v in splits.items()} == results["split_sizes"]
    methods = results["test_metrics"]
    assert {"U-Net (trained here)", "Otsu + watershed", "adaptive threshold + watershed"} <= set(methods)
    assert ("U-Net (shipped default)" in methods) == results["default_model_available"]
    for scores in methods.values():
        for key in ("pixel_dice", "pixel_iou", "precision", "recall", "f1", "visible_f1"):
            assert 0.0 <= scores[key] <= 1.0, (key, scores)
    _check_pooled_against_per_image(methods, results["test_per_image"], splits["test"])
    assert all(0.0 <= v <= 1.0 for v in results["boundary_f1"].values())
    _check_postprocess_choice(results["postprocess"], results["checkpoint"])
    assert results["training_seconds"] > 0
    assert results["real_available"] == SHARED_REAL.is_dir()
    if results["real_available"]:
        assert set(results["real_metrics"]) == set(methods)
        for scores in results["real_metrics"].values():
            assert 0.0 <= scores["pixel_dice"] <= 1.0 and 0.0 <= scores["pixel_iou"] <= 1.0
        assert "real_predictions" in results["figures"]
    else:
        assert results["real_metrics"] == {}
    assert results["analyze_example"]["pixel_size_source"].startswith("file")
    assert {"loss_curves", "thresholds", "instance_splitting", "test_metrics"} <= set(results["figures"])
    for path in results["figures"].values():
        assert Path(path).is_file(), path


def _check_02(results):
    history = results["history"]
    assert history["epoch"] and history["epoch"] == list(range(1, len(history["epoch"]) + 1))
    for key in ("loss_d", "loss_g_adv", "loss_g_l1"):
        assert history[key] and all(math.isfinite(v) and v >= 0 for v in history[key]), key
    rows = {row["set"]: row for row in results["realism"]}
    assert {"real floor", "simulator", "GAN"} <= set(rows)
    for row in rows.values():
        assert row["fd"] >= 0 and 0.0 <= row["auc"] <= 1.0, row
    fidelity = results["fidelity"]
    assert 0.0 <= fidelity["pixel_dice"] <= 1.0 and 0.0 <= fidelity["f1"] <= 1.0
    assert {"conditioning", "training", "real_vs_gan", "fidelity", "sweep"} <= set(results["figures"])
    if SHARED_REAL.is_dir():  # prepared: the notebook must have used the real images
        assert results["real_available"]


def _check_04(results):
    history = results["history"]
    assert results["epochs_run"] == len(history["epoch"]) == min(results["profile"]["epochs"], 10)
    assert all(math.isfinite(v) and v > 0 for v in history["train_mse"] + history["val_mse"])
    assert results["n_crops"]["train"] > 0 and results["n_crops"]["val"] > 0
    assert all(k > 0 for k in results["std_scale"])
    methods = results["test_metrics"]
    assert {"pixel mask", "contour", "FeatureNet (here)"} <= set(methods)
    assert ("FeatureNet (shipped)" in methods) == results["shipped_featurenet"]
    for scores in methods.values():
        assert scores["n"] > 0
        for key in ("coverage d", "coverage AR", "coverage R"):
            assert 0.0 <= scores[key] <= 1.0, (key, scores)
        assert scores["diameter MRE"] >= 0 and scores["AR RMSE"] >= 0
    # the contour beats the pixel mask on clean disks of 4-8 px (section 2)
    for d in ("4", "6", "8"):
        assert results["pixel_bias_std"]["contour"][d] < results["pixel_bias_std"]["pixel mask"][d]
    mean = results["mean_diameter"]
    assert mean["n"] > 0 and mean["ci95_nm"][0] <= mean["mean_nm"] <= mean["ci95_nm"][1]
    assert {"size_definitions", "pixel_bias", "crops", "loss_curves", "scatter_bland_altman",
            "size_distribution"} <= set(results["figures"])


def _check_05(results):
    assert results["profile"]["name"] == "smoke"
    assert results["n_particles"] > 0 and 0 < results["n_resolved"] <= results["n_particles"]
    splits = {k: set(v) for k, v in results["split_micrographs"].items()}
    assert not splits["train"] & splits["val"] and not splits["train"] & splits["test"]
    assert not splits["val"] & splits["test"]
    assert 0 < sum(len(v) for v in splits.values()) <= results["n_micrographs"]  # some may be empty
    assert results["n_groschner_features"] == 5 and results["n_physics_features"] >= 10
    assert abs(results["example_d111_nm"] / 0.2355 - 1) < 0.02
    assert results["example_spots"]["twin"] > results["example_spots"]["none"] >= 2
    cal = results["calibration"]
    assert cal["status"] in ("ok", "mismatch", "cannot check")
    if cal["status"] != "cannot check":
        assert abs(cal["implied_pixel_size_nm"] / cal["true_pixel_size_nm"] - 1) < 0.02
    assert {"RF groschner2021", "RF physics", "CNN (FFT + image)"} <= set(results["test_metrics"])
    for scores in results["test_metrics"].values():
        if scores["n"]:
            assert 0.0 <= scores["accuracy"] <= 1.0
    assert 0.0 < results["shipped_threshold"] < 1.0
    assert {"same_particle_three_ways", "gpa_stacking_fault", "confusion_matrices"} <= set(
        results["figures"])
    for path in results["figures"].values():
        assert Path(path).is_file(), path


def _check_06(results):
    sim = results["simulated"]
    assert sim["seed"] != sim["training_seed"]
    assert {"U-Net", "Otsu", "adaptive threshold"} <= set(sim["methods"])
    big, small = results["pvalue_demo"]
    assert big["particles"] == 10_000 and big["t-test p"] < 1e-3
    assert big["equivalent within ±0.5 nm (TOST)"] is True
    assert small["t-test p"] > big["t-test p"]
    for method, scores in results["detection"].items():
        for k in ("precision", "recall", "f1"):
            if scores[k] is not None and math.isfinite(scores[k]):
                assert 0.0 <= scores[f"{k}_low"] <= scores[k] <= scores[f"{k}_high"] <= 1.0, (method, k)
    for key, row in results["summary"].items():
        if all(v is not None and math.isfinite(v) for v in row.values()) and not key.endswith(("loa_low",
                                                                                               "loa_high")):
            assert row["ci_low"] <= row["estimate"] <= row["ci_high"], key
            assert row["rep_low"] <= row["estimate"] <= row["rep_high"], key
    unet_f1 = results["summary"]["U-Net|f1"]
    assert results["f1_replication"] == [unet_f1["rep_low"], unet_f1["rep_high"]]
    assert results["budget"]["expanded"] >= results["budget"]["combined"] > 0
    assert results["real_available"] == SHARED_REAL.is_dir()
    if results["real_available"]:
        real = results["real"]
        assert real["margin_nm"] == results["real_pixel_size_nm"]  # +-1 px
        lo, hi = real["ci90_nm"]
        assert lo <= real["mean_difference_nm"] <= hi
        assert real["equivalent"] == (-real["margin_nm"] < lo and hi < real["margin_nm"])
        assert ("NOT equivalent" in results["real_statement"]) != real["equivalent"]
        assert "agreement_real" in results["figures"]
    for name in ("pvalue_vs_n", "agreement_simulated", "size_distributions", "forest"):
        assert Path(results["figures"][name]).is_file(), name


def _check_pooled_against_per_image(pooled, per_image, test_ids):
    """The reported pooled F1 of each method is the F1 of its per-image counts, summed over the test split."""
    from etem_helpers.metrics.matching import detection_scores

    for method, scores in pooled.items():
        rows = [row for row in per_image if row["method"] == method]
        assert sorted(row["name"] for row in rows) == sorted(test_ids), method
        counts = {key: sum(int(row[key]) for row in rows) for key in ("tp", "fp", "fn")}
        assert counts == {key: scores[key] for key in counts}, (method, counts, scores)
        assert math.isclose(detection_scores(**counts)["f1"], scores["f1"], abs_tol=1e-12), method


def _check_postprocess_choice(tuned, checkpoint):
    """The chosen settings are the best trial, from the grid, with honest F1s, and saved in the model."""
    from etem_helpers.metrics.matching import detection_scores
    from etem_helpers.segmentation import load_checkpoint
    from etem_helpers.segmentation.postprocess import DEFAULT_POSTPROCESS, POSTPROCESS_GRID

    settings, trials = tuned["settings"], tuned["trials"]
    assert set(settings) == set(DEFAULT_POSTPROCESS)
    assert tuned["n_trials"] == len(trials) >= 2
    for trial in trials:  # every reported F1 is the F1 of its own counts
        counts = {key: trial[key] for key in ("tp", "fp", "fn")}
        assert math.isclose(trial["f1"], detection_scores(**counts)["f1"], abs_tol=1e-12), trial
    best = max(trials, key=lambda trial: trial["f1"])
    assert {key: best[key] for key in settings} == settings, "the chosen settings are not the best trial"
    assert tuned["val_tuned"]["f1"] == best["f1"] and tuned["val_default"] == trials[0]
    assert {key: trials[0][key] for key in settings} == dict(DEFAULT_POSTPROCESS)
    for key, value in settings.items():
        assert value in (*POSTPROCESS_GRID.get(key, ()), DEFAULT_POSTPROCESS[key]), (key, value)
    _, card = load_checkpoint(checkpoint)
    assert dict(card.postprocess) == settings, "the model card does not hold the chosen settings"
    assert card.normalization.to_dict()["method"] == "percentile"


# One check per notebook number: a notebook without a check fails, so none runs unchecked.
CHECKS = {"00": _check_00, "01": _check_01, "02": _check_02, "03": _check_03, "04": _check_04, "05": _check_05,
          "06": _check_06}
# Optional preparation per notebook number, called with the data_dir before it runs.
PREPARE = {"01": _prepare_01, "02": _prepare_01, "03": _prepare_01, "06": _prepare_01}


@pytest.mark.notebook
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=NAMES)
def test_notebook_runs_in_smoke_profile(notebook, tmp_path, notebook_timings):
    number = notebook.name[:2]
    assert number in CHECKS, f"add a results check for {notebook.name} to CHECKS"
    if number in PREPARE:
        PREPARE[number](tmp_path / "data")
    run = course.execute_notebook(notebook, tmp_path / "outputs", profile="smoke",
                                  data_dir=tmp_path / "data")
    notebook_timings.append(run)
    assert run["results"] is not None, f"{notebook.name} saved no results JSON"
    assert run["peak_rss_mb"] > 0 and math.isfinite(run["peak_rss_mb"])
    assert run["peak_rss_mb"] < PEAK_MEMORY_LIMIT_MB, f"{notebook.name} peaked at {run['peak_rss_mb']} MB"
    CHECKS[number](run["results"])
