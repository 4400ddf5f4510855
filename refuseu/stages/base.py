"""The stage contract.

A stage declares the columns it needs and the columns it adds, and maps a table to
``(kept, rejected)``. Every rejected row carries ``stage``, ``prompt_id``, ``lang``,
``reason`` and ``detail``; the runner checks ``rows_in == rows_kept + rows_rejected``
per language and records the funnel in the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterable, Iterator

import polars as pl

#: Rows per chunk when nothing else is said (``executor.chunk_rows``).
DEFAULT_CHUNK_ROWS = 50_000

REJECT_SCHEMA = {"stage": pl.String, "prompt_id": pl.String, "lang": pl.String,
                 "reason": pl.String, "detail": pl.String}


@dataclass
class StageResult:
    kept: pl.DataFrame
    rejected: pl.DataFrame
    #: JSON-able figures a stage wants in the manifest (e.g. QE score quantiles per language).
    #: Per chunk, a stage may keep raw values here that :meth:`Stage.merge_stats` reduces.
    stats: dict = field(default_factory=dict)
    #: The input chunk this result was made from (streaming): columns of ``kept`` equal to
    #: the input's are stored in the cache as references, not copies.
    input: pl.DataFrame | None = None


class Chunks:
    """A stage's input: a re-iterable sequence of row chunks in pipeline order.

    Iterating twice gives the same chunks (a global stage reads its input once to plan and
    once to apply). ``select(columns)`` iterates only those columns, which is cheaper when
    the chunks come from the stage cache."""

    def __iter__(self) -> Iterator[pl.DataFrame]:
        raise NotImplementedError

    def select(self, columns: Iterable[str]) -> Iterator[pl.DataFrame]:
        cols = list(columns)
        for chunk in self:
            yield chunk.select([c for c in cols if c in chunk.columns])

    @property
    def columns(self) -> list[str]:
        raise NotImplementedError

    @property
    def height(self) -> int:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def collect(self) -> pl.DataFrame:
        """Every chunk as one table (what a stage that needs the whole table at once gets)."""
        frames = list(self)
        if not frames:
            return pl.DataFrame()
        return pl.concat(frames, how="vertical") if len(frames) > 1 else frames[0]


class FrameChunks(Chunks):
    """Chunks held in memory (a table split every ``chunk_rows`` rows, or given frames)."""

    def __init__(self, frames: list[pl.DataFrame] | pl.DataFrame, chunk_rows: int | None = None):
        if isinstance(frames, pl.DataFrame):
            df = frames
            if chunk_rows is None or df.height <= chunk_rows:
                frames = [df]
            else:
                frames = [df.slice(s, chunk_rows) for s in range(0, df.height, chunk_rows)]
        self.frames = list(frames)

    def __iter__(self) -> Iterator[pl.DataFrame]:
        return iter(self.frames)

    @property
    def columns(self) -> list[str]:
        return self.frames[0].columns if self.frames else []

    @property
    def height(self) -> int:
        return sum(f.height for f in self.frames)

    def __len__(self) -> int:
        return len(self.frames)


@dataclass
class StageContext:
    """What a running stage may use besides its input table."""

    languages: list[str]
    progress: Callable[[str, int], Any] = field(default=lambda desc, total: _NullBar())
    #: Rows per chunk a source stage reads at a time.
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    #: A folder a stage may spill working files to (removed after the stage); None: a temp folder.
    scratch: str | None = None


class _NullBar:
    def update(self, n: int = 1) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class Stage:
    """Base class. Subclasses set ``name``, ``inputs``, ``outputs`` and implement ``run``
    (a row-local stage) or ``run_stream`` (a stage that needs to see every row).

    Streaming contract: the runner hands a stage its input as :class:`Chunks` and the stage
    yields one :class:`StageResult` per input chunk, in order (a source stage: one per
    chunk it reads). Concatenating the kept rows of all chunks must give exactly the rows
    (and row order) that one call on the whole table gives, whatever the chunk size; so a
    stage keeps its input's row order (a stage that makes rows, like translation, keeps a
    fixed order within each input row). Rejected rows may come in any order.
    """

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

    def needs_whole_table(self) -> bool:
        """True when this configuration of the stage must see every row in one table (the
        runner then collects its input, and memory grows with the input)."""
        return False

    def run(self, df: pl.DataFrame, ctx: StageContext) -> StageResult:
        """The stage on one table. Row-local stages implement this; for a stage that only
        implements :meth:`run_stream`, it runs the stream over the one table."""
        if type(self).run_stream is Stage.run_stream:
            raise NotImplementedError
        results = list(self.run_stream(FrameChunks([df]), ctx))
        kept = [r.kept for r in results]
        return StageResult(kept=pl.concat(kept, how="vertical") if len(kept) > 1 else kept[0] if kept else df,
                           rejected=concat_rejects([r.rejected for r in results]),
                           stats=self.merge_stats([r.stats for r in results]))

    def run_stream(self, chunks: Chunks, ctx: StageContext) -> Iterator[StageResult]:
        """One result per input chunk, in order. Default: :meth:`run` on each chunk (a source
        stage: :meth:`run` once, on an empty table)."""
        if self.is_source:
            yield self.run(pl.DataFrame(), ctx)
            return
        for chunk in chunks:
            res = self.run(chunk, ctx)
            if res.input is None:
                res.input = chunk
            yield res

    def merge_stats(self, parts: list[dict]) -> dict:
        """The stage's stats over every chunk from the stats of each (default: a later
        chunk's keys win; stages whose stats are sums or quantiles override this)."""
        out: dict = {}
        for p in parts:
            out.update(p)
        return out

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
