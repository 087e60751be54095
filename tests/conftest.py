"""Shared fixtures: paths of the repository and of the real sample beside it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
SHARED_REAL = REPOSITORY_ROOT.parent / "shared" / "real" / "msa-em-sintering"

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def repository_root() -> Path:
    return REPOSITORY_ROOT


@pytest.fixture(scope="session")
def shared_real_dir() -> Path:
    """The local copy of the real CC-BY sample (present beside the project in CI), else skip."""
    if not SHARED_REAL.is_dir():
        pytest.skip(f"real sample not present at {SHARED_REAL}")
    return SHARED_REAL


_NOTEBOOK_TIMINGS: list[dict] = []


@pytest.fixture(scope="session")
def notebook_timings() -> list[dict]:
    """Collects each notebook run (seconds, peak memory) for the end-of-session report."""
    return _NOTEBOOK_TIMINGS


def pytest_terminal_summary(terminalreporter):
    if not _NOTEBOOK_TIMINGS:
        return
    terminalreporter.section("notebook smoke runs")
    for run in _NOTEBOOK_TIMINGS:
        terminalreporter.write_line(
            f"{run['notebook']:<32} {run['seconds']:7.1f} s   kernel peak {run['peak_rss_mb']:7.0f} MB"
        )
