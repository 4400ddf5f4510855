"""The stage contract.

A stage declares the columns it needs and the columns it adds, and maps a table to
``(kept, rejected)``. Every rejected row carries ``stage``, ``prompt_id``, ``lang``,
``reason`` and ``detail``; the runner checks ``rows_in == rows_kept + rows_rejected``
per language and records the funnel in the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import polars as pl

REJECT_SCHEMA = {"stage": pl.String, "prompt_id": pl.String, "lang": pl.String,
                 "reason": pl.String, "detail": pl.String}


@dataclass
class StageResult:
    kept: pl.DataFrame
    rejected: pl.DataFrame
    #: JSON-able figures a stage wants in the manifest (e.g. QE score quantiles per language).
    stats: dict = field(default_factory=dict)


@dataclass
class StageContext:
    """What a running stage may use besides its input table."""

    languages: list[str]
    progress: Callable[[str, int], Any] = field(default=lambda desc, total: _NullBar())


class _NullBar:
    def update(self, n: int = 1) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class Stage:
    """Base class. Subclasses set ``name``, ``inputs``, ``outputs`` and implement ``run``."""

    name: ClassVar[str]
    inputs: ClassVar[tuple[str, ...]] = ()
    outputs: ClassVar[tuple[str, ...]] = ()
    #: True when the stage turns one row per prompt into one row per (prompt, language);
    #: the funnel then counts every input row once for each language.
    expands_languages: ClassVar[bool] = False
    #: True for the first stage: it reads its rows instead of receiving them, so what it
    #: reads (kept + rejected) is its input.
    is_source: ClassVar[bool] = False
    #: Bump when the stage's code changes what it produces (part of its signature).
    version: ClassVar[str] = "1"

    def signature_parts(self) -> dict:
        """Everything besides upstream input that decides this stage's output."""
        return {}

    def preflight(self) -> None:
        """Cheap checks run before any stage works (missing models, impossible languages)."""

    def run(self, df: pl.DataFrame, ctx: StageContext) -> StageResult:
        raise NotImplementedError

    # helpers -----------------------------------------------------------------------
    def reject(self, df: pl.DataFrame, reason: str | pl.Expr, detail: str | pl.Expr | None = None) -> pl.DataFrame:
        """Rows of ``df`` as reject records of this stage."""
        def as_expr(v):
            if isinstance(v, pl.Expr):
                return v.cast(pl.String)
            return pl.lit(v, dtype=pl.String)
        # One chunk first: polars 2.1 panics ("i < self.len()") evaluating pl.format over a
        # filtered string column made of several chunks.
        df = df.rechunk()
        lang = pl.col("lang") if "lang" in df.columns else pl.lit("en")
        pid = pl.col("prompt_id") if "prompt_id" in df.columns else pl.lit(None, dtype=pl.String)
        return df.select(stage=pl.lit(self.name), prompt_id=pid, lang=lang,
                         reason=as_expr(reason), detail=as_expr(detail))


def empty_rejects() -> pl.DataFrame:
    return pl.DataFrame(schema=REJECT_SCHEMA)


def concat_rejects(frames: list[pl.DataFrame]) -> pl.DataFrame:
    frames = [f for f in frames if f.height]
    if not frames:
        return empty_rejects()
    return pl.concat([f.select(list(REJECT_SCHEMA)).cast(REJECT_SCHEMA) for f in frames])
