"""SourcesStage: read every configured source into raw prompt rows, a chunk at a time."""

from __future__ import annotations

from typing import Iterator

import polars as pl

from refuseu.config import SourceConfig
from refuseu.errors import BuildError
from refuseu.sources import RAW_COLUMNS, fingerprint_source
from refuseu.sources.readers import empty_raw, iter_sources
from refuseu.stages.base import Chunks, FrameChunks, Stage, StageContext, StageResult, empty_rejects
from refuseu.taxonomy import load_taxonomy


class SourcesStage(Stage):
    name = "sources"
    outputs = RAW_COLUMNS
    is_source = True

    def __init__(self, sources: list[SourceConfig]):
        self.sources = sources
        self._fingerprints: list[dict] | None = None

    def signature_parts(self) -> dict:
        if self._fingerprints is None:
            self._fingerprints = [fingerprint_source(s) for s in self.sources]
        return {"sources": self._fingerprints, "taxonomy": load_taxonomy().version}

    def preflight(self) -> None:
        self.signature_parts()  # a missing file is an input error before any work

    def run_stream(self, chunks: Chunks, ctx: StageContext) -> Iterator[StageResult]:
        """The sources' rows in chunks of at most ``ctx.chunk_rows`` (a chunk ends where a
        source ends); the input is empty. The last chunk is held back until every file has
        been checked unchanged, so a build never completes this stage on changed input."""
        expected = self.signature_parts()["sources"]
        held: pl.DataFrame | None = None
        for chunk in iter_sources(self.sources, ctx.chunk_rows):
            if held is not None:
                yield StageResult(kept=held, rejected=empty_rejects())
            held = chunk
        self._check_unchanged(expected)
        yield StageResult(kept=empty_raw() if held is None else held, rejected=empty_rejects())

    def run(self, df: pl.DataFrame, ctx: StageContext) -> StageResult:
        kept = [r.kept for r in self.run_stream(FrameChunks([]), ctx)]
        # One chunk: polars 2.1 panics in pl.format over a filtered multi-chunk string column.
        return StageResult(kept=pl.concat(kept, how="vertical", rechunk=True), rejected=empty_rejects())

    def _check_unchanged(self, expected: list[dict]) -> None:
        # The signature was taken from the files' checksums before the build started; rows
        # read from a file that changed since then would be cached under the old content's
        # signature. Checked after reading, so a change at any time up to here is caught.
        for src, before in zip(self.sources, expected):
            if before.get("sha256") is not None and fingerprint_source(src) != before:
                raise BuildError(f"source {src.spec} changed while the build was reading it; nothing was cached",
                                 hint="run the build again once the file is no longer being written")
