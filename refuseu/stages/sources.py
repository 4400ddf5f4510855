"""SourcesStage: read every configured source into raw prompt rows."""

from __future__ import annotations

import polars as pl

from refuseu.config import SourceConfig
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
        return StageResult(kept=read_sources(self.sources), rejected=empty_rejects())
