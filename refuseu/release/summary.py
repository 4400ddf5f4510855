"""What the dataset card, its figures and the build's counts need of a release table, gathered
chunk by chunk in memory that does not grow with the number of rows.

A :class:`TableSummary` holds, for one (config, split):

- ``counts``: rows per combination of the low-cardinality columns (:data:`GROUP_COLUMNS`), with
  the summed lengths of ``chosen``/``rejected`` and how many rows have each text (for means) and
  a language-ID score (for the provenance line);
- the distinct ``chosen``/``rejected`` texts per (language, kind), as sorted arrays of 64-bit
  hashes (for the "distinct chosen/rejected" figures; :meth:`TableSummary.distinct`). This is
  the one part that grows, by 8 bytes a distinct text (not a row);
- ``columns``: the released columns present.

A summary made from one whole table and one merged from the same rows cut in chunks are equal
(counts keep the order in which each combination first appears), so the card's bytes do not
depend on the chunk size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import polars as pl

#: Columns the card and its figures count rows by (few distinct values each).
GROUP_COLUMNS = ("lang", "kind", "category", "attack_style", "origin", "chosen_origin", "rejected_origin",
                 "engine", "engine_revision")
#: Texts whose lengths are summed and whose distinct values are counted.
RESPONSE_COLUMNS = ("chosen", "rejected")
#: Summed count columns of ``counts`` (besides the group columns).
SUM_COLUMNS = ("n", "chosen_chars", "chosen_texts", "rejected_chars", "rejected_texts", "lid_scored")


class HashSet:
    """Distinct 64-bit hashes (and whether a null was seen): chunks are added as they come and
    merged into one sorted array when they outgrow it, so adding n hashes costs O(n log n)."""

    def __init__(self):
        self.sorted = np.empty(0, dtype=np.uint64)
        self.parts: list[np.ndarray] = []
        self.pending = 0
        self.null = False

    def add(self, hashes: np.ndarray, *, null: bool = False) -> None:
        self.null |= null
        if len(hashes):
            self.parts.append(hashes)
            self.pending += len(hashes)
            if self.pending > max(len(self.sorted), 1 << 16):
                self.values()

    def update(self, other: "HashSet") -> None:
        self.add(other.values(), null=other.null)

    def values(self) -> np.ndarray:
        """The distinct hashes, sorted."""
        if self.parts:
            self.sorted = np.unique(np.concatenate([self.sorted, *self.parts]))
            self.parts, self.pending = [], 0
        return self.sorted

    def __len__(self) -> int:
        """Distinct values, a null counting as one."""
        return len(self.values()) + int(self.null)


@dataclass
class TableSummary:
    columns: tuple[str, ...] = ()
    counts: pl.DataFrame = field(default_factory=lambda: _empty_counts())
    #: (lang, kind, column) -> the distinct texts of that column in those rows
    hashes: dict[tuple[str, str, str], HashSet] = field(default_factory=dict)

    @property
    def height(self) -> int:
        """Rows of the table."""
        return int(self.counts["n"].sum()) if self.counts.height else 0

    @classmethod
    def of(cls, table: "pl.DataFrame | TableSummary") -> "TableSummary":
        """The summary of a whole table (a summary stays as it is)."""
        if isinstance(table, TableSummary):
            return table
        s = cls()
        s.add(table)
        return s

    def add(self, df: pl.DataFrame) -> None:
        """Count the rows of ``df`` (release rows in the standard format) in."""
        self.columns = tuple(dict.fromkeys((*self.columns, *df.columns)))
        keys = [c for c in GROUP_COLUMNS if c in df.columns]
        aggs = [pl.len().cast(pl.Int64).alias("n")]
        for col in RESPONSE_COLUMNS:
            present = col in df.columns and df.schema[col] != pl.Null
            aggs.append((pl.col(col).str.len_chars().cast(pl.Int64).sum() if present else pl.lit(0, pl.Int64))
                        .alias(f"{col}_chars"))
            aggs.append((pl.col(col).is_not_null().sum().cast(pl.Int64) if present else pl.lit(0, pl.Int64))
                        .alias(f"{col}_texts"))
        aggs.append((pl.col("lid_score").is_not_null().sum().cast(pl.Int64) if "lid_score" in df.columns
                     else pl.lit(0, pl.Int64)).alias("lid_scored"))
        counts = (df.group_by(keys, maintain_order=True).agg(aggs) if keys
                  else df.select(aggs) if df.height else _empty_counts())
        counts = counts.with_columns(pl.col(k).cast(pl.String) for k in keys)
        self.counts = _merge_counts(self.counts, counts)
        if not {"lang", "kind"} <= set(df.columns):
            return
        for col in RESPONSE_COLUMNS:
            if col not in df.columns or df.schema[col] == pl.Null:
                continue
            part = df.select(pl.col("lang").cast(pl.String), pl.col("kind").cast(pl.String),
                             pl.col(col).hash(seed=0).alias("hash"), pl.col(col).is_null().alias("null"))
            for (lang, kind), rows in part.partition_by("lang", "kind", as_dict=True).items():
                hashes = rows.filter(~pl.col("null")).get_column("hash").unique().to_numpy()
                self.hashes.setdefault((lang, kind, col), HashSet()).add(hashes, null=bool(rows["null"].any()))

    def distinct(self, column: str, **equal) -> int:
        """Distinct texts of ``column`` in the rows whose ``lang``/``kind`` equal the given values."""
        merged = HashSet()
        for (lang, kind, col), hs in self.hashes.items():
            if col == column and equal.get("lang", lang) == lang and equal.get("kind", kind) == kind:
                merged.update(hs)
        return len(merged)

    @property
    def texts(self) -> pl.DataFrame:
        """The distinct texts as rows (lang, kind, column, hash; a null hash for a null text)."""
        frames = [_empty_texts()]
        for (lang, kind, col), hs in sorted(self.hashes.items(), key=lambda kv: [k or "" for k in kv[0]]):
            values = pl.Series("hash", hs.values(), dtype=pl.UInt64)
            if hs.null:
                values = values.append(pl.Series("hash", [None], dtype=pl.UInt64))
            frames.append(pl.DataFrame({"hash": values}).select(
                pl.lit(lang, pl.String).alias("lang"), pl.lit(kind, pl.String).alias("kind"),
                pl.lit(col, pl.String).alias("column"), "hash"))
        return pl.concat(frames)

    def where(self, **equal) -> pl.DataFrame:
        """The count rows whose columns equal the given values."""
        out = self.counts
        for col, value in equal.items():
            if col not in out.columns:
                return out.clear()
            out = out.filter(pl.col(col) == value)
        return out


def _empty_counts() -> pl.DataFrame:
    return pl.DataFrame(schema={c: pl.Int64 for c in SUM_COLUMNS})


def _empty_texts() -> pl.DataFrame:
    return pl.DataFrame(schema={"lang": pl.String, "kind": pl.String, "column": pl.String, "hash": pl.UInt64})


def _merge_counts(a: pl.DataFrame, b: pl.DataFrame) -> pl.DataFrame:
    if not a.height:
        return b if b.height or b.width > a.width else a
    if not b.height:
        return a
    keys = [c for c in a.columns if c not in SUM_COLUMNS]
    keys += [c for c in b.columns if c not in SUM_COLUMNS and c not in keys]
    both = pl.concat([a, b], how="diagonal_relaxed")
    return both.group_by(keys, maintain_order=True).agg(pl.col(c).sum() for c in SUM_COLUMNS)


def summaries_of(tables: dict) -> dict[tuple[str, str], TableSummary]:
    """(config, split) -> summary, for release tables (whole) or summaries."""
    return {key: TableSummary.of(t) for key, t in tables.items()}


def combined(summaries: Iterable[TableSummary]) -> TableSummary:
    """One summary of several tables' rows (counts are concatenated, not merged: sums and
    group-bys over them are what they would be over the rows)."""
    summaries = list(summaries)
    out = TableSummary()
    out.columns = tuple(dict.fromkeys(c for s in summaries for c in s.columns))
    if summaries:  # (empty ones too: their columns say what the tables have)
        out.counts = pl.concat([s.counts for s in summaries], how="diagonal_relaxed")
        for s in summaries:
            for key, hs in s.hashes.items():
                out.hashes.setdefault(key, HashSet()).update(hs)
    return out
