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
from typing import Iterator

import numpy as np
import polars as pl

from refuseu.config import DedupConfig, SplitConfig
from refuseu.stages.base import Chunks, Stage, StageContext, StageResult, empty_rejects
from refuseu.stages.dedup import id_keys


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

    def run_stream(self, chunks: Chunks, ctx: StageContext) -> Iterator[StageResult]:
        """Two reads of the input: one table row per group (ids as uint64, strings as small
        codes) decides the split, then each chunk gets its groups' side."""
        groups, names = self._groups(chunks)
        pinned = self.pinned
        near_test = 0
        if self.test_texts and "text" in chunks.columns:
            moved = self._near_pinned_test(chunks, groups)
            near_test = len(moved)
            groups = groups.with_columns(__pin=pl.when(pl.col("gid").is_in(pl.Series(moved, dtype=pl.UInt64).implode()))
                                         .then(pl.lit(2, dtype=pl.Int8)).otherwise(pl.col("__pin")))
        fresh = groups.filter(pl.col("__pin") == 0)
        # Round-robin over styles within a stratum: rank within (stratum, style) first.
        fresh = fresh.sort("kind", "category", "__style", "__key", "gid", nulls_last=True).with_columns(
            __srank=pl.int_range(pl.len()).over("kind", "category", "__style"))
        fresh = fresh.sort("kind", "category", "__srank", "__key", "gid", nulls_last=True).with_columns(
            __rank=pl.int_range(pl.len()).over("kind", "category"),
            __n=pl.len().over("kind", "category"))
        sizes = dict(self.config.per_category)
        limits = [{"kind": kind, "category": cat,
                   "__limit": n_test_groups(sizes.get(names[cat] if cat is not None else None, self.config.test_size), n)}
                  for kind, cat, n in fresh.select("kind", "category", "__n").unique().iter_rows()]
        limit_df = pl.DataFrame(limits, schema={"kind": pl.Int32, "category": pl.Int32, "__limit": pl.Int64})
        fresh = fresh.join(limit_df, on=["kind", "category"], how="left")
        decided = pl.concat([fresh.select("gid", test=(pl.col("__rank") < pl.col("__limit")).fill_null(False)),
                             groups.filter(pl.col("__pin") != 0).select("gid", test=pl.col("__pin") == 2)]).sort("gid")
        gids, test = decided.get_column("gid").to_numpy(), decided.get_column("test").to_numpy()
        stats = {"pinned_test": int(groups.filter(pl.col("__pin") == 2).height),
                 "pinned_train": int(groups.filter(pl.col("__pin") == 1).height)} if pinned else {}
        if self.test_texts:
            stats["near_pinned_test"] = near_test
        del groups, fresh, decided
        for chunk in chunks:
            side = test[np.searchsorted(gids, id_keys(chunk.get_column("group_id")))] if chunk.height else []
            kept = chunk.with_columns(split=pl.when(pl.Series(side, dtype=pl.Boolean)).then(pl.lit("test"))
                                      .otherwise(pl.lit("train")))
            yield StageResult(kept=kept, rejected=empty_rejects(), stats=stats, input=chunk)

    def _groups(self, chunks: Chunks) -> tuple[pl.DataFrame, dict[int, str]]:
        """One row per group, in order of first appearance: ``gid`` (uint64), the ``kind``,
        ``category`` and ``__style`` of its first row as codes, ``__key`` (its place in the
        seeded order) and ``__pin`` (2: a prompt of it was pinned test, 1: train, 0: none).
        Also the strings of the codes."""
        codes: dict[str, int] = {}

        def code(values: pl.Series) -> pl.Series:
            for v in values.unique().drop_nulls().to_list():
                codes.setdefault(v, len(codes))
            return values.replace_strict(codes, default=None, return_dtype=pl.Int32)

        pins = pl.DataFrame({"prompt_id": list(self.pinned),
                             "__p": [2 if v == "test" else 1 for v in self.pinned.values()]},
                            schema={"prompt_id": pl.String, "__p": pl.Int8})
        cols = ["group_id", "kind", "category", "attack_style", "prompt_id"]
        parts = []
        for c in chunks.select([x for x in cols if x in chunks.columns]):
            style = c.get_column("attack_style") if "attack_style" in c.columns else pl.Series([None] * c.height,
                                                                                                dtype=pl.String)
            part = pl.DataFrame({"gid": id_keys(c.get_column("group_id")),
                                 "kind": code(c.get_column("kind")), "category": code(c.get_column("category")),
                                 "__style": code(style), "__key": self._order_keys(c.get_column("group_id"))})
            if self.pinned:
                pin = c.select("prompt_id").join(pins, on="prompt_id", how="left", maintain_order="left")
                part = part.with_columns(__pin=pin.get_column("__p").fill_null(0))
            else:
                part = part.with_columns(__pin=pl.lit(0, dtype=pl.Int8))
            parts.append(part.group_by("gid", maintain_order=True).agg(
                pl.col("kind", "category", "__style", "__key").first(), pl.col("__pin").max()))
        schema = {"gid": pl.UInt64, "kind": pl.Int32, "category": pl.Int32, "__style": pl.Int32,
                  "__key": pl.UInt64, "__pin": pl.Int8}
        groups = (pl.concat(parts).group_by("gid", maintain_order=True).agg(
            pl.col("kind", "category", "__style", "__key").first(), pl.col("__pin").max())
            if parts else pl.DataFrame(schema=schema))
        return groups, {v: k for k, v in codes.items()}

    def _near_pinned_test(self, chunks: Chunks, groups: pl.DataFrame) -> np.ndarray:
        """Group ids (uint64), not pinned test yet, with a near-duplicate of a pinned test prompt."""
        from refuseu.stages.dedup import reference_matches

        open_gids = np.sort(groups.filter(pl.col("__pin") != 2).get_column("gid").to_numpy())
        row_gids: list[np.ndarray] = []

        def texts():
            row_gids.clear()
            for c in chunks.select(["group_id", "text"]):
                g = id_keys(c.get_column("group_id"))
                pos = np.minimum(np.searchsorted(open_gids, g), max(len(open_gids) - 1, 0))
                is_open = (open_gids[pos] == g) if len(open_gids) else np.zeros(len(g), dtype=bool)
                row_gids.append(g[is_open])
                yield c.get_column("text").filter(pl.Series(is_open))

        hit = reference_matches(texts, pl.Series(self.test_texts, dtype=pl.String), self.dedup, seed=self.seed)
        gids = np.concatenate(row_gids) if row_gids else np.zeros(0, dtype=np.uint64)
        return np.unique(gids[hit])
