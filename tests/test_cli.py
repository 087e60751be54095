"""The etem command: sub-commands, --help, one-line user errors (exit 2), analyze outputs."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from etem_helpers import cli
from etem_helpers.io import write_micrograph
from etem_helpers.plot import OUTLINE_RGB


def cli_outline():
    return np.array(OUTLINE_RGB, dtype=np.uint8)


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert all(name in out for name in cli.COMMANDS)


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"etem {command}" in capsys.readouterr().out


def test_unknown_command_exits_2():
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["frobnicate"])
    assert exit_info.value.code == 2


def test_missing_file_is_one_line_and_exit_2(tmp_path, capsys):
    code = cli.main(["analyze", str(tmp_path / "nope.mrc"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("etem analyze: error:") and "nope.mrc" in err
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()  # nothing written before the inputs are checked


def test_user_errors_name_the_command_line_flag():
    assert cli._as_flags("pass overwrite=True to replace it") == "pass --overwrite to replace it"


def _write_sample(path):
    rng = np.random.default_rng(0)
    image = 1.0 + 0.05 * rng.standard_normal((96, 96))
    yy, xx = np.mgrid[:96, :96]
    image[(yy - 40) ** 2 + (xx - 50) ** 2 < 12**2] -= 0.5
    write_micrograph(path, image.astype(np.float32), 0.5)


def test_analyze_writes_csv_and_overlay_and_refuses_to_overwrite(tmp_path, capsys):
    source = tmp_path / "grid_01.mrc"
    _write_sample(source)
    out = tmp_path / "out"
    assert cli.main(["analyze", str(source), "--out", str(out), "--device", "cpu"]) == 0
    csv, png = out / "grid_01_particles.csv", out / "grid_01_overlay.png"
    assert csv.is_file() and png.is_file()
    assert "particle_id" in csv.read_text().splitlines()[0]
    from PIL import Image

    overlay = np.asarray(Image.open(png))
    assert overlay.shape == (96, 96, 3) and (overlay == cli_outline()).all(axis=2).any()
    before = csv.read_bytes()
    code = cli.main(["analyze", str(source), "--out", str(out), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "--overwrite" in err and csv.read_bytes() == before
    assert cli.main(["analyze", str(source), "--out", str(out), "--device", "cpu",
                     "--overwrite"]) == 0


def test_python_dash_m_runs_the_same_command(tmp_path):
    run = subprocess.run([sys.executable, "-m", "etem_helpers", "course", "--help"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "etem course" in run.stdout


def test_analyze_calibrates_from_a_burned_in_scale_bar(tmp_path):
    from PIL import Image

    from etem_helpers.simulate import sample_params, simulate_micrograph
    from etem_helpers.simulate.overlays import burn_in_scale_bar

    params = sample_params(np.random.default_rng(3), "lowmag", image_size_px=256)
    sim = simulate_micrograph(params, seed=3)
    burned = burn_in_scale_bar(sim.image, bar_length_px=50.0 / params.pixel_size_nm, label="50 nm")
    Image.fromarray(burned.image).save(tmp_path / "export.png")
    assert cli.main(["analyze", str(tmp_path / "export.png"), "--out", str(tmp_path / "o"),
                     "--device", "cpu"]) == 2  # no calibration, no bar length: refused
    assert cli.main(["analyze", str(tmp_path / "export.png"), "--out", str(tmp_path / "o"),
                     "--device", "cpu", "--scale-bar-nm", "50"]) == 0
    import pandas as pd

    table = pd.read_csv(tmp_path / "o" / "export_particles.csv")
    assert len(table) > 0
