"""The harm taxonomy (categories x attack styles) from ``schemas/taxonomy.yaml``."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from refuseu.resources import schemas_dir


@dataclass(frozen=True)
class Taxonomy:
    version: int
    categories: tuple[str, ...]
    attack_styles: tuple[str, ...]
    names: dict
    codes: dict

    def normalize_category(self, value: str) -> str | None:
        """Map an id, a display name or a Llama Guard code (S1..S14) to a category id."""
        return self._lookup(value, self.categories)

    def normalize_style(self, value: str) -> str | None:
        return self._lookup(value, self.attack_styles)

    def _lookup(self, value: str, ids: tuple[str, ...]) -> str | None:
        key = str(value).strip().lower().replace("-", "_").replace(" ", "_")
        if key in ids:
            return key
        for i in ids:
            if key in {self.names[i].lower().replace("-", "_").replace(" ", "_"),
                       str(self.codes.get(i, "")).lower()}:
                return i
        return None


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    return _load(str(path or schemas_dir() / "taxonomy.yaml"))


@lru_cache(maxsize=8)
def _load(path: str) -> Taxonomy:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    cats = tuple(c["id"] for c in data["categories"])
    styles = tuple(s["id"] for s in data["attack_styles"])
    names = {c["id"]: c["name"] for c in data["categories"] + data["attack_styles"]}
    codes = {c["id"]: c.get("code") for c in data["categories"]}
    return Taxonomy(version=int(data.get("version", 1)), categories=cats, attack_styles=styles,
                    names=names, codes=codes)
