"""Versions of the packages the course depends on, for bug reports and the top of each notebook."""

from __future__ import annotations

import platform
import sys
from importlib import metadata

_PACKAGES = (
    "etem-helpers", "numpy", "scipy", "scikit-image", "pandas", "torch", "torchvision",
    "segmentation-models-pytorch", "mrcfile", "tifffile", "rosettasciio", "pooch", "matplotlib",
)


def collect_versions() -> dict:
    """Return a dictionary of Python, platform, package versions and the compute device."""
    info = {"python": platform.python_version(), "platform": platform.platform(terse=True)}
    for name in _PACKAGES:
        try:
            info[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            info[name] = "not installed"
    torch = sys.modules.get("torch")
    if torch is None:
        try:
            import torch
        except ImportError:
            torch = None
    if torch is not None:
        info["cuda"] = torch.version.cuda if torch.cuda.is_available() else "not available"
        from .device import get_device

        info["device"] = str(get_device("auto"))
    return info


def versions_line(info: dict | None = None) -> str:
    """One line with the key versions, e.g. for the top of a notebook."""
    info = collect_versions() if info is None else info
    keys = ("etem-helpers", "python", "torch", "segmentation-models-pytorch", "numpy", "device")
    return " | ".join(f"{key} {info.get(key, '?')}" for key in keys)


def show_versions(*, verbose: bool = False) -> dict:
    """Print the versions line (or every version with ``verbose=True``) and return the dictionary."""
    info = collect_versions()
    if verbose:
        width = max(map(len, info))
        for key, value in info.items():
            print(f"{key:<{width}} : {value}")
    else:
        print(versions_line(info))
    return info
