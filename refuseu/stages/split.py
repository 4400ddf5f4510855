"""SplitStage: a contamination-free train/test split decided once per group.

Groups (near-duplicates share one) are stratified by (kind, category) and ordered by a
hash of the recipe seed and the group id; the first ``test_size`` groups of each stratum
go to test. The decision is made before translation, so a prompt that is in test is in
test in every language.
"""

from __future__ import annotations

import hashlib

import numpy as np
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

    def _order_keys(self, group_ids: pl.Series) -> np.ndarray:
        """A seeded pseudo-random order of groups, stable across platforms and versions.

        Group ids are hex digests; their first 60 bits mixed with the seed through the
        splitmix64 finalizer give a uniform, seed-dependent key without hashing strings.
        """
        parsed = group_ids.str.slice(0, 15).str.to_integer(base=16, strict=False)
        if parsed.null_count():  # ids that are not hex digests (hand-made tables): hash them
            fixed = [int(hashlib.blake2b(g.encode(), digest_size=7).hexdigest(), 16) if v is None else v
                     for g, v in zip(group_ids.to_list(), parsed.to_list())]
            parsed = pl.Series(fixed, dtype=pl.Int64)
        x = parsed.to_numpy().astype(np.uint64)
        seed = np.uint64(int(hashlib.blake2b(str(self.seed).encode(), digest_size=8).hexdigest(), 16))
        with np.errstate(over="ignore"):
            z = x ^ seed
            z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            z = z ^ (z >> np.uint64(31))
        return z

    def run(self, df: pl.DataFrame, ctx: StageContext) -> StageResult:
        groups = df.group_by("group_id", maintain_order=True).agg(
            pl.col("kind").first(), pl.col("category").first())
        groups = groups.with_columns(__key=pl.Series(self._order_keys(groups.get_column("group_id"))))
        groups = groups.sort("kind", "category", "__key", "group_id")
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
