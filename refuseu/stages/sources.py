"""SourcesStage: read every configured source into raw prompt rows."""

from __future__ import annotations

import polars as pl

from refuseu.config import SourceConfig
from refuseu.errors import BuildError
from refuseu.sources import RAW_COLUMNS, fingerprint_source, read_sources
from refuseu.stages.base import Stage, StageContext, StageResult, empty_rejects
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

    def run(self, df: pl.DataFrame, ctx: StageContext) -> StageResult:
        rows = read_sources(self.sources)
        # The signature was taken from the files' checksums before the build started; rows
        # read from a file that changed since then would be cached under the old content's
        # signature. Checked after reading, so a change at any time up to here is caught.
        expected = self.signature_parts()["sources"]
        for src, before in zip(self.sources, expected):
            if before.get("sha256") is not None and fingerprint_source(src) != before:
                raise BuildError(f"source {src.spec} changed while the build was reading it; nothing was cached",
                                 hint="run the build again once the file is no longer being written")
        return StageResult(kept=rows, rejected=empty_rejects())
