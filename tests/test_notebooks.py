"""Every course notebook: committed clean, badges valid, and executed end to end in the smoke profile.

The execution tests run each notebook with papermill (``PROFILE="smoke"``), then check numbers the
notebook saved in ``OUTPUT_DIR/NN_results.json``. They record the wall time and the kernel's peak
resident memory (printed at the end of the session); above 2 GB (Binder's limit) the test fails.
"""

from __future__ import annotations

import math
import re

import pytest

from etem_helpers import course

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


# One check per notebook number: a notebook without a check fails, so none runs unchecked.
CHECKS = {"00": _check_00}


@pytest.mark.notebook
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=NAMES)
def test_notebook_runs_in_smoke_profile(notebook, tmp_path, notebook_timings):
    number = notebook.name[:2]
    assert number in CHECKS, f"add a results check for {notebook.name} to CHECKS"
    run = course.execute_notebook(notebook, tmp_path / "outputs", profile="smoke",
                                  data_dir=tmp_path / "data")
    notebook_timings.append(run)
    assert run["results"] is not None, f"{notebook.name} saved no results JSON"
    assert run["peak_rss_mb"] > 0 and math.isfinite(run["peak_rss_mb"])
    assert run["peak_rss_mb"] < PEAK_MEMORY_LIMIT_MB, f"{notebook.name} peaked at {run['peak_rss_mb']} MB"
    CHECKS[number](run["results"])
