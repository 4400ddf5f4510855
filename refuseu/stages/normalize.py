"""NormalizeStage: Unicode normalization, whitespace, length checks, stable prompt ids."""

from __future__ import annotations

import hashlib

import polars as pl

from refuseu.config import NormalizeConfig
from refuseu.stages.base import Stage, StageContext, StageResult
from refuseu.text import normalize_text


def prompt_id(text: str, kind: str) -> str:
    """Stable id of a normalized prompt: the same text and kind give the same id anywhere."""
    return hashlib.blake2b(f"{kind}\x1f{text}".encode("utf-8"), digest_size=8).hexdigest()


class NormalizeStage(Stage):
    name = "normalize"
    version = "2"  # control characters are removed
    inputs = ("text", "kind", "category", "attack_style", "hint", "source", "source_row")
    outputs = inputs + ("prompt_id",)

    def __init__(self, config: NormalizeConfig):
        self.config = config

    def signature_parts(self) -> dict:
        return self.config.model_dump(mode="json")

    def run(self, df: pl.DataFrame, ctx: StageContext) -> StageResult:
        cfg = self.config
        # One Python pass (faster here than polars' normalize + regex replace on 200k rows).
        texts = [normalize_text(t, cfg.unicode_form) for t in df.get_column("text").to_list()]
        ids = [prompt_id(t, k) for t, k in zip(texts, df.get_column("kind").to_list())]
        df = df.with_columns(pl.Series("text", texts, dtype=pl.String), pl.Series("prompt_id", ids, dtype=pl.String))
        n = pl.col("text").str.len_chars()
        reason = (pl.when(n == 0).then(pl.lit("empty"))
                  .when(n < cfg.min_chars).then(pl.lit("too_short"))
                  .when(n > cfg.max_chars).then(pl.lit("too_long")))
        df = df.with_columns(__reason=reason)
        bad = df.filter(pl.col("__reason").is_not_null())
        rejected = self.reject(bad, pl.col("__reason"),
                               pl.format("{}:{} ({} chars; allowed {}-{})", "source", "source_row",
                                         pl.col("text").str.len_chars(), pl.lit(cfg.min_chars),
                                         pl.lit(cfg.max_chars)))
        kept = df.filter(pl.col("__reason").is_null()).drop("__reason")
        return StageResult(kept=kept, rejected=rejected)
