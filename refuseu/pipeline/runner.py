"""Run stages in order with signature-keyed caching and the funnel invariant."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from refuseu import CODE_VERSION
from refuseu.errors import BuildError, InvariantError
from refuseu.faults import checkpoint
from refuseu.pipeline.cache import CacheDamaged, Entry, EntryChunks, StageCache
from refuseu.pipeline.progress import Reporter
from refuseu.signatures import signature_of
from refuseu.stages.base import (DEFAULT_CHUNK_ROWS, REJECT_SCHEMA, Chunks, FrameChunks, Stage, StageContext,
                                 StageResult, concat_rejects)

__all__ = ["Pipeline", "PipelineResult", "StageRecord", "signature_of"]


@dataclass
class StageRecord:
    name: str
    signature: str
    cached: bool
    seconds: float
    funnel: dict  # lang -> {"in", "kept", "rejected", "reasons": {reason: n}}
    stats: dict = field(default_factory=dict)


@dataclass
class PipelineResult:
    """What a run made: the kept rows of the last stage as :attr:`chunks` (read from the stage
    cache chunk by chunk), every stage's rejects, and the record of each stage."""

    chunks: Chunks
    rejects: pl.DataFrame
    records: list[StageRecord] = field(default_factory=list)

    @property
    def table(self) -> pl.DataFrame:
        """Every kept row in one table (memory grows with the release: prefer :attr:`chunks`)."""
        return self.chunks.collect()

    @property
    def height(self) -> int:
        return self.chunks.height

    @property
    def signature(self) -> str:
        return self.records[-1].signature

    @property
    def funnel(self) -> dict:
        return {r.name: r.funnel for r in self.records}

    @property
    def stats(self) -> dict:
        return {r.name: r.stats for r in self.records if r.stats}

    @property
    def stages_run(self) -> list[str]:
        return [r.name for r in self.records if not r.cached]


