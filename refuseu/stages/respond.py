"""RespondStage: ``chosen`` and ``rejected`` for every row.

Harmful prompts: ``chosen`` is a native refusal template for the row's language and
category; ``rejected`` is a compliance opener (origin ``template``) when no generator is
configured. The template is picked deterministically from the prompt id, so every build
of the same recipe gives the same pairs. Benign prompts keep empty responses and go to
the ``evaluation`` config until a generator is configured.
"""

from __future__ import annotations

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
        kept = pl.concat(frames) if frames else df
        kept = kept.with_columns(pair_id=pl.format("{}-{}", "prompt_id", "lang"))
        return StageResult(kept=kept, rejected=empty_rejects())
