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
from refuseu.sources.formats import (BOM, check_utf8, first_non_string, parquet_error, read_json_lines, show_value,
                                     value_kind)
from refuseu.text import normalize_series

MEMORY_FILE_TYPES = (".jsonl", ".parquet")
ALLOWED_MEMORIES = ("'seed', a folder of <lang>.jsonl/.parquet files (source, target), or a .jsonl/.parquet "
                    "file with lang, source, target columns (the output of `refuseu translate` works as it is)")
_STRING_TYPES = (pl.String, pl.Categorical, pl.Enum, pl.Null)


def seed_memory_dir() -> Path:
    return data_dir() / "tm"


def _memory_os_error(e: OSError, display: str) -> InputError:
    if isinstance(e, PermissionError):
        return InputError("cannot read the translation memory (permission denied)", file=display,
                          field="translate.memory", hint="make the file readable or give another memory")
    if isinstance(e, IsADirectoryError):
        return InputError("is a folder, not a translation memory file", file=display, field="translate.memory",
                          hint=f"give {ALLOWED_MEMORIES}")
    if isinstance(e, FileNotFoundError):
        return InputError("translation memory not found", file=display, field="translate.memory",
                          hint=f"give {ALLOWED_MEMORIES}")
    return InputError(f"cannot read the translation memory ({e.strerror or e})", file=display,
                      field="translate.memory")


def read_memory_file(path: Path, display: str, columns: tuple[str, ...]) -> pl.DataFrame:
    """A .jsonl or .parquet memory file as a frame with ``__row`` (the line of a JSON line,
    the row of a Parquet file); the values of ``columns`` that it has must be strings.
    Anything unreadable is an :class:`InputError` naming the file, line and field."""
    empty = InputError("the translation memory file is empty", file=display, field="translate.memory",
                       hint="give a file with at least one row (source, target)")
    if path.suffix.lower() == ".parquet":
        try:
            if path.stat().st_size == 0:
                raise empty
            df = pl.read_parquet(path, glob=False)  # a name with [ ] * ? is a name, not a pattern
        except OSError as e:
            raise _memory_os_error(e, display) from None
        except InputError:
            raise
        except (Exception, pl.exceptions.PanicException) as e:  # noqa: BLE001 - polars says what is wrong
            raise parquet_error(e, display, field="translate.memory") from None
        df = df.with_columns(pl.int_range(1, df.height + 1, dtype=pl.Int64).alias("__row"))
        data = None
    else:
        try:
            data = path.read_bytes()
        except OSError as e:
            raise _memory_os_error(e, display) from None
        if data.startswith(BOM):
            data = data[len(BOM):]
        if not data.strip():
            raise empty
        check_utf8(data, display, 1)
        df = read_json_lines(data, display)
    for col in columns:
        if col not in df.columns:
            continue
        if data is not None:  # JSON lines: polars reads mixed strings and numbers as text
            found = first_non_string(df, data, 1, col)
        elif df.schema[col] in _STRING_TYPES:
            found = None
        else:
            nonnull = df.filter(pl.col(col).is_not_null())
            found = nonnull.select("__row", col).row(0) if nonnull.height else None
        if found is not None:
            row, value = found
            raise InputError(f"must be a string, found {value_kind(value)} ({show_value(value)})", file=display,
                             line=row, field=col,
                             hint="each row needs 'source' (the English text) and 'target' (its translation) "
                                  "as strings")
    return df


class TranslationMemory:
    name = "tm"

    def __init__(self, memories: list[str]):
        self.memories = memories
        entries = [seed_memory_dir() if m == "seed" else Path(m) for m in memories]
        for d, m in zip(entries, memories):
            if d.is_dir():
                continue
            if not d.exists():
                raise InputError("translation memory not found", file=m, field="translate.memory",
                                 hint=f"give {ALLOWED_MEMORIES}")
            if d.suffix.lower() not in MEMORY_FILE_TYPES:
                what = f"'{d.suffix}' files are not read" if d.suffix else "the file has no extension"
                raise InputError(f"unsupported translation memory file type ({what})", file=m,
                                 field="translate.memory", hint=f"give {ALLOWED_MEMORIES}")
            if not d.is_file():
                raise InputError("not a regular file", file=m, field="translate.memory",
                                 hint=f"give {ALLOWED_MEMORIES}")
        self._entries = entries
        self._single: dict[Path, pl.DataFrame] = {}
        self._tables: dict[str, dict[str, str]] = {}

    def _single_file(self, f: Path) -> pl.DataFrame:
        """A one-file memory as (lang, source, target) rows."""
        if f not in self._single:
            df = read_memory_file(f, str(f), ("lang", "source", "target", "text", "translation"))
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
                try:
                    files[key] = hashlib.sha256(f.read_bytes()).hexdigest()[:16]
                except OSError as e:
                    raise _memory_os_error(e, str(f)) from None
        return {"engine": "tm", "files": files}

    def table(self, lang: str) -> dict[str, str]:
        if lang not in self._tables:
            merged: dict[str, str] = {}
            for f in self._files(lang):
                if f in self._entries:  # a one-file memory
                    df = self._single_file(f).filter(pl.col("lang") == lang).select("source", "target")
                else:
                    df = read_memory_file(f, str(f), ("source", "target"))
                missing = {"source", "target"} - set(df.columns)
                if missing:
                    raise InputError(f"translation memory lacks columns {sorted(missing)}", file=str(f),
                                     field="translate.memory",
                                     hint="each row needs 'source' (English) and 'target'")
                df = df.select(normalize_series(df.get_column("source").cast(pl.String)),
                               normalize_series(df.get_column("target").cast(pl.String))).filter(
                    pl.col("target").str.len_chars() > 0)
                merged.update(zip(df.get_column("source").to_list(), df.get_column("target").to_list()))
            self._tables[lang] = merged
        return self._tables[lang]

    def translate(self, texts: list[str], *, src: str, tgt: str) -> list[str | None]:
        table = self.table(tgt)
        return [table.get(t) for t in texts]