class Pipeline:
    """An ordered list of stages over one build folder.

    The first stage receives an empty table (it is a source). Each stage's output is
    cached under ``<build_dir>/stages/<nn>-<name>/<signature>/``; the signature covers
    the stage's own settings, its code version and the upstream signature, so a change
    reruns that stage and everything after it.
    """

    def __init__(self, stages: list[Stage], *, build_dir: str | Path, languages: list[str],
                 reporter: Reporter | None = None, chunk_rows: int = DEFAULT_CHUNK_ROWS):
        self.stages = stages
        self.build_dir = Path(build_dir)
        self.languages = languages
        self.reporter = reporter or Reporter(quiet=True)
        self.cache = StageCache(self.build_dir)
        self.chunk_rows = chunk_rows
        self._sigs: list[str] | None = None
        self._preflighted = False

    # planning ---------------------------------------------------------------------
    def check_columns(self) -> None:
        """Fail before any work when a stage needs a column no earlier stage provides."""
        available: set[str] = set()
        for st in self.stages:
            missing = [c for c in st.inputs if c not in available]
            if missing:
                raise InvariantError(f"stage '{st.name}' needs columns {missing} that no earlier stage "
                                     f"provides (available: {sorted(available)})")
            available |= set(st.outputs)

    def preflight(self) -> None:
        """Column chaining and every stage's cheap checks (missing models, languages); once."""
        if self._preflighted:
            return
        self.check_columns()
        for st in self.stages:
            st.preflight()
        self._preflighted = True

    def signatures(self) -> list[str]:
        if self._sigs is None:
            sigs, upstream = [], ""
            for st in self.stages:
                upstream = signature_of({"stage": st.name, "stage_version": st.version,
                                         "code": CODE_VERSION, "parts": st.signature_parts(),
                                         "upstream": upstream})
                sigs.append(upstream)
            self._sigs = sigs
        return self._sigs

    def _dir(self, i: int) -> Path:
        return self.cache.entry_dir(i, self.stages[i].name, self.signatures()[i])

    def _load_prefix(self) -> list[Entry]:
        """The longest run of verified cache entries from the first stage; the chunk files of
        the last one (its own and those it refers to) are verified too. A damaged entry is
        reported, removed and recomputed."""
        sigs = self.signatures()
        entries: list[Entry] = []
        for i, st in enumerate(self.stages):
            d = self._dir(i)
            if not d.exists():
                break
            try:
                entries.append(self.cache.load(d, stage=st.name, signature=sigs[i]))
            except CacheDamaged as e:
                self._damaged(i, e)
                break
        while entries:
            try:
                self.cache.verify_chunks(entries[-1])
                return entries
            except CacheDamaged as e:
                # The damaged file may be an earlier entry's (a referenced column): that entry
                # is reported, and it and every later one are computed again.
                k = next((i for i in range(len(entries)) if self.cache.rel(self._dir(i)) == e.entry),
                         len(entries) - 1)
                self._damaged(k, e)
                for j in range(k + 1, len(entries)):
                    self.cache.discard(self._dir(j))
                del entries[k:]
        return []

    def _damaged(self, i: int, err: CacheDamaged) -> None:
        self.reporter.warn(f"cache entry for stage {self.stages[i].name} damaged ({err}): recomputing")
        self.cache.discard(self._dir(i))

    # running ----------------------------------------------------------------------
    def run(self) -> PipelineResult:
        """Run the stages that are not cached, each over its input in chunks: a stage reads
        its input chunk by chunk from the previous stage's cache entry and writes its own
        entry chunk by chunk, so memory holds about one chunk (and what a stage keeps
        globally), whatever the size of the input."""
        self.preflight()
        sigs = self.signatures()
        removed = self.cache.remove_leftovers()
        if removed:
            self.reporter.info(f"removed {removed} partial cache entr{'y' if removed == 1 else 'ies'} "
                               "left by an interrupted build")
        entries = self._load_prefix()
        records: list[StageRecord] = []
        rejects: list[pl.DataFrame] = []
        for i, entry in enumerate(entries):
            records.append(StageRecord(self.stages[i].name, sigs[i], True, 0.0, entry.meta["funnel"],
                                       entry.meta.get("stats", {})))
            rejects.append(entry.rejected)
            self.reporter.info(f"  [dim]cached[/dim]  {self.stages[i].name}")
        chunks: Chunks = EntryChunks(self.cache, entries[-1]) if entries else FrameChunks([])
        ctx = StageContext(languages=self.languages, progress=self.reporter.bar, chunk_rows=self.chunk_rows)
        for i in range(len(entries), len(self.stages)):
            st = self.stages[i]
            checkpoint(f"stage:{st.name}:start")
            t0 = time.perf_counter()
            previous = records[-1].funnel if records else None
            try:
                chunks, record, rejected = self._run_stage(i, chunks, previous, ctx)
            except _CacheWriteFailed as e:
                # The cache saves time; a build goes on without it (the next build recomputes).
                self._cache_warning(st, e.error)
                chunks, record, rejected = self._run_stage(i, chunks, previous, ctx, use_cache=False)
            except CacheDamaged as e:
                # Verified when the build started, damaged since: the next build recomputes it.
                if e.entry:
                    self.cache.discard(self.cache.root / e.entry)
                raise BuildError(f"the stage cache changed while stage {st.name} was reading it ({e})",
                                 hint="run the build again (the damaged entry was removed and is recomputed)") from None
            record.seconds = time.perf_counter() - t0
            checkpoint(f"stage:{st.name}:end")
            records.append(record)
            rejects.append(rejected)
            n_in = sum(v["in"] for v in record.funnel.values())
            n_rej = sum(v["rejected"] for v in record.funnel.values())
            self.reporter.info(f"  [green]done[/green]    {st.name}: {n_in} in, {n_in - n_rej} kept, "
                               f"{n_rej} rejected ({record.seconds:.2f}s)")
        return PipelineResult(chunks=chunks, rejects=concat_rejects(rejects), records=records)

    def _run_stage(self, i: int, chunks: Chunks, previous: dict | None, ctx: StageContext, *,
                   use_cache: bool = True):
        """Stage ``i`` over ``chunks``: its output chunks (from its new cache entry, or in
        memory when the cache cannot be written), its record and its rejects."""
        st = self.stages[i]
        whole = st.needs_whole_table() and len(chunks) > 1
        if whole:
            chunks = FrameChunks([chunks.collect()])
        refs = chunks.refs if isinstance(chunks, EntryChunks) else None
        writer = None
        cache_on = use_cache

        def open_writer():
            # Opened with the first result: a stage that fails before it (e.g. a source with a
            # bad row) leaves nothing in the cache folder.
            nonlocal writer, cache_on
            if cache_on and writer is None:
                try:
                    writer = self.cache.open(self._dir(i), stage=st.name, signature=self.signatures()[i])
                except OSError as e:
                    self._cache_warning(st, e)
                    cache_on = False
            return writer

        kept_counts: dict[str, int] = {}
        rej_frames: list[pl.DataFrame] = []
        stats_parts: list[dict] = []
        in_memory: list[pl.DataFrame] = []
        # One background thread writes chunk k while the stage computes chunk k + 1 (polars
        # and the IPC writer release the GIL); at most one write is pending.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="refuseu-cache") as pool:
            pending = None
            try:
                for k, res in enumerate(st.run_stream(chunks, ctx)):
                    if k == 0:
                        self._check_result(st, res)
                    for lang, n in _lang_counts(res.kept).items():
                        kept_counts[lang] = kept_counts.get(lang, 0) + n
                    rej_frames.append(res.rejected)
                    stats_parts.append(res.stats)
                    outs = [res.kept] if not whole else [res.kept.slice(s, self.chunk_rows)
                                                         for s in range(0, max(res.kept.height, 1), self.chunk_rows)]
                    up = res.input if not whole else None
                    up_refs = refs(k) if (refs is not None and up is not None) else None
                    for out in outs:
                        if pending is not None:
                            pending.result()
                            pending = None
                        if open_writer() is not None:
                            pending = pool.submit(_write_chunk, writer, out, up, up_refs)
                        else:
                            in_memory.append(out)
                if pending is not None:
                    pending.result()
                    pending = None
            except BaseException:
                if pending is not None:
                    pending.cancel()
                if writer is not None:
                    pool.shutdown(wait=True)
                    writer.abort()
                raise
        rejected = concat_rejects(rej_frames)
        funnel = self._funnel(st, chunks, previous, kept_counts, rejected)
        stats = st.merge_stats(stats_parts)
        record = StageRecord(st.name, self.signatures()[i], False, 0.0, funnel, stats)
        if open_writer() is None:
            return FrameChunks(in_memory), record, rejected
        try:
            entry = writer.finish(rejected=rejected, funnel=funnel, stats=stats)
        except OSError as e:
            writer.abort()
            raise _CacheWriteFailed(e) from e
        return EntryChunks(self.cache, entry), record, rejected

    def _cache_warning(self, st: Stage, e: OSError) -> None:
        self.reporter.warn(f"could not write the cache entry for stage {st.name} "
                           f"({e.strerror or type(e).__name__}: {e.filename or self.cache.root}): "
                           "continuing without it")

    @staticmethod
    def _check_result(st: Stage, res: StageResult) -> None:
        missing_cols = [c for c in REJECT_SCHEMA if c not in res.rejected.columns]
        if missing_cols:
            raise InvariantError(f"stage '{st.name}' returned rejects without columns {missing_cols}")
        missing_out = [c for c in st.outputs if c not in res.kept.columns]
        if missing_out:
            raise InvariantError(f"stage '{st.name}' did not produce its declared columns {missing_out}")

    def _funnel(self, st: Stage, chunks: Chunks, previous: dict | None, kept: dict[str, int],
                rejected: pl.DataFrame) -> dict:
        """Rows in, kept and rejected per language; in = kept + rejected or the build fails.
        A stage's rows in are the previous stage's kept rows (once per language for a stage
        that makes a row per language)."""
        rej = _lang_counts(rejected)
        if st.is_source:
            rows_in = {k: kept.get(k, 0) + rej.get(k, 0) for k in set(kept) | set(rej)}
        elif st.expands_languages:
            rows_in = {lang: chunks.height for lang in self.languages}
        else:
            rows_in = {lang: f["kept"] for lang, f in (previous or {}).items() if f["kept"]}
        reasons: dict[str, dict[str, int]] = {}
        if rejected.height:
            for lang, reason, n in rejected.group_by("lang", "reason").len().iter_rows():
                reasons.setdefault(lang, {})[reason] = n
        funnel = {}
        for lang in sorted(set(rows_in) | set(kept) | set(rej)):
            n_in, n_kept, n_rej = rows_in.get(lang, 0), kept.get(lang, 0), rej.get(lang, 0)
            if n_in != n_kept + n_rej:
                raise InvariantError(f"stage '{st.name}', language '{lang}': {n_in} rows in but "
                                     f"{n_kept} kept + {n_rej} rejected; a row was lost or invented")
            funnel[lang] = {"in": n_in, "kept": n_kept, "rejected": n_rej,
                            "reasons": dict(sorted(reasons.get(lang, {}).items()))}
        return funnel


class _CacheWriteFailed(Exception):
    """Writing a cache entry failed (disk full, no permission): the stage runs again without
    the cache."""

    def __init__(self, error: OSError):
        super().__init__(str(error))
        self.error = error


def _write_chunk(writer, kept: pl.DataFrame, upstream, upstream_refs) -> None:
    try:
        writer.add(kept, upstream=upstream, upstream_refs=upstream_refs)
    except OSError as e:
        raise _CacheWriteFailed(e) from e


def _lang_counts(df: pl.DataFrame) -> dict[str, int]:
    if df.height == 0:
        return {}
    if "lang" not in df.columns:
        return {"en": df.height}
    return dict(df.group_by("lang").len().iter_rows())
