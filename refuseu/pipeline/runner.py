"""Run stages in order with signature-keyed caching and the funnel invariant."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from refuseu import CODE_VERSION
from refuseu.errors import InvariantError
from refuseu.faults import checkpoint
from refuseu.pipeline.cache import CacheDamaged, ColumnRef, Entry, StageCache
from refuseu.pipeline.progress import Reporter
from refuseu.signatures import signature_of
from refuseu.stages.base import REJECT_SCHEMA, Stage, StageContext, StageResult, concat_rejects

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
    table: pl.DataFrame
    rejects: pl.DataFrame
    records: list[StageRecord] = field(default_factory=list)

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
                 reporter: Reporter | None = None):
        self.stages = stages
        self.build_dir = Path(build_dir)
        self.languages = languages
        self.reporter = reporter or Reporter(quiet=True)
        self.cache = StageCache(self.build_dir)
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

    def _load_prefix(self) -> tuple[list[Entry], pl.DataFrame, dict[str, ColumnRef]]:
        """The longest run of verified cache entries from the first stage, and the kept rows
        of its last entry. A damaged entry is reported, removed and recomputed."""
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
                return entries, self.cache.load_kept(entries[-1]), entries[-1].columns
            except CacheDamaged as e:
                # The damaged file may be an earlier entry's (a referenced column): that entry
                # is reported, and it and every later one are computed again.
                k = next((i for i in range(len(entries)) if self.cache.rel(self._dir(i)) == e.entry),
                         len(entries) - 1)
                self._damaged(k, e)
                for j in range(k + 1, len(entries)):
                    self.cache.discard(self._dir(j))
                del entries[k:]
        return [], pl.DataFrame(), {}

    def _damaged(self, i: int, err: CacheDamaged) -> None:
        self.reporter.warn(f"cache entry for stage {self.stages[i].name} damaged ({err}): recomputing")
        self.cache.discard(self._dir(i))

    # running ----------------------------------------------------------------------
    def run(self) -> PipelineResult:
        self.preflight()
        sigs = self.signatures()
        removed = self.cache.remove_leftovers()
        if removed:
            self.reporter.info(f"removed {removed} partial cache entr{'y' if removed == 1 else 'ies'} "
                               "left by an interrupted build")
        entries, table, columns = self._load_prefix()
        records: list[StageRecord] = []
        rejects: list[pl.DataFrame] = []
        for i, entry in enumerate(entries):
            records.append(StageRecord(self.stages[i].name, sigs[i], True, 0.0, entry.meta["funnel"],
                                       entry.meta.get("stats", {})))
            rejects.append(entry.rejected)
            self.reporter.info(f"  [dim]cached[/dim]  {self.stages[i].name}")
        ctx = StageContext(languages=self.languages, progress=self.reporter.bar)
        # Stage outputs are written to the cache by one background thread while the next
        # stage computes (polars and the IPC writer release the GIL). Leaving the block
        # waits for pending writes, also when a stage fails or is interrupted, so every
        # finished stage is on disk before the build returns.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="refuseu-cache") as writer:
            pending = []
            previous = None
            for i in range(len(entries), len(self.stages)):
                st = self.stages[i]
                checkpoint(f"stage:{st.name}:start")
                t0 = time.perf_counter()
                res = st.run(table, ctx)
                seconds = time.perf_counter() - t0
                checkpoint(f"stage:{st.name}:end")
                funnel = self._funnel(st, table, res)
                previous = writer.submit(self._store, i, res, funnel, table, previous, columns)
                pending.append(previous)
                columns = None  # known once the previous write finished (see _store)
                records.append(StageRecord(st.name, sigs[i], False, seconds, funnel, res.stats))
                rejects.append(res.rejected)
                table = res.kept
                n_in = sum(v["in"] for v in funnel.values())
                n_rej = sum(v["rejected"] for v in funnel.values())
                self.reporter.info(f"  [green]done[/green]    {st.name}: {n_in} in, {n_in - n_rej} kept, "
                                   f"{n_rej} rejected ({seconds:.2f}s)")
            for f in pending:
                f.result()
        return PipelineResult(table=table, rejects=concat_rejects(rejects), records=records)

    def _funnel(self, st: Stage, table: pl.DataFrame, res: StageResult) -> dict:
        def counts(df: pl.DataFrame) -> dict[str, int]:
            if df.height == 0:
                return {}
            if "lang" not in df.columns:
                return {"en": df.height}
            return dict(df.group_by("lang").len().iter_rows())

        kept, rej = counts(res.kept), counts(res.rejected)
        if st.is_source:
            rows_in = {k: kept.get(k, 0) + rej.get(k, 0) for k in set(kept) | set(rej)}
        elif st.expands_languages:
            rows_in = {lang: table.height for lang in self.languages}
        else:
            rows_in = counts(table)
        missing_cols = [c for c in REJECT_SCHEMA if c not in res.rejected.columns]
        if missing_cols:
            raise InvariantError(f"stage '{st.name}' returned rejects without columns {missing_cols}")
        missing_out = [c for c in st.outputs if c not in res.kept.columns]
        if missing_out:
            raise InvariantError(f"stage '{st.name}' did not produce its declared columns {missing_out}")
        reasons: dict[str, dict[str, int]] = {}
        if res.rejected.height:
            for lang, reason, n in res.rejected.group_by("lang", "reason").len().iter_rows():
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

    def _store(self, i: int, res: StageResult, funnel: dict, upstream: pl.DataFrame, previous,
               upstream_columns: dict[str, ColumnRef] | None) -> dict[str, ColumnRef]:
        """Write stage ``i``'s cache entry; columns equal to its input's refer to the entry
        that holds them (``previous`` is the future of the input's own write)."""
        if previous is not None:
            upstream_columns = previous.result()
        try:
            return self.cache.write(self._dir(i), stage=self.stages[i].name, signature=self.signatures()[i],
                                    kept=res.kept, rejected=res.rejected, funnel=funnel, stats=res.stats,
                                    upstream=upstream, upstream_columns=upstream_columns)
        except OSError as e:
            # The cache saves time; a build goes on without it (the next build recomputes).
            self.reporter.warn(f"could not write the cache entry for stage {self.stages[i].name} "
                               f"({e.strerror or type(e).__name__}: {e.filename or self.cache.root}): "
                               "continuing without it")
            return None
