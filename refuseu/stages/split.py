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
published version therefore never becomes training data in the next one. A new prompt that
is a near-duplicate of a pinned test prompt (the English text of the previous release's test
rows, by the dedup stage's MinHash rule) goes to test with its group too, even when the
pinned prompt itself is no longer in the source.
"""

from __future__ import annotations

import hashlib

import numpy as np
import polars as pl

from refuseu.config import DedupConfig, SplitConfig
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

    def __init__(self, config: SplitConfig, *, seed: int, pinned: dict[str, str] | None = None,
                 dedup: DedupConfig | None = None):
        """``pinned``: prompt id -> "test" | "train" of a previous release; when it carries
        ``test_texts`` (:class:`refuseu.release.splits.PinnedSplits`), near-duplicates of
        them, by ``dedup`` (default settings when not given), go to test too."""
        self.config = config
        self.seed = seed
        self.pinned = pinned or {}
        self.dedup = dedup or DedupConfig()
        self.test_texts = list(getattr(pinned, "test_texts", None) or []) if self.dedup.near else []

    def signature_parts(self) -> dict:
        parts = {**self.config.model_dump(mode="json"), "seed": self.seed}
        if self.pinned:
            blob = "\n".join(f"{k}\t{v}" for k, v in sorted(self.pinned.items())).encode()
            parts["pinned"] = hashlib.sha256(blob).hexdigest()
        if self.test_texts:  # the texts follow from the pinned ids; the matching rule does not
            parts["pinned_near"] = {k: v for k, v in self.dedup.model_dump(mode="json").items()
                                    if k in ("threshold", "num_perm", "shingle_words")}
        return parts

    def _near_pinned_test(self, df: pl.DataFrame, groups: pl.DataFrame) -> pl.Series:
        """Group ids, not pinned test yet, with a near-duplicate of a pinned test prompt."""
        from refuseu.stages.dedup import reference_matches

        open_groups = groups.filter(pl.col("__pin").is_null() | (pl.col("__pin") != "test")).select("group_id")
        rows = df.select("group_id", "text").join(open_groups, on="group_id", how="semi", maintain_order="left")
        hit = reference_matches(rows.get_column("text"), pl.Series(self.test_texts, dtype=pl.String),
                                self.dedup, seed=self.seed)
        return rows.filter(pl.Series(hit)).get_column("group_id").unique(maintain_order=True)

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
        near_test = 0
        if self.test_texts and "text" in df.columns:
            moved = self._near_pinned_test(df, groups)
            near_test = moved.len()
            groups = groups.with_columns(__pin=pl.when(pl.col("group_id").is_in(moved.implode()))
                                         .then(pl.lit("test")).otherwise(pl.col("__pin")))
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
        if self.test_texts:
            stats["near_pinned_test"] = near_test
        return StageResult(kept=kept, rejected=empty_rejects(), stats=stats)
