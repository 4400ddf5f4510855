"""LidStage: every non-English text must be identified as its row's language.

Two instances run in the default pipeline: ``lid_prompt`` right after translation (so no
response is made for a prompt in the wrong language) and ``lid_response`` after respond
(for ``chosen`` and ``rejected``). Each distinct (text, language) is identified once:
templates repeat across thousands of rows.
"""

from __future__ import annotations

import polars as pl

from refuseu.config import LidConfig
from refuseu.engines.lid import make_identifier
from refuseu.stages.base import Stage, StageContext, StageResult


# Scores are rounded where they are made: lingua's confidences differ in the last digits
# between runs (threads), and the released bytes must not.
SCORE_DIGITS = 4


class LidStage(Stage):
    inputs = ("prompt_id", "lang")
    expands_languages = False

    def __init__(self, config: LidConfig, *, languages: list[str], fields: tuple[str, ...], name: str,
                 identifier=None):
        self.name = name  # type: ignore[misc]
        self.config = config
        self.languages = languages
        self.fields = fields
        self.inputs = ("prompt_id", "lang") + fields  # type: ignore[misc]
        self.outputs = self.inputs + ("lid_lang", "lid_score")  # type: ignore[misc]
        self._identifier = identifier

    @property
    def identifier(self):
        if self._identifier is None:
            self._identifier = make_identifier(self.config, self.languages)
        return self._identifier

    def signature_parts(self) -> dict:
        needed = self.config.enabled and any(lang != "en" for lang in self.languages)
        return {"fields": list(self.fields), "config": self.config.model_dump(mode="json"),
                "engine": self.identifier.signature() if needed else None}

    def preflight(self) -> None:
        if self.config.enabled and any(lang != "en" for lang in self.languages):
            self.identifier  # noqa: B018  (a missing model fails here, before any work)

    def identify(self, df: pl.DataFrame, field: str) -> pl.DataFrame:
        """Unique (text, lang) of ``field`` with predicted language and score."""
        pairs = df.select(pl.col(field).alias("__text"), "lang").drop_nulls("__text").unique(maintain_order=True)
        preds = self.identifier.predict(pairs.get_column("__text").to_list(), pairs.get_column("lang").to_list())
        return pairs.with_columns(__pl=pl.Series([p.lang for p in preds], dtype=pl.String),
                                  __ps=pl.Series([round(p.score, SCORE_DIGITS) for p in preds], dtype=pl.Float64),
                                  __pe=pl.Series([p.engine for p in preds], dtype=pl.String))

    def run(self, df: pl.DataFrame, ctx: StageContext) -> StageResult:
        if "lid_lang" not in df.columns:
            df = df.with_columns(lid_lang=pl.lit(None, dtype=pl.String), lid_score=pl.lit(None, dtype=pl.Float64))
        check = df.with_row_index("__o").filter(pl.col("lang") != "en") if self.config.enabled else df.clear()
        if check.height == 0:
            return StageResult(kept=df, rejected=self.reject(df.clear(), ""))
        thresholds = {lang: self.config.threshold_for(lang) for lang in self.languages}
        reason = pl.lit(None, dtype=pl.String)
        detail = pl.lit(None, dtype=pl.String)
        with ctx.progress(f"{self.name}", len(self.fields)) as bar:
            for field in self.fields:
                ids = self.identify(check, field)
                check = check.join(ids.rename({"__text": field}), on=[field, "lang"], how="left",
                                   maintain_order="left")
                thr = pl.col("lang").replace_strict(thresholds, default=self.config.threshold, return_dtype=pl.Float64)
                wrong = pl.col(field).is_not_null() & (pl.col("__pl") != pl.col("lang"))
                low = pl.col(field).is_not_null() & (pl.col("__pl") == pl.col("lang")) & (pl.col("__ps") < thr)
                this_detail = pl.format("{}: predicted {} ({}), score {}, threshold {}", pl.lit(field), "__pl",
                                        "__pe", pl.col("__ps").round(3), thr)
                check = check.with_columns(
                    __reason=pl.when(reason.is_null() & wrong).then(pl.lit("wrong_language"))
                    .when(reason.is_null() & low).then(pl.lit("low_confidence")).otherwise(reason),
                    __detail=pl.when(reason.is_null() & (wrong | low)).then(this_detail).otherwise(detail))
                if field == "prompt":
                    check = check.with_columns(lid_lang=pl.col("__pl"), lid_score=pl.col("__ps"))
                check = check.drop("__pl", "__ps", "__pe")
                reason, detail = pl.col("__reason"), pl.col("__detail")
                bar.update(1)
        bad = check.filter(pl.col("__reason").is_not_null())
        rejected = self.reject(bad, pl.col("__reason"), pl.col("__detail"))
        good = check.filter(pl.col("__reason").is_null()).drop("__reason", "__detail")
        # English rows and the rows that passed, in the input's order (chunks give the whole).
        kept = pl.concat([df.with_row_index("__o").filter(pl.col("lang") == "en"), good.select(["__o", *df.columns])],
                         how="vertical").sort("__o").drop("__o") if self.config.enabled else df
        return StageResult(kept=kept, rejected=rejected)
