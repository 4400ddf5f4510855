"""What the dataset card, its figures and the build's counts need of a release table, gathered
chunk by chunk in memory that does not grow with the number of rows.

A :class:`TableSummary` holds, for one (config, split):

- ``counts``: rows per combination of the low-cardinality columns (:data:`GROUP_COLUMNS`), with
  the summed lengths of ``chosen``/``rejected`` and how many rows have each text (for means) and
  a language-ID score (for the provenance line);
- ``texts``: the distinct ``chosen``/``rejected`` texts per (language, kind), by hash (for the
  "distinct chosen/rejected" figures). This is the one part that grows, with the number of
  distinct texts (not rows);
- ``columns``: the released columns present.

A summary made from one whole table and one merged from the same rows cut in chunks are equal
(counts keep the order in which each combination first appears), so the card's bytes do not
depend on the chunk size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import polars as pl

#: Columns the card and its figures count rows by (few distinct values each).
GROUP_COLUMNS = ("lang", "kind", "category", "attack_style", "origin", "chosen_origin", "rejected_origin",
                 "engine", "engine_revision")
#: Texts whose lengths are summed and whose distinct values are counted.
RESPONSE_COLUMNS = ("chosen", "rejected")
#: Summed count columns of ``counts`` (besides the group columns).
SUM_COLUMNS = ("n", "chosen_chars", "chosen_texts", "rejected_chars", "rejected_texts", "lid_scored")


@dataclass
class TableSummary:
    columns: tuple[str, ...] = ()
    counts: pl.DataFrame = field(default_factory=lambda: _empty_counts())
    texts: pl.DataFrame = field(default_factory=lambda: _empty_texts())

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
        parts = []
        for col in RESPONSE_COLUMNS:
            if col in df.columns and df.schema[col] != pl.Null and {"lang", "kind"} <= set(df.columns):
                c = pl.col(col)
                parts.append(df.select(pl.col("lang").cast(pl.String), pl.col("kind").cast(pl.String),
                                       pl.lit(col).alias("column"),
                                       pl.when(c.is_null()).then(None).otherwise(c.hash(seed=0)).cast(pl.UInt64)
                                       .alias("hash")).unique(maintain_order=True))
        if parts:
            self.texts = pl.concat([self.texts, *parts], how="vertical_relaxed").unique(maintain_order=True)

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
        out.texts = pl.concat([s.texts for s in summaries], how="vertical_relaxed")
    return out
