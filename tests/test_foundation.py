"""Package entry, profiles, device/seed helpers, versions and notebook hygiene utilities."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import nbformat
import numpy as np
import pytest
import yaml

import etem_helpers
from etem_helpers import course, device, profiles, versions


def test_import_is_cheap_and_has_no_side_effects():
    code = (
        "import sys, etem_helpers, matplotlib; "
        "print(int('torch' in sys.modules), int('etem_helpers.io' in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "0"]


def test_lazy_attributes_resolve_and_unknown_names_raise():
    assert etem_helpers.resolve_profile is profiles.resolve_profile
    assert etem_helpers.__version__.count(".") >= 2
    with pytest.raises(AttributeError, match="no attribute"):
        etem_helpers.does_not_exist  # noqa: B018


@pytest.mark.parametrize("name", profiles.PROFILE_NAMES)
def test_profiles_resolve_by_name(name):
    assert profiles.resolve_profile(name.upper()).name == name


def test_profiles_grow_from_smoke_to_full():
    smoke, quick, full = (profiles.resolve_profile(n) for n in profiles.PROFILE_NAMES)
    for field in ("n_images", "image_size_px", "epochs"):
        assert getattr(smoke, field) < getattr(quick, field) < getattr(full, field)


def test_auto_profile_follows_the_device():
    assert profiles.resolve_profile("auto", device="cpu").name == "quick"
    assert profiles.resolve_profile("auto", device="cuda").name == "full"


def test_profile_errors_name_the_problem():
    with pytest.raises(ValueError, match="'huge'"):
        profiles.resolve_profile("huge")
    with pytest.raises(ValueError, match="bogus"):
        profiles.resolve_profile("smoke", bogus=1)
    assert profiles.resolve_profile("smoke", epochs=3).epochs == 3


def test_get_device_auto_returns_an_available_device():
    import torch

    chosen = device.get_device("auto")
    assert chosen.type in {"cpu", "cuda", "mps"}
    if not torch.cuda.is_available():
        assert chosen.type != "cuda"
        with pytest.raises(ValueError, match="CUDA is not available"):
            device.get_device("cuda")
    with pytest.raises(ValueError, match="not a valid torch device"):
        device.get_device("gpu please")


def test_num_workers_is_zero_on_binder(monkeypatch):
    monkeypatch.setenv("BINDER_REQUEST", "v2/gh/x/y/main")
    assert device.num_workers() == 0
    monkeypatch.delenv("BINDER_REQUEST")
    assert 0 <= device.num_workers(max_workers=2) <= 2


def test_seed_everything_makes_numpy_and_torch_repeatable():
    import torch

    a = device.seed_everything(7).normal(size=4), torch.rand(3)
    b = device.seed_everything(7).normal(size=4), torch.rand(3)
    assert np.array_equal(a[0], b[0]) and torch.equal(a[1], b[1])
    with pytest.raises(ValueError, match="seed"):
        device.seed_everything(-1)


def test_versions_report_packages(capsys):
    info = versions.show_versions()
    assert info["etem-helpers"] == etem_helpers.__version__
    assert info["torch"] != "not installed"
    assert "etem-helpers" in capsys.readouterr().out


def _notebook(tmp_path, *, outputs=False, kernel="python3", tags=("parameters",)):
    cell = nbformat.v4.new_code_cell("PROFILE = 'auto'", metadata={"tags": list(tags)})
    if outputs:
        cell.outputs = [nbformat.v4.new_output("stream", text="hi")]
        cell.execution_count = 1
    nb = nbformat.v4.new_notebook(cells=[cell])
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    path = tmp_path / "00_example.ipynb"
    nbformat.write(nb, path)
    return path


def test_notebook_problems_detects_each_hygiene_fault(tmp_path):
    assert course.notebook_problems(_notebook(tmp_path)) == []
    assert "outputs" in course.notebook_problems(_notebook(tmp_path, outputs=True))[0]
    assert "kernelspec" in course.notebook_problems(_notebook(tmp_path, kernel="venv"))[0]
    assert "parameters" in course.notebook_problems(_notebook(tmp_path, tags=()))[0]


def test_strip_notebook_clears_outputs(tmp_path):
    path = _notebook(tmp_path, outputs=True, kernel="old")
    assert course.strip_notebook(path) is True
    assert course.notebook_problems(path) == []
    assert course.strip_notebook(path) is False


def test_save_results_writes_json_with_numpy_values(tmp_path):
    path = course.save_results(tmp_path, 3, {"f1": np.float32(0.5), "ids": np.arange(2), "p": tmp_path})
    assert path.name == "03_results.json"
    assert json.loads(path.read_text()) == {"f1": 0.5, "ids": [0, 1], "p": str(tmp_path)}


def _normalise(name: str) -> str:
    return re.split(r"[<>=\[ ;@]", name.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_binder_environment_covers_the_runtime_dependencies(repository_root):
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    pyproject = tomllib.loads((repository_root / "pyproject.toml").read_text())
    needed = {_normalise(d) for d in pyproject["project"]["dependencies"]}
    needed |= {_normalise(d) for d in pyproject["project"]["optional-dependencies"]["notebooks"]}
    binder = yaml.safe_load((repository_root / "binder" / "environment.yml").read_text())
    listed = set()
    for entry in binder["dependencies"]:
        items = entry["pip"] if isinstance(entry, dict) else [entry]
        listed |= {_normalise(i) for i in items if not i.startswith("-")}
    assert needed <= listed, f"binder/environment.yml lacks {sorted(needed - listed)}"
    assert (repository_root / "binder" / "postBuild").stat().st_mode & 0o111, "postBuild must be executable"


def test_workstation_environment_installs_the_package_with_notebook_extras(repository_root):
    env = yaml.safe_load((repository_root / "environment.yml").read_text())
    pip_entries = next(e["pip"] for e in env["dependencies"] if isinstance(e, dict))
    assert any(e.startswith("-e .[notebooks") for e in pip_entries)
    assert any(str(e).startswith("python") for e in env["dependencies"] if isinstance(e, str))


# ---------------------------------------------------------------- clear user errors (issue 9)


def test_a_device_index_that_does_not_exist_names_the_device_argument():
    with pytest.raises(ValueError, match=r"device='cpu:7' does not exist.*1 cpu device"):
        device.get_device("cpu:7")
    assert device.get_device("cpu:0").type == "cpu"
    with pytest.raises(ValueError, match="device='meta'"):
        device.get_device("meta")


def test_analysis_with_a_bad_device_blames_the_device_not_the_checkpoint():
    from etem_helpers.pipeline import analyze

    with pytest.raises(ValueError, match="device='cpu:7'"):
        analyze(np.zeros((64, 64)), 0.5, device="cpu:7")


def test_course_check_on_an_empty_folder_says_no_notebooks_found(tmp_path, capsys):
    assert course.main(["check", "--notebooks", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "No course notebooks" in error and "clean" not in error
    assert error.count("\n") == 1 and "Traceback" not in error
    assert course.main(["check", "--notebooks", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_course_check_reports_how_many_notebooks_are_clean(tmp_path, capsys):
    _notebook(tmp_path)
    assert course.main(["check", "--notebooks", str(tmp_path)]) == 0
    assert "all 1 notebooks clean" in capsys.readouterr().out


def test_course_run_only_a_missing_number_lists_the_notebooks(tmp_path, capsys):
    _notebook(tmp_path)
    argv = ["run", "--notebooks", str(tmp_path), "--output", str(tmp_path / "out")]
    assert course.main([*argv, "--only", "99"]) == 2
    error = capsys.readouterr().err
    assert "--only 99" in error and "numbered 00" in error and "Traceback" not in error
    assert course.main([*argv, "--only", "one"]) == 2
    assert "not a notebook number" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing ran
