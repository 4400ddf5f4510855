"""Translation memory: exact matches of normalized English source text.

A memory is ``seed`` (the reference translations shipped with the package) or a folder
holding ``<lang>.jsonl`` / ``<lang>.parquet`` files with ``source`` and ``target`` columns.
Later memories in the list win over earlier ones for the same source text.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl

from refuseu.errors import InputError
from refuseu.resources import data_dir
from refuseu.text import normalize_series


def seed_memory_dir() -> Path:
    return data_dir() / "tm"


class TranslationMemory:
    name = "tm"

    def __init__(self, memories: list[str]):
        self.memories = memories
        self._dirs = [seed_memory_dir() if m == "seed" else Path(m) for m in memories]
        for d, m in zip(self._dirs, memories):
            if not d.is_dir():
                raise InputError("translation memory folder not found", file=m,
                                 field="translate.memory",
                                 hint="give 'seed' or a folder of <lang>.jsonl/.parquet files (source, target)")
        self._tables: dict[str, dict[str, str]] = {}

    def _files(self, lang: str) -> list[Path]:
        out = []
        for d in self._dirs:
            for ext in ("jsonl", "parquet"):
                f = d / f"{lang}.{ext}"
                if f.exists():
                    out.append(f)
        return out

    def covers(self, lang: str) -> bool:
        return bool(self._files(lang))

    def signature(self) -> dict:
        files = {}
        for d in self._dirs:
            for f in sorted(d.glob("*.jsonl")) + sorted(d.glob("*.parquet")):
                files[f"{d.name}/{f.name}"] = hashlib.sha256(f.read_bytes()).hexdigest()[:16]
        return {"engine": "tm", "files": files}

    def table(self, lang: str) -> dict[str, str]:
        if lang not in self._tables:
            merged: dict[str, str] = {}
            for f in self._files(lang):
                df = pl.read_ndjson(f) if f.suffix == ".jsonl" else pl.read_parquet(f)
                missing = {"source", "target"} - set(df.columns)
                if missing:
                    raise InputError(f"translation memory lacks columns {sorted(missing)}", file=str(f),
                                     hint="each row needs 'source' (English) and 'target'")
                df = df.select(normalize_series(df.get_column("source")),
                               normalize_series(df.get_column("target"))).filter(
                    pl.col("target").str.len_chars() > 0)
                merged.update(zip(df.get_column("source").to_list(), df.get_column("target").to_list()))
            self._tables[lang] = merged
        return self._tables[lang]

    def translate(self, texts: list[str], *, src: str, tgt: str) -> list[str | None]:
        table = self.table(tgt)
        return [table.get(t) for t in texts]
