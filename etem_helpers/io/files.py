"""File paths given by users, and writes that never leave a half-written or destroyed file.

* :func:`as_path`: a :class:`pathlib.Path` from a str, bytes or path-like argument.
* :func:`replace_atomically`: write to a temporary file beside the target, then rename it over
  the target only when the write (and any check of it) succeeded.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["as_path", "replace_atomically"]


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


@contextlib.contextmanager
def replace_atomically(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``.

    The temporary file has the target's extension (so format-by-extension writers and readers
    work on it) and lives in the same folder (so the final :func:`os.replace` is atomic). If
    the ``with`` block raises, the temporary file is removed and ``path`` is left as it was.
    The parent folder is created.

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
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
