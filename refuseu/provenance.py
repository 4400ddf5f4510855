"""What published files may say about where things came from: names, never local paths."""

from __future__ import annotations

import os
from pathlib import Path


def is_local_path(value: str) -> bool:
    """True for a string that names a file or folder of this machine (as opposed to a Hub id
    or a plain name)."""
    if not value:
        return False
    if os.path.isabs(value) or value.startswith(("./", "../", "~")):
        return True
    return os.sep in value and Path(value).exists()


def portable(value):
    """``value`` with local paths reduced to their last part: nothing published names a
    folder of the machine that built it (Hub ids and plain names pass unchanged).
    Works on strings, and on lists and dicts of them."""
    if isinstance(value, dict):
        return {k: portable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [portable(v) for v in value]
    if isinstance(value, str) and is_local_path(value):
        path = Path(value.rstrip("/"))
        if path.suffix == ".ckpt" and path.parent.name == "checkpoints":  # COMET: <model>/checkpoints/model.ckpt
            path = path.parent.parent
        return path.name or value
    return value


def absolute_if_local(value: str | None) -> str | None:
    """A local path spelled one way (absolute, ``~`` expanded), so that ``mt``, ``./mt`` and
    ``/home/me/mt`` give one signature; anything else unchanged."""
    if not value:
        return value
    path = Path(value).expanduser()
    if value.startswith("~") or path.exists():
        return str(path.resolve()) if path.exists() else str(path)
    return value
