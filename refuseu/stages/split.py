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

The stage streams: a first read of the input keeps one entry per group (the group id as an
8-byte integer, its first row's kind, category and style as small codes, its order key and
pin), about 30 bytes a group; the decision is made on those arrays, and a second read gives
each chunk its groups' side. The near-pinned-test match reads the texts of the open groups
once more (the dedup stage's chunked near-duplicate pass, reference texts first).
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
        """Two reads of the input: one entry per group (numpy arrays: the id as uint64, its
        first row's kind, category and style as small codes) decides the split, then each
        chunk gets its groups' side."""
        g = self._groups(chunks)
        near_test = 0
        if self.test_texts and "text" in chunks.columns:
            moved = self._near_pinned_test(chunks, g["gid"][g["pin"] != 2])
            near_test = len(moved)
            g["pin"][np.isin(g["gid"], moved)] = 2
        fresh = np.flatnonzero(g["pin"] == 0)
        kind, cat, style = g["kind"][fresh], g["category"][fresh], g["style"][fresh]
        key, gid = g["key"][fresh], g["gid"][fresh]
        # (kind, category) and (kind, category, style) as one integer each (codes are >= -1).
        width = len(g["names"]) + 1
        stratum = (kind.astype(np.int64) + 1) * width + (cat + 1)
        with_style = stratum * width + (style + 1)
        # Round-robin over styles within a stratum: rank within (stratum, style) first, each
        # style's groups in key order, then the stratum's groups by (rank in style, key).
        srank = _rank_within(np.lexsort((gid, key, with_style)), with_style)
        rank = _rank_within(np.lexsort((gid, key, srank, stratum)), stratum)
        del with_style, srank
        sizes = dict(self.config.per_category)
        strata, where, counts = np.unique(stratum, return_inverse=True, return_counts=True)
        limits = np.array([n_test_groups(sizes.get(g["names"].get(s % width - 1), self.config.test_size), n)
                           if s // width and s % width else 0  # a group without kind or category stays in train
                           for s, n in zip(strata.tolist(), counts.tolist())], dtype=np.int64)
        test = g["pin"] == 2
        test[fresh] = rank < limits[where.ravel()] if len(fresh) else False
        gids = g["gid"]  # sorted (np.unique)
        stats = {"pinned_test": int((g["pin"] == 2).sum()), "pinned_train": int((g["pin"] == 1).sum())} \
            if self.pinned else {}
        if self.test_texts:
            stats["near_pinned_test"] = near_test
        del g, fresh, kind, cat, style, key, gid, stratum, rank, where
        for chunk in chunks:
            side = test[np.searchsorted(gids, id_keys(chunk.get_column("group_id")))] if chunk.height else []
            kept = chunk.with_columns(split=pl.when(pl.Series(side, dtype=pl.Boolean)).then(pl.lit("test"))
                                      .otherwise(pl.lit("train")))
            yield StageResult(kept=kept, rejected=empty_rejects(), stats=stats, input=chunk)

    def _groups(self, chunks: Chunks) -> dict[str, np.ndarray]:
        """One entry per group: ``gid`` (uint64), the ``kind``, ``category`` and ``style``
        of its first row as codes (-1: none), ``key`` (its place in the seeded order),
        ``pin`` (2: a prompt of it was pinned test, else 1: train, 0: none), and ``names``
        (code -> string)."""
        codes: dict[str, int] = {}

        def code(values: pl.Series) -> np.ndarray:
            for v in values.unique().drop_nulls().to_list():
                codes.setdefault(v, len(codes))
            return values.replace_strict(codes, default=None, return_dtype=pl.Int32).fill_null(-1).to_numpy()

        pins = pl.DataFrame({"prompt_id": list(self.pinned),
                             "__p": [2 if v == "test" else 1 for v in self.pinned.values()]},
                            schema={"prompt_id": pl.String, "__p": pl.Int8})
        cols = ["group_id", "kind", "category", "attack_style", "prompt_id"]
        parts: dict[str, list[np.ndarray]] = {k: [] for k in ("gid", "kind", "category", "style", "key", "pin")}
        for c in chunks.select([x for x in cols if x in chunks.columns]):
            ids = c.get_column("group_id")
            parts["gid"].append(id_keys(ids))
            parts["key"].append(self._order_keys(ids))
            parts["kind"].append(code(c.get_column("kind")))
            parts["category"].append(code(c.get_column("category")))
            parts["style"].append(code(c.get_column("attack_style")) if "attack_style" in c.columns
                                  else np.full(c.height, -1, dtype=np.int32))
            if self.pinned:
                pin = c.select("prompt_id").join(pins, on="prompt_id", how="left", maintain_order="left")
                parts["pin"].append(pin.get_column("__p").fill_null(0).to_numpy())
            else:
                parts["pin"].append(np.zeros(c.height, dtype=np.int8))
        rows = {k: np.concatenate(v) if v else np.zeros(0, dtype=np.int64) for k, v in parts.items()}
        del parts
        gid, first, inverse = np.unique(rows["gid"], return_index=True, return_inverse=True)
        pin = np.zeros(len(gid), dtype=np.int8)
        np.maximum.at(pin, inverse.ravel(), rows["pin"])
        out = {k: rows[k][first] for k in ("kind", "category", "style", "key")}
        return {"gid": gid, "pin": pin, **out, "names": {v: k for k, v in codes.items()}}

    def _near_pinned_test(self, chunks: Chunks, open_gids: np.ndarray) -> np.ndarray:
        """Group ids (uint64) among ``open_gids`` (sorted) with a near-duplicate of a pinned
        test prompt."""
        from refuseu.stages.dedup import reference_matches

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


def _rank_within(order: np.ndarray, part: np.ndarray) -> np.ndarray:
    """For every element: its rank, in ``order``, among the elements of its ``part``
    (``order`` sorts by ``part`` first)."""
    n = len(order)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    s = part[order]
    new = np.ones(n, dtype=bool)
    new[1:] = s[1:] != s[:-1]
    starts = np.flatnonzero(new)
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - np.repeat(starts, np.diff(np.append(starts, n)))
    return rank
