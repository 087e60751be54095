"""Helpers for the etem-notebooks course: nanoparticle analysis in (E-)TEM/HRTEM micrographs.

Importing the package is cheap and has no side effects: submodules (and heavy dependencies such as
PyTorch) load on first use, e.g. ``from etem_helpers import io`` or ``etem_helpers.show_versions()``.
"""

from importlib import import_module

from ._version import __version__

# Public names resolved lazily: name -> "module:attribute" (or "module" for a submodule).
_LAZY = {
    "show_versions": "versions:show_versions",
    "versions_line": "versions:versions_line",
    "get_device": "device:get_device",
    "num_workers": "device:num_workers",
    "seed_everything": "device:seed_everything",
    "resolve_profile": "profiles:resolve_profile",
    "read_micrograph": "io:read_micrograph",
    "write_micrograph": "io:write_micrograph",
    "simulate_micrograph": "simulate:simulate_micrograph",
    "analyze": "pipeline.analyzer:analyze",
    "Analyzer": "pipeline.analyzer:Analyzer",
    "AnalysisResult": "pipeline.result:AnalysisResult",
}
_SUBMODULES = {
    "cli", "course", "datasets", "device", "faults", "io", "measure", "metrics", "pipeline",
    "plot", "preprocess", "profiles", "realism", "segmentation", "simulate", "sizing", "spectra",
    "stats", "versions", "widgets",
}

__all__ = ["__version__", *sorted(_LAZY)]


def __getattr__(name):
    if name in _SUBMODULES:
        return import_module(f"{__name__}.{name}")
    if name in _LAZY:
        module_name, attribute = _LAZY[name].split(":")
        return getattr(import_module(f"{__name__}.{module_name}"), attribute)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | _SUBMODULES)
