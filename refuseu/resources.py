"""Locations of the files shipped with the package."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def data_dir() -> Path:
    return PACKAGE_DIR / "data"


def schemas_dir() -> Path:
    return PACKAGE_DIR / "schemas"


def seed_prompts_path() -> Path:
    return data_dir() / "seed" / "prompts.jsonl"


def recipes_dir() -> Path:
    """The repository's ``recipes/`` folder (next to the package in a checkout)."""
    return PACKAGE_DIR.parent / "recipes"
