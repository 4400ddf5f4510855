"""SplitStage: a contamination-free train/test split decided once per group.

Groups (near-duplicates share one) are stratified by (kind, category). Within a stratum
they are ordered round-robin over attack styles (the first group of every style, then the
second, ...), each style's groups in the order of a hash of the recipe seed and the group
id; the first ``test_size`` groups (a count, or a share of the stratum's groups) go to
test, so test covers the styles of each category evenly. The decision is made before
translation, so a prompt that is in test is in test in every language.

Pinned prompts (``split.keep_test_from``: the test and train prompts of a previous
release) keep their split, and so does every prompt of their group (their near-duplicates);
only groups without a pinned prompt are split afresh, at the same rate. A test prompt of a
published version therefore never becomes training data in the next one.
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

    def __init__(self, config: SplitConfig, *, seed: int, pinned: dict[str, str] | None = None):
        """``pinned``: prompt id -> "test" | "train" of a previous release."""
        self.config = config
        self.seed = seed
        self.pinned = pinned or {}

    def signature_parts(self) -> dict:
        parts = {**self.config.model_dump(mode="json"), "seed": self.seed}
        if self.pinned:
            blob = "\n".join(f"{k}\t{v}" for k, v in sorted(self.pinned.items())).encode()
            parts["pinned"] = hashlib.sha256(blob).hexdigest()
        return parts

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
        style = pl.col("attack_style").first() if "attack_style" in df.columns else pl.lit(None, dtype=pl.String)
        groups = df.group_by("group_id", maintain_order=True).agg(
            pl.col("kind").first(), pl.col("category").first(), style.alias("__style"))
        if self.pinned:
            pins = pl.DataFrame({"prompt_id": list(self.pinned), "__pin": list(self.pinned.values())},
                                schema={"prompt_id": pl.String, "__pin": pl.String})
            # A group is test when any of its prompts was test, else train when any was train.
            per_group = (df.select("prompt_id", "group_id").join(pins, on="prompt_id", how="inner")
                         .group_by("group_id").agg((pl.col("__pin") == "test").any().alias("__t")))
            groups = groups.join(per_group, on="group_id", how="left", maintain_order="left").with_columns(
                __pin=pl.when(pl.col("__t")).then(pl.lit("test"))
                .when(pl.col("__t").is_not_null()).then(pl.lit("train"))).drop("__t")
        else:
            groups = groups.with_columns(__pin=pl.lit(None, dtype=pl.String))
        groups = groups.with_columns(__key=pl.Series(self._order_keys(groups.get_column("group_id"))))
        fresh = groups.filter(pl.col("__pin").is_null())
        # Round-robin over styles within a stratum: rank within (stratum, style) first.
        fresh = fresh.sort("kind", "category", "__style", "__key", "group_id", nulls_last=True).with_columns(
            __srank=pl.int_range(pl.len()).over("kind", "category", "__style"))
        fresh = fresh.sort("kind", "category", "__srank", "__key", "group_id", nulls_last=True).with_columns(
            __rank=pl.int_range(pl.len()).over("kind", "category"),
            __n=pl.len().over("kind", "category"))
        sizes = dict(self.config.per_category)
        limits = {}
        for kind, cat, n in fresh.select("kind", "category", "__n").unique().iter_rows():
            limits[(kind, cat)] = n_test_groups(sizes.get(cat, self.config.test_size), n)
        limit_df = pl.DataFrame([{"kind": k, "category": c, "__limit": v} for (k, c), v in limits.items()],
                                schema={"kind": pl.String, "category": pl.String, "__limit": pl.Int64})
        fresh = fresh.join(limit_df, on=["kind", "category"], how="left").with_columns(
            split=pl.when(pl.col("__rank") < pl.col("__limit")).then(pl.lit("test")).otherwise(pl.lit("train")))
        decided = pl.concat([fresh.select("group_id", "split"),
                             groups.filter(pl.col("__pin").is_not_null()).select("group_id", split=pl.col("__pin"))])
        kept = df.join(decided, on="group_id", how="left", maintain_order="left")
        stats = {"pinned_test": int(groups.filter(pl.col("__pin") == "test").height),
                 "pinned_train": int(groups.filter(pl.col("__pin") == "train").height)} if self.pinned else {}
        return StageResult(kept=kept, rejected=empty_rejects(), stats=stats)
