"""Compute device, data-loader workers and seeding."""

from __future__ import annotations

import functools
import os
import random

import numpy as np

_BINDER_VARIABLES = ("BINDER_SERVICE_HOST", "BINDER_REQUEST", "BINDER_REPO_URL", "BINDER_LAUNCH_HOST")


def get_device(device="auto"):
    """Return the torch device to compute on.

    Parameters
    ----------
    device : str or torch.device
        ``"auto"`` picks CUDA, then Apple MPS, then the CPU. Any other value (``"cpu"``,
        ``"cuda:1"``, ...) is checked and returned as a ``torch.device``.

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        An unknown device, one that is not available, or an index that does not exist
        (e.g. ``"cpu:7"``); the message names the ``device`` argument.
    """
    import torch

    if isinstance(device, torch.device):
        chosen = device
    elif str(device).lower() == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    else:
        try:
            chosen = torch.device(str(device))
        except RuntimeError as error:
            raise ValueError(
                f"device={device!r} is not a valid torch device; use 'auto', 'cpu', 'cuda' or 'mps'."
            ) from error
    if chosen.type not in ("cpu", "cuda", "mps"):
        raise ValueError(
            f"device={device!r} is not supported here; use 'auto', 'cpu', 'cuda' or 'mps'."
        )
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available; use 'auto' or 'cpu'.")
    if chosen.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={device!r} was requested but MPS is not available; use 'auto' or 'cpu'.")
    if chosen.index is not None:
        count = torch.cuda.device_count() if chosen.type == "cuda" else 1
        if chosen.index >= count:
            raise ValueError(
                f"device={device!r} does not exist: this machine has {count} {chosen.type} "
                f"device(s) (indices 0 to {count - 1}); use {chosen.type!r} or 'auto'."
            )
    return chosen


PRECISIONS = ("auto", "float32", "bfloat16")


@functools.cache
def cpu_has_native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX), read from Linux's cpuinfo.

    Returns
    -------
    bool
        True only if ``/proc/cpuinfo`` lists ``avx512_bf16`` or ``amx_bf16``; False elsewhere
        (other operating systems, older CPUs), where bfloat16 would be emulated and slow.
        Read once per process (every ``analyze`` call asks).
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[-1].split())
                    return bool({"avx512_bf16", "amx_bf16"} & flags)
    except OSError:
        return False
    return False


def inference_precision(precision: str = "auto", device="cpu") -> str:
    """The number format for network inference: ``"float32"`` or ``"bfloat16"``.

    Parameters
    ----------
    precision : {"auto", "float32", "bfloat16"}
        ``"auto"``: bfloat16 on a CPU that computes it natively (about 2.5× faster there,
        probabilities within about 0.02 of float32), float32 everywhere else (GPUs included).
    device : str or torch.device
        Where inference runs.

    Returns
    -------
    str
        ``"float32"`` or ``"bfloat16"``; a fixed rule of the hardware, so repeated runs on the
        same machine give identical results.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is not known; use one of {list(PRECISIONS)}.")
    if precision != "auto":
        return precision
    device_type = getattr(device, "type", str(device).split(":")[0])
    return "bfloat16" if device_type == "cpu" and cpu_has_native_bfloat16() else "float32"


def on_binder() -> bool:
    """Return True when running on mybinder.org (detected from its environment variables)."""
    return any(name in os.environ for name in _BINDER_VARIABLES)


def num_workers(max_workers: int = 4) -> int:
    """Number of DataLoader worker processes suited to this machine.

    0 on Binder (tiny memory, shared CPUs) and when only one CPU is available; otherwise one less
    than the number of CPUs available to this process, at most ``max_workers``.
    """
    if on_binder():
        return 0
    try:
        n_cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        n_cpus = os.cpu_count() or 1
    return max(0, min(max_workers, n_cpus - 1))


def seed_everything(seed: int, *, deterministic: bool = True) -> np.random.Generator:
    """Seed Python, NumPy and PyTorch, and return a fresh NumPy generator for explicit use.

    Parameters
    ----------
    seed : int
        Non-negative integer seed.
    deterministic : bool
        Also ask PyTorch for deterministic kernels (cuDNN benchmark off). Operations without a
        deterministic implementation warn instead of failing.

    Returns
    -------
    numpy.random.Generator
        ``numpy.random.default_rng(seed)``: pass it to functions that take ``rng``.
    """
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed={seed!r} must be a non-negative integer.")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - legacy global state used by some libraries
    import torch

    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)
    return np.random.default_rng(seed)
