"""TranslateStage: English prompts -> one row per (prompt, language).

English rows pass through (origin ``source``). Other languages go through the engine
chain: translation memory first, then the configured MT engine for what is left.
"""

from __future__ import annotations

import polars as pl

from pathlib import Path

from refuseu.config import TranslateConfig
from refuseu.engines.cache import CachedTranslator, ItemCache
from refuseu.engines.translators import TRANSLATORS
from refuseu.errors import BuildError
from refuseu.provenance import portable
from refuseu.stages.base import Stage, StageContext, StageResult, concat_rejects

QUALITY_COLUMNS = {"qe_score": pl.Float64, "qe_method": pl.String, "lid_lang": pl.String, "lid_score": pl.Float64}


class TranslateStage(Stage):
    name = "translate"
    inputs = ("prompt_id", "text", "kind", "category", "split")
    outputs = inputs + ("lang", "prompt", "origin", "engine", "engine_revision") + tuple(QUALITY_COLUMNS)
    expands_languages = True

    def __init__(self, config: TranslateConfig, *, languages: list[str], cache_dir: str | Path | None = None):
        self.config = config
        self.languages = languages
        self.memory = TRANSLATORS.get("tm")(config.memory)
        self.engine = None
        if config.engine is not None and config.engine != "tm":
            engine = TRANSLATORS.get(config.engine)(config)
            cache = ItemCache(Path(cache_dir) / "items.sqlite") if cache_dir else None
            self.engine = CachedTranslator(engine, cache)

    def _prepare(self) -> None:
        if self.engine is not None and hasattr(self.engine.engine, "prepare"):
            self.engine.engine.prepare([lang for lang in self.languages if lang != "en"])

    def signature_parts(self) -> dict:
        self._prepare()
        return {"languages": self.languages, "on_missing": self.config.on_missing,
                "memory": self.memory.signature(),
                "engine": self.engine.signature() if self.engine else None}

    def preflight(self) -> None:
        if self.engine is not None:
            self._prepare()  # a missing model stops the build here, before any work
            return
        uncovered = [lang for lang in self.languages if lang != "en" and not self.memory.covers(lang)]
        if uncovered:
            raise BuildError(
                f"no translation memory and no MT engine for language(s) {', '.join(uncovered)}: "
                "rows in these languages cannot be made",
                hint="configure an MT engine (translate.engine / --translator), add a translation "
                     "memory folder with <lang>.jsonl (translate.memory), or drop the language(s)")

    def _engine_label(self, lang: str) -> tuple[str, str | None]:
        """(engine:model, revision) recorded on every machine-translated row."""
        inner = self.engine.engine
        if hasattr(inner, "model_for"):
            model = inner.model_for(lang)
            return f"{inner.name}:{portable(model)}", inner.resolve(model)[1]
        sig = inner.signature()
        return f"{inner.name}:{portable(sig.get('model') or sig.get('provider'))}", sig.get("revision")

    def run(self, df: pl.DataFrame, ctx: StageContext) -> StageResult:
        kept, rejects = [], []
        lacking: dict[str, tuple[int, str]] = {}
        base = df.with_columns(**{c: pl.lit(None, dtype=t) for c, t in QUALITY_COLUMNS.items()}).with_row_index("__i")
        for lang in self.languages:
            if lang == "en":
                kept.append(base.with_columns(lang=pl.lit("en"), prompt=pl.col("text"), origin=pl.lit("source"),
                                              engine=pl.lit("source"), engine_revision=pl.lit(None, dtype=pl.String)))
                continue
            texts = df.get_column("text").to_list()
            with ctx.progress(f"translate en->{lang}", len(texts)) as bar:
                out = self.memory.translate(texts, src="en", tgt=lang)
                origin = ["tm" if t is not None else None for t in out]
                engine = ["tm" if t is not None else None for t in out]
                revision = [None] * len(out)
                bar.update(sum(t is not None for t in out))
                if self.engine is not None:
                    todo = [i for i, t in enumerate(out) if t is None]
                    if todo:
                        got = self.engine.translate([texts[i] for i in todo], src="en", tgt=lang, progress=bar)
                        label, rev = self._engine_label(lang)
                        for i, t in zip(todo, got):
                            if t is not None:
                                out[i], origin[i], engine[i], revision[i] = t, "mt", label, rev
            rows = base.with_columns(lang=pl.lit(lang), prompt=pl.Series(out, dtype=pl.String),
                                     origin=pl.Series(origin, dtype=pl.String),
                                     engine=pl.Series(engine, dtype=pl.String),
                                     engine_revision=pl.Series(revision, dtype=pl.String))
            missing = rows.filter(pl.col("prompt").is_null())
            if missing.height:
                lacking[lang] = (missing.height, missing.get_column("text").head(1).to_list()[0])
            rejects.append(self.reject(missing, "untranslated", f"no translation into {lang}"))
            kept.append(rows.filter(pl.col("prompt").is_not_null()))
        if lacking and self.config.on_missing == "error":
            # Every language at once: fixing one and meeting the next on the rerun wastes a build.
            listed = ", ".join(f"{lang} {n}" for lang, (n, _) in lacking.items())
            first = next(iter(lacking.values()))[1]
            raise BuildError(
                f"prompts without a translation, and no engine can make one: {listed} (of {df.height} "
                f"prompts; first: {first[:80]!r})",
                hint="configure an MT engine (translate.engine / --translator), add a translation memory "
                     "(translate.memory: a folder of <lang>.jsonl with source/target, or the output of "
                     "`refuseu translate`), or set translate.on_missing: reject to drop them ('untranslated')")
        return StageResult(kept=prompt_major(kept), rejected=concat_rejects(rejects))


def prompt_major(frames: list[pl.DataFrame]) -> pl.DataFrame:
    """Rows of per-language tables (each in input order, with ``__i``: the input row) in
    prompt-major order: every language of the first prompt, then of the second, ... The order
    then depends on each row alone, so translating a table in chunks gives the same rows in
    the same order as translating it whole."""
    if len(frames) == 1:
        return frames[0].drop("__i")
    both = pl.concat([f.with_columns(__l=pl.lit(i, dtype=pl.UInt32)) for i, f in enumerate(frames)], how="vertical")
    return both.sort("__i", "__l").drop("__i", "__l")
