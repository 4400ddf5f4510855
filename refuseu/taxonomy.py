"""The harm taxonomy (categories x attack styles) from ``schemas/taxonomy.yaml``.

Category labels of other public taxonomies (Llama Guard 3, OpenAI moderation, BeaverTails,
Aegis 2.0, HarmBench, SORRY-Bench, CatQA, and a list of common short labels) are mapped onto
the category ids by the tables in ``schemas/aliases/<taxonomy>.yaml``. Labels match
case-insensitively, with spaces, underscores, hyphens, slashes and '&'/'and' interchangeable
(see :func:`label_key`).
"""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from refuseu.resources import schemas_dir

UNCATEGORIZED = "uncategorized"


def label_key(value) -> str:
    """The form labels are compared in: lower case, '&' read as 'and', every run of
    characters other than letters and digits one underscore ("Suicide & Self-Harm" ->
    "suicide_and_self_harm")."""
    text = str(value).strip().lower().replace("&", " and ")
    return re.sub(r"[^\w]+|_+", "_", text, flags=re.UNICODE).strip("_")


@dataclass(frozen=True)
class AliasTable:
    name: str           # the taxonomy's name (file stem)
    source: str         # where the label set comes from
    labels: dict        # label as written -> category id
    keys: dict          # label_key(label) -> category id


@dataclass(frozen=True)
class Taxonomy:
    version: int
    categories: tuple[str, ...]
    attack_styles: tuple[str, ...]
    names: dict
    codes: dict
    aliases: dict = field(default_factory=dict)      # taxonomy name -> AliasTable
    alias_keys: dict = field(default_factory=dict)   # label key -> category id (all tables, unambiguous)
    ambiguous: dict = field(default_factory=dict)    # label key -> {taxonomy: id} where tables disagree
    alias_digest: str = ""

    def normalize_category(self, value: str, *, extra: dict | None = None,
                           prefer: tuple[str, ...] = ()) -> str | None:
        """Map a label to a category id, or None.

        Tried in order: ``extra`` (a source's ``category_map``, keys in any spelling), the
        alias tables named in ``prefer`` (a preset's taxonomy), the category ids, display
        names and Llama Guard codes (S1..S14), then every alias table. A label with commas
        that maps as a whole to nothing takes the first of its parts that maps (multi-label
        fields such as Aegis 2.0's ``violated_categories``).
        """
        found = self._category(value, extra, prefer)
        if found is None and "," in str(value):
            for part in str(value).split(","):
                if part.strip():
                    found = self._category(part, extra, prefer)
                    if found is not None:
                        break
        return found

    def _category(self, value, extra, prefer) -> str | None:
        key = label_key(value)
        if not key:
            return None
        if extra:
            for label, target in extra.items():
                if label_key(label) == key:
                    return target
        for name in prefer:
            table = self.aliases.get(name)
            if table is not None and key in table.keys:
                return table.keys[key]
        own = self._lookup(value, self.categories)
        if own is not None:
            return own
        return self.alias_keys.get(key)

    def normalize_style(self, value: str) -> str | None:
        return self._lookup(value, self.attack_styles)

    def _lookup(self, value: str, ids: tuple[str, ...]) -> str | None:
        key = label_key(value)
        if key in ids:
            return key
        for i in ids:
            if key in {label_key(self.names[i]), label_key(self.codes.get(i) or "\0")} - {""}:
                return i
        return None

    def known_labels(self) -> list[str]:
        """Every label a category can be given by, as written (for suggestions)."""
        out = list(self.categories) + [self.names[c] for c in self.categories]
        out += [c for c in (self.codes.get(i) for i in self.categories) if c and c != "-"]
        for table in self.aliases.values():
            out += [str(k) for k in table.labels]
        seen, unique = set(), []
        for label in out:
            if label not in seen:
                seen.add(label)
                unique.append(label)
        return unique

    def closest_labels(self, value: str, n: int = 3) -> list[str]:
        """The known labels closest to ``value`` (difflib over the normalized forms)."""
        by_key: dict[str, str] = {}
        for label in self.known_labels():
            by_key.setdefault(label_key(label), label)
        keys = difflib.get_close_matches(label_key(value), list(by_key), n=n, cutoff=0.5)
        return [by_key[k] for k in keys]


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    return _load(str(path or schemas_dir() / "taxonomy.yaml"), str(aliases_dir()))


def aliases_dir() -> Path:
    return schemas_dir() / "aliases"


def load_alias_table(path: str | Path) -> AliasTable:
    """One ``schemas/aliases/<taxonomy>.yaml`` file: ``labels: {label: category_id}``."""
    path = Path(path)
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    labels = data.get("labels")
    if not isinstance(labels, dict) or not labels:
        raise ValueError(f"{path}: needs a 'labels' mapping of label -> category id")
    keys = {label_key(k): str(v) for k, v in labels.items()}
    return AliasTable(name=str(data.get("taxonomy") or path.stem), source=str(data.get("source") or ""),
                      labels={str(k): str(v) for k, v in labels.items()}, keys=keys)


@lru_cache(maxsize=8)
def _load(path: str, aliases: str) -> Taxonomy:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    cats = tuple(c["id"] for c in data["categories"])
    styles = tuple(s["id"] for s in data["attack_styles"])
    names = {c["id"]: c["name"] for c in data["categories"] + data["attack_styles"]}
    codes = {c["id"]: c.get("code") for c in data["categories"]}
    tables: dict[str, AliasTable] = {}
    merged: dict[str, dict[str, str]] = {}
    digest = hashlib.sha256()
    folder = Path(aliases)
    for file in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        digest.update(file.name.encode() + b"\0" + file.read_bytes())
        table = load_alias_table(file)
        tables[file.stem] = table
        for key, target in table.keys.items():
            merged.setdefault(key, {})[file.stem] = target
    alias_keys = {k: next(iter(set(v.values()))) for k, v in merged.items() if len(set(v.values())) == 1}
    ambiguous = {k: v for k, v in merged.items() if len(set(v.values())) > 1}
    return Taxonomy(version=int(data.get("version", 1)), categories=cats, attack_styles=styles,
                    names=names, codes=codes, aliases=tables, alias_keys=alias_keys, ambiguous=ambiguous,
                    alias_digest=digest.hexdigest()[:16])
