"""File paths given by users, and writes that never leave a half-written or destroyed file.

* :func:`as_path`: a :class:`pathlib.Path` from a str, bytes or path-like argument.
* :func:`replace_atomically`: write to a temporary file beside the target, then rename it over
  the target only when the write (and any check of it) succeeded.
* :func:`read_settings`: a JSON settings file (or a dict) merged over defaults, unknown keys refused.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import stat
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = ["as_path", "read_settings", "replace_atomically"]


def as_path(path: Any, *, argument: str = "path") -> Path:
    """A :class:`~pathlib.Path` from str, bytes or path-like; TypeError naming ``argument``.

    The package's one conversion of user-given paths (bytes paths are decoded with
    :func:`os.fsdecode`).
    """
    if isinstance(path, bytes):
        return Path(os.fsdecode(path))
    if isinstance(path, str | os.PathLike):
        return Path(path)
    raise TypeError(
        f"{argument} must be a path (str, bytes or pathlib.Path); got {type(path).__name__}."
    )


def _file_mode(path: Path) -> int:
    """Permissions for ``path``: those of the existing file, else 0666 less the umask."""
    if path.exists():
        return stat.S_IMODE(path.stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def replace_atomically(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``.

    The temporary file has the target's extension (so format-by-extension writers and readers
    work on it) and lives in the same folder (so the final :func:`os.replace` is atomic). If
    the ``with`` block raises, the temporary file is removed and ``path`` is left as it was.
    The parent folder is created. The file gets the permissions of the file it replaces, or
    the usual ones for a new file (0666 less the umask), not the private 0600 of a temp file.

    Examples
    --------
    >>> with replace_atomically("table.csv") as tmp:  # doctest: +SKIP
    ...     frame.to_csv(tmp, index=False)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, _file_mode(path))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def read_settings(source, defaults: Mapping[str, Any], *,
                  what: str = "configuration") -> tuple[dict[str, Any], str]:
    """Settings from a JSON file, a dict or None, merged over (a deep copy of) ``defaults``.

    Parameters
    ----------
    source : str, path-like, Mapping or None
        A JSON file holding an object, the settings themselves, or None (the defaults).
    defaults : Mapping
        Every known key with its default.
    what : str
        What the settings are, for error messages ("GAN configuration", ...).

    Returns
    -------
    settings : dict
    origin : str
        The file name, or "the <what>": where an error should point.

    Raises
    ------
    FileNotFoundError, ValueError
        A missing file, invalid JSON, not a JSON object, or unknown keys (named, usually typos).
    """
    if source is None:
        given, origin = {}, f"the {what}"
    elif isinstance(source, Mapping):
        given, origin = dict(source), f"the {what}"
    else:
        path = as_path(source, argument=what)
        if not path.is_file():
            raise FileNotFoundError(f"{what[0].upper() + what[1:]} file {path} not found.")
        try:
            given = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not valid JSON: {error}.") from error
        if not isinstance(given, dict):
            raise ValueError(f"{path} must hold a JSON object {{...}} of settings.")
        origin = str(path)
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ValueError(f"Unknown keys {unknown} in {origin}; known keys: {sorted(defaults)}.")
    return {**copy.deepcopy(dict(defaults)), **given}, origin
