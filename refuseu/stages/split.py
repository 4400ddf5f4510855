"""SplitStage: a contamination-free train/test split decided once per group.

Groups (near-duplicates share one) are stratified by (kind, category) and ordered by a
hash of the recipe seed and the group id; the first ``test_size`` groups of each stratum
go to test. The decision is made before translation, so a prompt that is in test is in
test in every language.
"""

from __future__ import annotations

import hashlib

import polars as pl

from refuseu.config import SplitConfig
from refuseu.stages.base import Stage, StageContext, StageResult, empty_rejects


def n_test_groups(size: int | float, n_groups: int) -> int:
    """Groups of a stratum that go to test; at least one group always stays in train."""
    if n_groups <= 1:
        return 0
    n = size if isinstance(size, int) else round(size * n_groups)
    return max(0, min(int(n), n_groups - 1))


class SplitStage(Stage):
    name = "split"
    inputs = ("prompt_id", "group_id", "kind", "category")
    outputs = inputs + ("split",)

    def __init__(self, config: SplitConfig, *, seed: int):
        self.config = config
        self.seed = seed

    def signature_parts(self) -> dict:
        return {**self.config.model_dump(mode="json"), "seed": self.seed}

    def run(self, df: pl.DataFrame, ctx: StageContext) -> StageResult:
        groups = df.group_by("group_id", maintain_order=True).agg(
            pl.col("kind").first(), pl.col("category").first())
        keys = [hashlib.blake2b(f"{self.seed}:{g}".encode(), digest_size=8).hexdigest()
                for g in groups.get_column("group_id").to_list()]
        groups = groups.with_columns(__key=pl.Series(keys)).sort("kind", "category", "__key")
        groups = groups.with_columns(
            __rank=pl.int_range(pl.len()).over("kind", "category"),
            __n=pl.len().over("kind", "category"))
        sizes = {c: v for c, v in self.config.per_category.items()}
        limits = {}
        for kind, cat, n in groups.select("kind", "category", "__n").unique().iter_rows():
            limits[(kind, cat)] = n_test_groups(sizes.get(cat, self.config.test_size), n)
        limit_df = pl.DataFrame([{"kind": k, "category": c, "__limit": v} for (k, c), v in limits.items()],
                                schema={"kind": pl.String, "category": pl.String, "__limit": pl.Int64})
        groups = groups.join(limit_df, on=["kind", "category"], how="left").with_columns(
            split=pl.when(pl.col("__rank") < pl.col("__limit")).then(pl.lit("test")).otherwise(pl.lit("train")))
        kept = df.join(groups.select("group_id", "split"), on="group_id", how="left", maintain_order="left")
        return StageResult(kept=kept, rejected=empty_rejects())
