"""RespondStage: ``chosen`` and ``rejected`` for every row.

Harmful prompts: ``chosen`` is a native refusal template for the row's language and
category (picked deterministically from the prompt id); ``rejected`` is the generator's
compliant answer (origin ``generator:<model>``, or ``translated:<engine>`` in translate
mode), or a compliance opener (origin ``template``) when no generator is configured.
Benign prompts: with a helpful generator, ``chosen`` is its answer and ``rejected`` an
over-refusal template; without one they keep empty responses and go to ``evaluation``.
The refusal detector rejects a ``rejected`` answer that is in fact a refusal
(``rejected_is_refusal``) and a helpful answer that refuses (``chosen_is_refusal``).
"""

from __future__ import annotations

import polars as pl

from pathlib import Path

from refuseu.config import QeConfig, RespondConfig
from refuseu.engines.cache import CachedGenerator, CachedTranslator, ItemCache
from refuseu.engines.generators import GENERATORS
from refuseu.engines.qe.checks import cheap_check
from refuseu.engines.responders.templates import TemplateRegistry
from refuseu.provenance import portable
from refuseu.errors import BuildError
from refuseu.judges import RefusalDetector
from refuseu.languages import LANGUAGES
from refuseu.stages.base import Stage, StageContext, StageResult, concat_rejects


