"""RespondStage: ``chosen`` and ``rejected`` for every row.

Harmful prompts: ``chosen`` is a native refusal template for the row's language and
category; ``rejected`` is a compliance opener (origin ``template``) when no generator is
configured. The template is picked deterministically from the prompt id, so every build
of the same recipe gives the same pairs. Benign prompts keep empty responses and go to
the ``evaluation`` config until a generator is configured.
"""

from __future__ import annotations

import hashlib

import polars as pl

from refuseu.config import RespondConfig
from refuseu.engines.responders.templates import TemplateRegistry
from refuseu.errors import BuildError
from refuseu.stages.base import Stage, StageContext, StageResult, empty_rejects


class RespondStage(Stage):
    name = "respond"
    inputs = ("prompt_id", "lang", "kind", "category", "prompt")
    outputs = inputs + ("pair_id", "chosen", "rejected", "chosen_origin", "rejected_origin")

    def __init__(self, config: RespondConfig, *, languages: list[str]):
        self.config = config
        self.languages = languages
        self.templates = TemplateRegistry(config.templates)

    def signature_parts(self) -> dict:
        return {**self.config.model_dump(mode="json"),
                "templates_version": self.templates.version(self.languages)}

    def preflight(self) -> None:
        if self.config.generator is not None:
            raise BuildError(f"generator '{self.config.generator}' is not supported yet in this version",
                             hint="remove respond.generator to use template responses")
        self.templates.require(self.languages)

    def run(self, df: pl.DataFrame, ctx: StageContext) -> StageResult:
        frames = []
        for lang, part in df.group_by("lang", maintain_order=True):
            lang = lang[0]
            tpl = self.templates.get(lang)
            # Two independent 32-bit picks from the prompt id: one for chosen, one for rejected.
            pid = pl.col("prompt_id")
            pick_c = pid.str.slice(0, 8).str.to_integer(base=16)
            pick_r = pid.str.slice(8, 8).str.to_integer(base=16)
            pools = {c: list(tpl.refusal_pool(c)) for c in part.get_column("category").unique().to_list()}
            chosen = pl.lit(None, dtype=pl.String)
            for cat, pool in pools.items():
                chosen = (pl.when(pl.col("category") == cat)
                          .then(pl.lit(pl.Series(pool, dtype=pl.String).implode()).list.get(pick_c % len(pool)))
                          .otherwise(chosen))
            openers = pl.lit(pl.Series(list(tpl.compliance_openers), dtype=pl.String).implode())
            harmful = pl.col("kind") == "harmful"
            part = part.with_columns(
                chosen=pl.when(harmful).then(chosen),
                rejected=pl.when(harmful).then(openers.list.get(pick_r % len(tpl.compliance_openers))),
                chosen_origin=pl.when(harmful).then(pl.lit("template")),
                rejected_origin=pl.when(harmful).then(pl.lit("template")),
            )
            frames.append(part)
        kept = pl.concat(frames) if frames else df
        ids = [hashlib.blake2b(f"{p}:{lg}".encode(), digest_size=8).hexdigest()
               for p, lg in zip(kept.get_column("prompt_id").to_list(), kept.get_column("lang").to_list())]
        kept = kept.with_columns(pair_id=pl.Series(ids, dtype=pl.String))
        return StageResult(kept=kept, rejected=empty_rejects())
