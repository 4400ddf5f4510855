"""QeStage: translation quality. Cheap checks, then a scorer (COMET QE or round-trip, or
chrF round-trip), then thresholds: absolute per language, or keep the best P% of each
language, or both. Applies to the origins in ``qe.apply_to`` (machine translations by
default; the shipped reference translations are trusted unless listed).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl

from refuseu import executors
from refuseu.config import QeConfig
from refuseu.engines.cache import CachedTranslator, ItemCache, text_hash
from refuseu.engines.qe.checks import cheap_check
from refuseu.engines.qe.scorers import SCORE, make_scorer
from refuseu.engines.translators.back import back_translate
from refuseu.errors import BuildError
from refuseu.signatures import signature_of
from refuseu.stages.base import Stage, StageContext, StageResult, concat_rejects


SCORE_DIGITS = 4


class QeStage(Stage):
    name = "qe"
    inputs = ("prompt_id", "lang", "text", "prompt", "origin")
    outputs = inputs + ("qe_score", "qe_method")

    def __init__(self, config: QeConfig, *, languages: list[str], cache_dir: str | Path | None = None,
                 back_translator: CachedTranslator | None = None, mt_configured: bool | None = None):
        self.config = config
        self.languages = languages
        self.back_translator = back_translator
        mt = back_translator is not None if mt_configured is None else mt_configured
        # Nothing to score when no configured origin can occur (the offline default: no MT engine).
        self.active = any(lang != "en" for lang in languages) and (
            ("mt" in config.apply_to and mt) or "tm" in config.apply_to)
        self.scorer = make_scorer(config) if self.active else None
        self.cache = ItemCache(Path(cache_dir) / "items.sqlite") if cache_dir and self.scorer else None
        self.computed = 0

    def signature_parts(self) -> dict:
        return {"config": self.config.model_dump(mode="json"), "active": self.active,
                "scorer": self.scorer.settings() if self.scorer else None,
                "back": {lang: self._back_key(lang) for lang in self.languages if lang != "en"}}

    def _back_key(self, lang: str) -> str | None:
        """The back-translation engine's cache key for lang -> en (model and revision
        included), or None when the scorer needs no back-translation."""
        if self.scorer is None or not self.scorer.needs_back_translation or self.back_translator is None:
            return None
        return self.back_translator.key(lang, "en")

    def preflight(self) -> None:
        if self.scorer is None:
            return
        self.scorer.prepare()  # a missing COMET model stops the build here
        if self.scorer.needs_back_translation and self.back_translator is None:
            raise BuildError(f"qe scorer {self.scorer.method} scores round trips and needs an MT engine for "
                             "back-translation", hint="configure translate.engine, or use qe.mode: qe")
        for lang in self.languages:
            if lang != "en":
                self._back_key(lang)  # the back-translation models must be there too

    # scoring -------------------------------------------------------------------------
    def scores(self, lang: str, sources: list[str], translations: list[str], ctx: StageContext) -> list[float]:
        key = signature_of({"scorer": self.scorer.settings(), "back": self._back_key(lang)})
        hashes = [text_hash(f"{s}\x1f{t}") for s, t in zip(sources, translations)]
        # Scores are rounded where they are made (SCORE_DIGITS): batch composition and
        # thread timing move the last digits of model scores, and a release must not.
        done = {h: round(float(v), SCORE_DIGITS)
                for h, v in (self.cache.get_many(key, "en", lang, hashes) if self.cache else {}).items()}
        todo = [i for i, h in enumerate(hashes) if h not in done]
        if todo:
            src = [sources[i] for i in todo]
            tgt = [translations[i] for i in todo]
            with ctx.progress(f"qe {lang}", len(todo)) as bar:
                backs = (back_translate(self.back_translator, tgt, lang=lang)
                         if self.scorer.needs_back_translation else [None] * len(tgt))
                chunk = max(64, self.config.batch_size * 8)
                triples = [[s, t, b] for s, t, b in zip(src, tgt, backs)]
                for k, got in executors.current().map_chunks(self.scorer, triples, call=SCORE, chunk=chunk):
                    part = slice(k, k + len(got))
                    items = [(hashes[i], repr(round(float(v), SCORE_DIGITS))) for i, v in zip(todo[part], got)]
                    if self.cache:
                        self.cache.put_many(key, "en", lang, items)
                    done.update({h: float(v) for h, v in items})
                    self.computed += len(got)
                    bar.update(len(got))
        return [done[h] for h in hashes]

    def needs_whole_table(self) -> bool:
        # The best P% of a language's rows is a choice over all of them.
        return self.active and self.scorer is not None and (
            self.config.percentile is not None or bool(self.config.percentiles))

    def run(self, df: pl.DataFrame, ctx: StageContext) -> StageResult:
        res = self._run(df, ctx)
        res.stats = self.merge_stats([res.stats])
        return res

    def run_stream(self, chunks, ctx: StageContext):
        for chunk in chunks:
            res = self._run(chunk, ctx)
            res.input = chunk
            yield res

    def merge_stats(self, parts: list[dict]) -> dict:
        """Score figures per language over every chunk (chunks carry their raw scores)."""
        merged: dict[str, dict] = {}
        for part in parts:
            for lang, st in part.items():
                m = merged.setdefault(lang, {**st, "_scores": [], "_passed": 0})
                m["_scores"].append(st["_scores"])
                m["_passed"] += st["_passed"]
        stats = {}
        for lang, m in merged.items():
            scores = np.concatenate(m["_scores"]) if m["_scores"] else np.zeros(0)
            n = len(scores)
            q = np.quantile(scores, [0.1, 0.5, 0.9]) if n else [None] * 3
            stats[lang] = {"method": m["method"], "scored": int(n),
                           "mean": round(float(scores.mean()), 4) if n else None,
                           "p10": round(float(q[0]), 4) if n else None,
                           "p50": round(float(q[1]), 4) if n else None,
                           "p90": round(float(q[2]), 4) if n else None,
                           "threshold": m["threshold"], "percentile": m["percentile"], "cutoff": m["cutoff"],
                           "pass_rate": round(float(m["_passed"] / n), 4) if n else None}
        return stats

    def _run(self, df: pl.DataFrame, ctx: StageContext) -> StageResult:
        """The stage on one chunk; its stats carry the raw scores (see :meth:`merge_stats`)."""
        cfg = self.config
        if not self.active:
            return StageResult(kept=df, rejected=self.reject(df.clear(), ""))
        check = (pl.col("lang") != "en") & pl.col("origin").is_in(cfg.apply_to)
        columns = df.columns
        df = df.with_row_index("__o")  # the output keeps the input's row order (chunks = whole)
        todo, rest = df.filter(check), df.filter(~check)
        verdicts = [cheap_check(s, t, min_ratio=cfg.min_length_ratio, max_ratio=cfg.max_length_ratio,
                                max_repeat=cfg.max_repeat)
                    for s, t in zip(todo.get_column("text").to_list(), todo.get_column("prompt").to_list())]
        todo = todo.with_columns(__reason=pl.Series([v[0] if v else None for v in verdicts], dtype=pl.String),
                                 __detail=pl.Series([v[1] if v else None for v in verdicts], dtype=pl.String))
        rejects = [self.reject(todo.filter(pl.col("__reason").is_not_null()), pl.col("__reason"), pl.col("__detail"))]
        todo = todo.filter(pl.col("__reason").is_null()).drop("__reason", "__detail")
        stats: dict = {}
        kept = [rest]
        for (lang,), part in todo.group_by("lang", maintain_order=True):
            if self.scorer is None:
                kept.append(part)
                continue
            scores = np.asarray(self.scores(lang, part.get_column("text").to_list(),
                                             part.get_column("prompt").to_list(), ctx), dtype=np.float64)
            part = part.with_columns(qe_score=pl.Series(scores), qe_method=pl.lit(self.scorer.method))
            ok = np.ones(len(scores), dtype=bool)
            reason = np.full(len(scores), None, dtype=object)
            detail = np.full(len(scores), None, dtype=object)
            thr = cfg.threshold_for(lang)
            if thr is not None:
                low = scores < thr
                reason[low] = "low_qe_score"
                detail[low] = [f"score {s:.4f} < threshold {thr} ({self.scorer.method})" for s in scores[low]]
                ok &= ~low
            pct = cfg.percentile_for(lang)
            cutoff = None
            if pct is not None and ok.any():
                # Keep the best ceil(P% of n) rows (ties at the cutoff are all kept).
                k = max(1, math.ceil(round(ok.sum() * pct / 100.0, 9)))
                cutoff = float(np.sort(scores[ok])[::-1][k - 1])
                below = ok & (scores < cutoff)
                reason[below] = "below_percentile"
                detail[below] = [f"score {s:.4f} below the {lang} cutoff {cutoff:.4f} (best {pct:g}% kept)"
                                 for s in scores[below]]
                ok &= ~below
            part = part.with_columns(__reason=pl.Series(reason.tolist(), dtype=pl.String),
                                     __detail=pl.Series(detail.tolist(), dtype=pl.String))
            rejects.append(self.reject(part.filter(pl.col("__reason").is_not_null()), pl.col("__reason"),
                                       pl.col("__detail")))
            kept.append(part.filter(pl.col("__reason").is_null()).drop("__reason", "__detail"))
            stats[lang] = {"method": self.scorer.method, "threshold": thr, "percentile": pct, "cutoff": cutoff,
                           "_scores": scores, "_passed": int(ok.sum())}
        out = pl.concat(kept, how="diagonal_relaxed").sort("__o") if kept else df
        return StageResult(kept=out.select(columns), rejected=concat_rejects(rejects), stats=stats)