class RespondStage(Stage):
    name = "respond"
    inputs = ("prompt_id", "lang", "kind", "category", "prompt")
    outputs = inputs + ("pair_id", "chosen", "rejected", "chosen_origin", "rejected_origin")

    def __init__(self, config: RespondConfig, *, languages: list[str], cache_dir: str | Path | None = None,
                 translator: CachedTranslator | None = None, qe: QeConfig | None = None):
        self.config = config
        self.languages = languages
        self.templates = TemplateRegistry(config.templates)
        self.translator = translator
        self.qe = qe or QeConfig()
        cache = ItemCache(Path(cache_dir) / "items.sqlite") if cache_dir else None
        self.generators: dict[str, CachedGenerator] = {}
        for role, model in (("rejected", config.generator), ("chosen", config.helpful_generator)):
            if model:
                engine = GENERATORS.get(config.engine)(model, config)
                self.generators[role] = CachedGenerator(engine, cache)
        self.detector = RefusalDetector(classifier=config.refusal_classifier)
        # Translated answers pass the same quality checks as translated prompts: the cheap
        # checks, then (when qe has absolute thresholds) the configured scorer.
        self.qe_stage = None
        thresholds_set = self.qe.threshold is not None or bool(self.qe.thresholds)
        if self.generators and translator is not None and thresholds_set and any(
                config.mode_for(lang) == "translate" for lang in languages):
            from refuseu.stages.qe import QeStage
            self.qe_stage = QeStage(self.qe, languages=languages, cache_dir=cache_dir, back_translator=translator,
                                    mt_configured=True)

    def signature_parts(self) -> dict:
        translate_langs = [lang for lang in self.languages if self.config.mode_for(lang) == "translate"]
        return {**self.config.model_dump(mode="json"),
                "templates_version": self.templates.version(self.languages),
                "generators": {role: g.signature() for role, g in self.generators.items()},
                "detector": self.detector.version() if self.generators else None,
                "translator": {lang: self.translator.key("en", lang) for lang in translate_langs}
                if self.generators and self.translator else None,
                "answer_qe": self.qe_stage.signature_parts() if self.qe_stage else None}

    def preflight(self) -> None:
        self.templates.require(self.languages)
        if self.qe_stage is not None:
            self.qe_stage.preflight()
        for g in self.generators.values():
            g.engine.prepare()  # a missing generator model stops the build here
        if self.generators:
            translate_langs = [lang for lang in self.languages if self.config.mode_for(lang) == "translate"]
            if translate_langs and self.translator is None:
                raise BuildError(f"respond mode 'translate' for {', '.join(translate_langs)} needs an MT engine",
                                 hint="configure translate.engine, or use respond.mode: native")

    def _generate(self, part: pl.DataFrame, role: str, lang: str, ctx: StageContext) -> tuple[list, list, list]:
        """(texts, origins, check failures) for one language's rows."""
        gen = self.generators[role]
        label = f"generator:{portable(gen.engine.model_id)}"
        if self.config.mode_for(lang) == "native":
            system = self.config.system_prompt.format(language=LANGUAGES[lang].name)
            with ctx.progress(f"generate {role} {lang}", part.height) as bar:
                texts = gen.generate(part.get_column("prompt").to_list(), lang=lang, role=role, system=system,
                                     progress=bar)
            return texts, [label] * len(texts), [None] * len(texts)
        system = self.config.system_prompt.format(language="English")
        english = gen.generate(part.get_column("text").to_list(), lang="en", role=role, system=system)
        translated = self.translator.translate(english, src="en", tgt=lang)
        checks = [cheap_check(e, t, min_ratio=self.qe.min_length_ratio, max_ratio=self.qe.max_length_ratio,
                              max_repeat=self.qe.max_repeat) for e, t in zip(english, translated)]
        thr = self.qe.threshold_for(lang)
        if self.qe_stage is not None and self.qe_stage.scorer is not None and thr is not None:
            todo = [i for i, c in enumerate(checks) if c is None]
            scores = self.qe_stage.scores(lang, [english[i] for i in todo], [translated[i] for i in todo], ctx)
            for i, score in zip(todo, scores):
                if score < thr:
                    checks[i] = ("low_qe_score", f"score {score:.4f} < threshold {thr} ({self.qe_stage.scorer.method})")
        origin = f"translated:{self.translator.name}"
        return translated, [origin] * len(translated), checks

    def run(self, df: pl.DataFrame, ctx: StageContext) -> StageResult:
        frames = []
        # Two independent 32-bit picks from the prompt id: one for chosen, one for rejected.
        pick_c = pl.col("prompt_id").str.slice(0, 8).str.to_integer(base=16)
        pick_r = pl.col("prompt_id").str.slice(8, 8).str.to_integer(base=16)
        for (lang,), part in df.group_by("lang", maintain_order=True):
            tpl = self.templates.get(lang)
            categories = part.get_column("category").unique().sort().to_list()
            pools = {c: tpl.refusal_pool(c) for c in categories}
            refusals = pl.DataFrame(
                [{"category": c, "__ci": i, "__refusal": t} for c, pool in pools.items() for i, t in enumerate(pool)],
                schema={"category": pl.String, "__ci": pl.Int64, "__refusal": pl.String})
            sizes = {c: len(p) for c, p in pools.items()}
            openers = pl.Series(list(tpl.compliance_openers), dtype=pl.String)
            part = part.with_columns(
                __ci=(pick_c % pl.col("category").replace_strict(sizes, return_dtype=pl.Int64)),
                __oi=(pick_r % len(openers)))
            part = part.join(refusals, on=["category", "__ci"], how="left", maintain_order="left")
            harmful = pl.col("kind") == "harmful"
            part = part.with_columns(
                chosen=pl.when(harmful).then(pl.col("__refusal")),
                rejected=pl.when(harmful).then(openers.gather(part.get_column("__oi"))),
                chosen_origin=pl.when(harmful).then(pl.lit("template")),
                rejected_origin=pl.when(harmful).then(pl.lit("template")),
            ).drop("__ci", "__oi", "__refusal")
            frames.append(part)
        kept = pl.concat(frames) if frames else df.with_columns(
            **{c: pl.lit(None, dtype=pl.String) for c in ("chosen", "rejected", "chosen_origin", "rejected_origin")})
        kept = kept.with_columns(pair_id=pl.format("{}-{}", "prompt_id", "lang"))
        rejects = []
        if self.generators:
            kept, rejects = self._with_generators(kept, ctx)
        return StageResult(kept=kept, rejected=concat_rejects(rejects))

    def _with_generators(self, df: pl.DataFrame, ctx: StageContext) -> tuple[pl.DataFrame, list]:
        out, rejects = [], []
        for (lang,), part in df.group_by("lang", maintain_order=True):
            tpl = self.templates.get(lang)
            for role, kind in (("rejected", "harmful"), ("chosen", "benign")):
                if role not in self.generators:
                    continue
                mask = pl.col("kind") == kind
                rows = part.filter(mask)
                if rows.height == 0:
                    continue
                texts, origins, checks = self._generate(rows, role, lang, ctx)
                verdicts = self.detector.is_refusal(texts, [lang] * len(texts))
                reason, detail = [], []
                for (is_ref, score), check in zip(verdicts, checks):
                    if check is not None:
                        reason.append(f"{role}_{check[0]}")
                        detail.append(f"translated {role} answer: {check[1]}")
                    elif is_ref:
                        reason.append(f"{role}_is_refusal")
                        detail.append(f"refusal detector score {score:.2f}")
                    else:
                        reason.append(None)
                        detail.append(None)
                rows = rows.with_columns(**{role: pl.Series(texts, dtype=pl.String),
                                            f"{role}_origin": pl.Series(origins, dtype=pl.String)},
                                         __reason=pl.Series(reason, dtype=pl.String),
                                         __detail=pl.Series(detail, dtype=pl.String))
                if kind == "benign":  # benign pairs: an over-refusal from the templates is the rejected side
                    pick = pl.col("prompt_id").str.slice(8, 8).str.to_integer(base=16) % len(tpl.over_refusals)
                    over = pl.Series(list(tpl.over_refusals), dtype=pl.String)
                    rows = rows.with_columns(rejected=over.gather(rows.select(pick).to_series()),
                                             rejected_origin=pl.lit("template"))
                rejects.append(self.reject(rows.filter(pl.col("__reason").is_not_null()), pl.col("__reason"),
                                           pl.col("__detail")))
                part = pl.concat([part.filter(~mask),
                                  rows.filter(pl.col("__reason").is_null()).drop("__reason", "__detail")],
                                 how="vertical_relaxed")
            out.append(part)
        return pl.concat(out, how="vertical_relaxed"), rejects
