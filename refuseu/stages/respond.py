"""RespondStage: ``chosen`` and ``rejected`` for every row.

Harmful prompts:

- ``chosen`` is a refusal composed from the native templates of the row's language
  (opening, refusal, a reason for the category, a redirect; whole answers for self-harm,
  for prompts marked ``urgent`` — call 112 now — and for specialized advice by domain),
  picked deterministically from the prompt id (origin ``template``). With
  ``respond.refusal_generator`` an aligned model writes it per prompt (origin
  ``generator:<model>``); an answer the judge does not call a refusal, in another language,
  empty or degenerate falls back to the template and ``chosen_fallback`` records why.
- ``rejected`` is the generator's compliant answer (``generator:<model>``, or
  ``translated:<engine>`` in translate mode), or a compliance opener (``template``) when no
  generator is configured.

Benign prompts: ``chosen`` is the helpful generator's answer when one is configured, else
the reference answer of ``respond.reference_answers`` for the prompt (origin
``reference``); ``rejected`` is an over-refusal template. Benign prompts with neither keep
empty responses and go to ``evaluation``. The judge rejects a ``rejected`` answer that is in
fact a refusal (``rejected_is_refusal``) and a helpful answer that refuses
(``chosen_is_refusal``).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from refuseu.config import JudgeConfig, LidConfig, QeConfig, RespondConfig
from refuseu.engines.cache import CachedGenerator, CachedTranslator, ItemCache
from refuseu.engines.generators import GENERATORS
from refuseu.engines.qe.checks import cheap_check, repetition
from refuseu.engines.responders.reference import ReferenceAnswers
from refuseu.engines.responders.templates import TemplateRegistry
from refuseu.errors import BuildError
from refuseu.languages import LANGUAGES
from refuseu.provenance import portable
from refuseu.stages.base import Stage, StageContext, StageResult, concat_rejects

# Which model answers which rows, and in which role of the pair.
ROLES = (("rejected", "harmful", "generator"), ("chosen", "benign", "helpful_generator"),
         ("refusal", "harmful", "refusal_generator"))
MAX_REPEAT = 8


def picks(prompt_ids) -> tuple:
    """Two independent 32-bit picks per prompt id (hex): one for chosen, one for rejected."""
    ids = pl.Series(prompt_ids, dtype=pl.String)
    return (ids.str.slice(0, 8).str.to_integer(base=16).cast(pl.UInt64).to_numpy(),
            ids.str.slice(8, 8).str.to_integer(base=16).cast(pl.UInt64).to_numpy())


def degenerate(text: str | None) -> str | None:
    """Why a generated answer is unusable (empty, a token or short sequence looping), else None."""
    if text is None or not text.strip():
        return "empty"
    return "degenerate" if repetition(text, MAX_REPEAT) else None


class RespondStage(Stage):
    name = "respond"
    inputs = ("prompt_id", "lang", "kind", "category", "prompt")
    outputs = inputs + ("pair_id", "chosen", "rejected", "chosen_origin", "rejected_origin", "chosen_fallback")

    def __init__(self, config: RespondConfig, *, languages: list[str], cache_dir: str | Path | None = None,
                 translator: CachedTranslator | None = None, qe: QeConfig | None = None,
                 judge: JudgeConfig | None = None, lid: LidConfig | None = None):
        self.config = config
        self.languages = languages
        self.templates = TemplateRegistry(config.templates)
        self.references = ReferenceAnswers(config.reference_answers)
        self.translator = translator
        self.qe = qe or QeConfig()
        self.lid = lid or LidConfig()
        self.cache_dir = cache_dir
        cache = ItemCache(Path(cache_dir) / "items.sqlite") if cache_dir else None
        self.generators: dict[str, CachedGenerator] = {}
        for role, _, field in ROLES:
            model = getattr(config, field)
            if model:
                engine = GENERATORS.get(config.engine)(model, config)
                engine.flag = f"respond.{field} / --{field.replace('_', '-')}"
                self.generators[role] = CachedGenerator(engine, cache)
        self.judge_config = judge or JudgeConfig()
        self._judge = None
        self._identifier = None
        # Translated answers pass the same quality checks as translated prompts: the cheap
        # checks, then (when qe has absolute thresholds) the configured scorer.
        self.qe_stage = None
        thresholds_set = self.qe.threshold is not None or bool(self.qe.thresholds)
        if self.generators and translator is not None and thresholds_set and any(
                config.mode_for(lang) == "translate" for lang in languages):
            from refuseu.stages.qe import QeStage
            self.qe_stage = QeStage(self.qe, languages=languages, cache_dir=cache_dir, back_translator=translator,
                                    mt_configured=True)

    @property
    def judge(self):
        if self._judge is None:
            from refuseu.judges import make_judge
            cfg = self.judge_config
            if self.config.refusal_classifier and cfg.engine == "lexicon" and not cfg.model:
                # respond.refusal_classifier: a classifier averaged with the lexicon's cues
                cfg = cfg.model_copy(update={"model": self.config.refusal_classifier})
            self._judge = make_judge(cfg, cache_dir=self.cache_dir)
        return self._judge

    @property
    def identifier(self):
        if self._identifier is None:
            from refuseu.engines.lid import make_identifier
            self._identifier = make_identifier(self.lid, self.languages)
        return self._identifier

    def signature_parts(self) -> dict:
        translate_langs = [lang for lang in self.languages if self.config.mode_for(lang) == "translate"]
        return {**self.config.model_dump(mode="json"),
                "templates_version": self.templates.version(self.languages),
                "references_version": self.references.version(self.languages),
                "generators": {role: g.signature() for role, g in self.generators.items()},
                "judge": self.judge.version() if self.generators else None,
                "lid": (self.identifier.signature() if "refusal" in self.generators
                        and any(lang != "en" for lang in self.languages) else None),
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
            self.judge.prepare()
            translate_langs = [lang for lang in self.languages if self.config.mode_for(lang) == "translate"]
            if translate_langs and self.translator is None:
                raise BuildError(f"respond mode 'translate' for {', '.join(translate_langs)} needs an MT engine",
                                 hint="configure translate.engine, or use respond.mode: native")

    # --- templates and reference answers ------------------------------------------------

    def _from_templates(self, part: pl.DataFrame, lang: str) -> pl.DataFrame:
        tpl = self.templates.get(lang)
        refs = self.references.answers(lang)
        pick_c, pick_r = picks(part.get_column("prompt_id"))
        hints = part.get_column("hint") if "hint" in part.columns else pl.repeat(None, part.height, dtype=pl.String,
                                                                                 eager=True)
        harmful = pl.col("kind") == "harmful"
        part = part.with_columns(__c=tpl.chosen_many(part.get_column("category"), hints, pick_c),
                                 __r=tpl.rejected_many(part.get_column("category"), pick_r))
        answered = pl.lit(False)
        if refs and tpl.over_refusals and "text" in part.columns:
            part = part.with_columns(__ref=pl.col("text").replace_strict(refs, default=None, return_dtype=pl.String),
                                     __over=tpl.over_refusals_many(pick_r))
            answered = (pl.col("kind") == "benign") & pl.col("__ref").is_not_null()
        else:
            part = part.with_columns(__ref=pl.lit(None, dtype=pl.String), __over=pl.lit(None, dtype=pl.String))
        return part.with_columns(
            chosen=pl.when(harmful).then(pl.col("__c")).when(answered).then(pl.col("__ref")),
            rejected=pl.when(harmful).then(pl.col("__r")).when(answered).then(pl.col("__over")),
            chosen_origin=pl.when(harmful).then(pl.lit("template")).when(answered).then(pl.lit("reference")),
            rejected_origin=pl.when(harmful | answered).then(pl.lit("template")),
            chosen_fallback=pl.lit(None, dtype=pl.String),
        ).drop("__c", "__r", "__ref", "__over")

    def run(self, df: pl.DataFrame, ctx: StageContext) -> StageResult:
        columns = df.columns
        df = df.with_row_index("__o")  # the output keeps the input's row order (chunks = whole)
        frames = [self._from_templates(part, lang) for (lang,), part in df.group_by("lang", maintain_order=True)]
        kept = pl.concat(frames) if frames else df.with_columns(
            **{c: pl.lit(None, dtype=pl.String)
               for c in ("chosen", "rejected", "chosen_origin", "rejected_origin", "chosen_fallback")})
        kept = kept.with_columns(pair_id=pl.format("{}-{}", "prompt_id", "lang"))
        rejects = []
        if self.generators:
            kept, rejects = self._with_generators(kept, ctx)
        extra = [c for c in kept.columns if c not in columns and c != "__o"]
        return StageResult(kept=kept.sort("__o").select([*columns, *extra]), rejected=concat_rejects(rejects))

    # --- generators ---------------------------------------------------------------------

    def _system(self, role: str, language: str) -> str:
        template = self.config.refusal_system_prompt if role == "refusal" else self.config.system_prompt
        return template.format(language=language)

    def _generate(self, part: pl.DataFrame, role: str, lang: str, ctx: StageContext) -> tuple[list, list, list]:
        """(texts, origins, check failures) for one language's rows."""
        gen = self.generators[role]
        label = f"generator:{portable(gen.engine.model_id)}"
        if self.config.mode_for(lang) == "native":
            system = self._system(role, LANGUAGES[lang].name)
            with ctx.progress(f"generate {role} {lang}", part.height) as bar:
                texts = gen.generate(part.get_column("prompt").to_list(), lang=lang, role=role, system=system,
                                     progress=bar)
            return texts, [label] * len(texts), [None] * len(texts)
        system = self._system(role, "English")
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

    def _verdicts(self, texts: list[str], lang: str, prompts: list[str]) -> list:
        return self.judge.judge(texts, [lang] * len(texts), prompts)

    def _refusals(self, rows: pl.DataFrame, lang: str, ctx: StageContext) -> pl.DataFrame:
        """Model-written ``chosen`` for harmful rows; a failed answer keeps the template."""
        texts, origins, checks = self._generate(rows, "refusal", lang, ctx)
        prompts = rows.get_column("prompt").to_list()
        why: list[str | None] = [c[0] if c is not None else degenerate(t) for t, c in zip(texts, checks)]
        todo = [i for i, w in enumerate(why) if w is None]
        if todo:
            verdicts = self._verdicts([texts[i] for i in todo], lang, [prompts[i] for i in todo])
            for i, v in zip(todo, verdicts):
                if not v.is_refusal:
                    why[i] = "not_refusal"
        todo = [i for i, w in enumerate(why) if w is None]
        if todo and lang != "en" and self.lid.enabled:
            preds = self.identifier.predict([texts[i] for i in todo], [lang] * len(todo))
            for i, p in zip(todo, preds):
                if p.lang != lang:
                    why[i] = f"wrong_language:{p.lang}"
        template = rows.get_column("chosen").to_list()
        chosen = [template[i] if w else texts[i] for i, w in enumerate(why)]
        origin = ["template" if w else origins[i] for i, w in enumerate(why)]
        return rows.with_columns(chosen=pl.Series(chosen, dtype=pl.String),
                                 chosen_origin=pl.Series(origin, dtype=pl.String),
                                 chosen_fallback=pl.Series(why, dtype=pl.String))

    def _with_generators(self, df: pl.DataFrame, ctx: StageContext) -> tuple[pl.DataFrame, list]:
        out, rejects = [], []
        for (lang,), part in df.group_by("lang", maintain_order=True):
            tpl = self.templates.get(lang)
            if "refusal" in self.generators:
                mask = pl.col("kind") == "harmful"
                rows = part.filter(mask)
                if rows.height:
                    part = pl.concat([part.filter(~mask), self._refusals(rows, lang, ctx)], how="vertical_relaxed")
            for role, kind in (("rejected", "harmful"), ("chosen", "benign")):
                if role not in self.generators:
                    continue
                mask = pl.col("kind") == kind
                rows = part.filter(mask)
                if rows.height == 0:
                    continue
                texts, origins, checks = self._generate(rows, role, lang, ctx)
                verdicts = self._verdicts(texts, lang, rows.get_column("prompt").to_list())
                reason, detail = [], []
                for v, check in zip(verdicts, checks):
                    if check is not None:
                        reason.append(f"{role}_{check[0]}")
                        detail.append(f"translated {role} answer: {check[1]}")
                    elif v.is_refusal:
                        reason.append(f"{role}_is_refusal")
                        detail.append(f"judge {v.source} score {v.score:.2f}")
                    else:
                        reason.append(None)
                        detail.append(None)
                rows = rows.with_columns(**{role: pl.Series(texts, dtype=pl.String),
                                            f"{role}_origin": pl.Series(origins, dtype=pl.String)},
                                         __reason=pl.Series(reason, dtype=pl.String),
                                         __detail=pl.Series(detail, dtype=pl.String))
                if kind == "benign":  # benign pairs: an over-refusal from the templates is the rejected side
                    _, pick_r = picks(rows.get_column("prompt_id"))
                    rows = rows.with_columns(rejected=tpl.over_refusals_many(pick_r), rejected_origin=pl.lit("template"))
                rejects.append(self.reject(rows.filter(pl.col("__reason").is_not_null()), pl.col("__reason"),
                                           pl.col("__detail")))
                part = pl.concat([part.filter(~mask),
                                  rows.filter(pl.col("__reason").is_null()).drop("__reason", "__detail")],
                                 how="vertical_relaxed")
            out.append(part)
        return pl.concat(out, how="vertical_relaxed"), rejects
