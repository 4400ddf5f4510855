"""Translation memory: exact matches of normalized English source text.

A memory is one of

- ``seed``: the reference translations shipped with the package;
- a folder holding ``<lang>.jsonl`` / ``<lang>.parquet`` files with ``source`` (English) and
  ``target`` columns;
- one ``.jsonl`` / ``.parquet`` file with a ``lang`` column and ``source``/``target``, or
  ``text``/``translation`` (the output of ``refuseu translate``, usable as it is; rows
  without a translation are skipped).

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
        entries = [seed_memory_dir() if m == "seed" else Path(m) for m in memories]
        for d, m in zip(entries, memories):
            if not (d.is_dir() or (d.is_file() and d.suffix in (".jsonl", ".parquet"))):
                raise InputError("translation memory not found", file=m, field="translate.memory",
                                 hint="give 'seed', a folder of <lang>.jsonl/.parquet files (source, target), "
                                      "or a .jsonl/.parquet file with lang, source, target columns (the output "
                                      "of `refuseu translate` works as it is)")
        self._entries = entries
        self._single: dict[Path, pl.DataFrame] = {}
        self._tables: dict[str, dict[str, str]] = {}

    def _single_file(self, f: Path) -> pl.DataFrame:
        """A one-file memory as (lang, source, target) rows."""
        if f not in self._single:
            try:
                df = pl.read_ndjson(f, infer_schema_length=None) if f.suffix == ".jsonl" else pl.read_parquet(f)
            except Exception as e:
                raise InputError(f"translation memory is not readable ({type(e).__name__})", file=str(f),
                                 field="translate.memory") from None
            src = "source" if "source" in df.columns else "text"
            tgt = "target" if "target" in df.columns else "translation"
            missing = [c for c in ("lang", src, tgt) if c not in df.columns]
            if missing:
                raise InputError(f"translation memory lacks columns {missing}", file=str(f),
                                 field="translate.memory",
                                 hint="each row needs lang, source (English) and target; or lang, text and "
                                      "translation as `refuseu translate` writes them")
            self._single[f] = df.select(pl.col("lang").cast(pl.String), source=pl.col(src).cast(pl.String),
                                        target=pl.col(tgt).cast(pl.String)).drop_nulls()
        return self._single[f]

    def _files(self, lang: str) -> list[Path]:
        """In memory order: per-language files of folders, and one-file memories holding ``lang``."""
        out = []
        for d in self._entries:
            if d.is_dir():
                for ext in ("jsonl", "parquet"):
                    f = d / f"{lang}.{ext}"
                    if f.exists():
                        out.append(f)
            elif self._single_file(d).filter(pl.col("lang") == lang).height:
                out.append(d)
        return out

    def covers(self, lang: str) -> bool:
        return bool(self._files(lang))

    def signature(self) -> dict:
        files = {}
        for d in self._entries:
            found = sorted(d.glob("*.jsonl")) + sorted(d.glob("*.parquet")) if d.is_dir() else [d]
            for f in found:
                key = f"{d.name}/{f.name}" if d.is_dir() else f.name
                files[key] = hashlib.sha256(f.read_bytes()).hexdigest()[:16]
        return {"engine": "tm", "files": files}

    def table(self, lang: str) -> dict[str, str]:
        if lang not in self._tables:
            merged: dict[str, str] = {}
            for f in self._files(lang):
                if f in self._entries:  # a one-file memory
                    df = self._single_file(f).filter(pl.col("lang") == lang).select("source", "target")
                else:
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
