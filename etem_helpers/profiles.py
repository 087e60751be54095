"""Run profiles: one place that turns ``PROFILE`` into sizes, epochs and batch sizes.

Every notebook has a ``PROFILE`` parameter:

``smoke``
    Seconds. What the tests run in CI: proves the notebook works end to end, not that it learns.
``quick``
    Minutes on a laptop CPU or Binder (2 cores, ~2 GB RAM). The default on a CPU.
``full``
    A GPU workstation or Colab: the sizes behind the figures quoted in the course.
``auto``
    ``full`` when a CUDA or MPS device is available, otherwise ``quick``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

PROFILE_NAMES = ("smoke", "quick", "full")


@dataclass(frozen=True)
class Profile:
    """Sizes used by the notebooks for one profile.

    Attributes
    ----------
    name : str
        ``"smoke"``, ``"quick"`` or ``"full"``.
    n_images : int
        Number of simulated micrographs to generate for a dataset.
    image_size_px : int
        Side of each simulated micrograph, in pixels.
    tile_px : int
        Side of the square tiles fed to networks, in pixels.
    epochs : int
        Training epochs.
    batch_size : int
        Mini-batch size for training.
    tiles_per_image : int
        Random crops drawn from each training micrograph per epoch.
    n_jobs : int
        Worker processes for data generation.
    interactive : bool
        Whether notebooks build ipywidgets explorers (off in smoke runs).
    """

    name: str
    n_images: int
    image_size_px: int
    tile_px: int
    epochs: int
    batch_size: int
    tiles_per_image: int
    n_jobs: int
    interactive: bool

    def to_dict(self) -> dict:
        """Return the profile as a plain dictionary (for JSON reports)."""
        return asdict(self)


_PROFILES = {
    "smoke": Profile(name="smoke", n_images=8, image_size_px=128, tile_px=64, epochs=1,
                     batch_size=4, tiles_per_image=2, n_jobs=1, interactive=False),
    "quick": Profile(name="quick", n_images=60, image_size_px=256, tile_px=128, epochs=14,
                     batch_size=8, tiles_per_image=4, n_jobs=2, interactive=True),
    "full": Profile(name="full", n_images=2000, image_size_px=512, tile_px=256, epochs=60,
                    batch_size=16, tiles_per_image=8, n_jobs=8, interactive=True),
}


def resolve_profile(profile: str = "auto", *, device=None, **overrides) -> Profile:
    """Turn a profile name into concrete sizes.

    Parameters
    ----------
    profile : str
        ``"auto"``, ``"smoke"``, ``"quick"`` or ``"full"`` (case-insensitive).
    device : str or torch.device, optional
        Used by ``"auto"``: ``full`` on ``cuda``/``mps``, ``quick`` otherwise. When omitted,
        ``auto`` detects the device with :func:`etem_helpers.device.get_device`.
    **overrides
        Field values that replace the profile's (e.g. ``epochs=3``); unknown names raise.

    Returns
    -------
    Profile
    """
    name = str(profile).strip().lower()
    if name == "auto":
        if device is None:
            from .device import get_device

            device = get_device("auto")
        name = "full" if str(getattr(device, "type", device)).startswith(("cuda", "mps")) else "quick"
    if name not in _PROFILES:
        raise ValueError(
            f"PROFILE={profile!r} is not a known profile; use one of 'auto', "
            + ", ".join(repr(p) for p in PROFILE_NAMES)
            + "."
        )
    chosen = _PROFILES[name]
    unknown = set(overrides) - set(chosen.to_dict())
    if unknown:
        raise ValueError(
            f"resolve_profile() got unknown override(s) {sorted(unknown)}; "
            f"valid names are {sorted(chosen.to_dict())}."
        )
    return replace(chosen, **overrides) if overrides else chosen
