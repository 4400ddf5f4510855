"""Checks of the folders a build writes to, before any work is done."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from refuseu.config import Recipe
from refuseu.errors import InputError

# Where each folder is set in a recipe; the command line passes the flag names instead.
RECIPE_KEYS = {"release.out": "release.out", "build_dir": "build_dir"}


def check_output_paths(recipe: Recipe, *, flags: Mapping[str, str] | None = None) -> None:
    """Fail with an :class:`InputError` (exit 2) unless the release folder (``release.out``)
    and the build folder (``build_dir``) can be used: each must be a folder or not exist yet,
    with no file in the way on its path, and be writable (or creatable). Writes nothing.

    ``flags`` maps ``release.out`` / ``build_dir`` to the flag that set it (``--out``,
    ``--build-dir``), so that the message names what the user typed.
    """
    names = {**RECIPE_KEYS, **(flags or {})}
    for key, value in (("release.out", recipe.release.out), ("build_dir", recipe.build_dir)):
        check_folder(value, names[key])


def check_folder(value: str, name: str) -> None:
    """Exit 2 (``InputError`` naming ``name``) unless ``value`` is a folder this process can
    write into, or can be created as one."""
    path = Path(value).expanduser()
    where = f"{name} '{value}'"
    if path.exists() and not path.is_dir():
        raise InputError(f"{where}: exists and is a file, not a folder",
                         hint=f"give a folder for {name} (it is created when missing), or move the file away")
    # The nearest part of the path that exists must be a folder we may write into.
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise InputError(f"{where}: '{existing}' is a file, so the folder cannot be created there",
                         hint=f"give a folder path for {name} whose parents are folders")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "folder" if existing == path else f"parent folder '{existing}'"
        raise InputError(f"{where}: the {what} is not writable",
                         hint=f"give a writable folder for {name}, or fix its permissions")
