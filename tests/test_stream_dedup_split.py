"""Dedup and split give the same rows whatever the chunk size of their input."""

from __future__ import annotations

import random

import numpy as np
import polars as pl
import pytest

from refuseu.config import DedupConfig, SplitConfig
from refuseu.stages.base import FrameChunks, StageContext
from refuseu.stages.dedup import DedupStage, id_keys, near_duplicate_roots, near_duplicate_roots_stream
from refuseu.stages.normalize import prompt_id
from refuseu.stages.split import SplitStage

from test_dedup import planted

CHUNKS = (1, 7, 50, None)  # None: the whole table in one chunk
CTX = StageContext(languages=["en"])


@pytest.fixture(scope="module")
def table() -> pl.DataFrame:
    """A few hundred prompts with planted near-duplicate pairs and exact repeats."""
    texts, _ = planted(40, 200, seed=4)
    rng = random.Random(1)
    texts = texts + [rng.choice(texts) for _ in range(40)]
    rng.shuffle(texts)
    df = pl.DataFrame({"text": texts, "kind": ["benign" if len(t) % 4 == 0 else "harmful" for t in texts],
                       "category": [rng.choice(["privacy", "hate", "elections", None]) for _ in texts],
                       "attack_style": [rng.choice(["slang", "role_play", None]) for _ in texts],
                       "source": ["src.jsonl"] * len(texts), "source_row": list(range(1, len(texts) + 1))})
    return df.with_columns(prompt_id=pl.Series([prompt_id(t, k) for t, k in zip(df["text"], df["kind"])]))


def _stream(stage, df: pl.DataFrame, k: int | None, ctx: StageContext = CTX):
    chunks = FrameChunks(df, chunk_rows=k)
    results = list(stage.run_stream(chunks, ctx))
    assert len(results) == len(chunks)
    assert all(r.input is c for r, c in zip(results, chunks))
    kept = pl.concat([r.kept for r in results])
    rejected = pl.concat([r.rejected for r in results])
    return kept, rejected, stage.merge_stats([r.stats for r in results])


def _sorted(rejected: pl.DataFrame) -> pl.DataFrame:
    return rejected.sort(pl.all())


@pytest.mark.parametrize("action", ["group", "reject"])
@pytest.mark.parametrize("k", CHUNKS)
def test_dedup_stream_equals_the_whole_table(table, action, k):
    cfg = DedupConfig(near_action=action)
    whole = DedupStage(cfg, seed=3).run(table, CTX)
    kept, rejected, _ = _stream(DedupStage(cfg, seed=3), table, k)
    assert kept.equals(whole.kept)
    assert _sorted(rejected).equals(_sorted(whole.rejected))
    reasons = rejected["reason"].value_counts().sort("reason")
    assert reasons.filter(pl.col("reason") == "duplicate")["count"].item() >= 30
    if action == "group":
        assert (kept["group_id"] != kept["prompt_id"]).sum() >= 30  # near-duplicates grouped
        assert "near_duplicate" not in reasons["reason"].to_list()
    else:
        assert (kept["group_id"] == kept["prompt_id"]).all()
        assert reasons.filter(pl.col("reason") == "near_duplicate")["count"].item() >= 30


def test_dedup_rejects_name_the_first_occurrence_and_the_group(table):
    kept, rejected, _ = _stream(DedupStage(DedupConfig(near_action="reject"), seed=3), table, 7)
    first_row = dict(table.group_by("prompt_id", maintain_order=True).agg(pl.col("source_row").first()).iter_rows())
    for pid, detail in rejected.filter(pl.col("reason") == "duplicate").select("prompt_id", "detail").iter_rows():
        assert detail == f"exact duplicate of {pid} (src.jsonl:{first_row[pid]})"
    text = dict(table.select("prompt_id", "text").iter_rows())
    from test_dedup import true_jaccard
    for detail in rejected.filter(pl.col("reason") == "near_duplicate")["detail"]:
        # "similar to <group id> (Jaccard 0.857)": the exact Jaccard of the row and its group's first row
        assert detail.startswith("similar to ") and " (Jaccard " in detail
        root = detail.split()[2]
        assert root in set(kept["prompt_id"])
    near = rejected.filter(pl.col("reason") == "near_duplicate")
    for pid, detail in near.select("prompt_id", "detail").iter_rows():
        root, sim = detail.split()[2], float(detail[:-1].split()[-1])
        assert sim == pytest.approx(true_jaccard(text[pid], text[root]), abs=1e-3)


def test_near_duplicate_roots_do_not_depend_on_the_pieces(table):
    texts = table["text"].unique(maintain_order=True)
    roots, sims = near_duplicate_roots(texts, DedupConfig(), seed=2)
    for k in (1, 13, 100):
        got, got_sims = near_duplicate_roots_stream(
            lambda: [texts.slice(s, k) for s in range(0, texts.len(), k)], DedupConfig(), seed=2)
        assert np.array_equal(got, roots) and np.array_equal(got_sims, sims)


def test_spill_files_are_removed(table, tmp_path):
    ctx = StageContext(languages=["en"], scratch=str(tmp_path))
    kept, _, _ = _stream(DedupStage(DedupConfig(), seed=3), table, 50, ctx)
    assert (kept["group_id"] != kept["prompt_id"]).any()
    assert list(tmp_path.iterdir()) == []


def test_spill_files_are_removed_when_the_texts_fail(tmp_path):
    def texts():
        yield pl.Series(["one two three four", "one two three five"])
        raise RuntimeError("reader failed")

    with pytest.raises(RuntimeError):
        near_duplicate_roots_stream(texts, DedupConfig(), scratch=str(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_semantic_dedup_needs_the_whole_table():
    assert not DedupStage(DedupConfig(), seed=1).needs_whole_table()
    semantic = DedupConfig(semantic={"model": "some/model"})
    assert DedupStage(semantic, seed=1).needs_whole_table()


def test_id_keys():
    ids = pl.Series(["00000000000000ff", "ffffffffffffffff", "8000000000000000", "hand-made", None])
    got = id_keys(ids)
    assert got.dtype == np.uint64 and got[:3].tolist() == [255, 2**64 - 1, 2**63]
    assert len(set(got.tolist())) == 5
    assert np.array_equal(id_keys(ids), got)


class Pinned(dict):
    """Pinned splits of a previous release (as refuseu.release.splits.PinnedSplits)."""
    test_texts: list[str] = []


@pytest.fixture(scope="module")
def deduped(table) -> pl.DataFrame:
    return DedupStage(DedupConfig(), seed=3).run(table, CTX).kept


def _pinned(deduped: pl.DataFrame) -> Pinned:
    ids, texts = deduped["prompt_id"].to_list(), deduped["text"].to_list()
    pins = Pinned({pid: "test" if i % 3 == 0 else "train" for i, pid in enumerate(ids[:40])})
    # Near-duplicates (one word added) of prompts that left the source, and prompts already pinned.
    pins.test_texts = [t + " please" for t in texts[100:110] if len(t.split()) > 20] + texts[:3]
    return pins


@pytest.mark.parametrize("pinned", [False, True])
@pytest.mark.parametrize("size", [0.25, 3])
@pytest.mark.parametrize("k", CHUNKS)
def test_split_stream_equals_the_whole_table(deduped, pinned, size, k):
    pins = _pinned(deduped) if pinned else None
    config = SplitConfig(test_size=size, per_category={"hate": 0.5})
    whole = SplitStage(config, seed=5, pinned=pins).run(deduped, CTX)
    kept, rejected, stats = _stream(SplitStage(config, seed=5, pinned=pins), deduped, k)
    assert kept.equals(whole.kept) and rejected.height == 0 and stats == whole.stats
    assert set(kept["split"]) == {"test", "train"}
    # One side per group.
    assert kept.group_by("group_id").agg(pl.col("split").n_unique())["split"].max() == 1
    if pinned:
        side = dict(kept.select("prompt_id", "split").iter_rows())
        assert all(side[p] == "test" for p, s in pins.items() if s == "test")
        assert stats["pinned_test"] > 0 and stats["pinned_train"] > 0 and stats["near_pinned_test"] > 0


def test_split_keeps_hand_made_group_ids_apart():
    df = pl.DataFrame({"prompt_id": [f"p{i}" for i in range(40)], "group_id": [f"g{i // 2}" for i in range(40)],
                       "kind": ["harmful"] * 40, "category": ["hate"] * 40})
    for k in CHUNKS:
        kept, _, _ = _stream(SplitStage(SplitConfig(test_size=0.25), seed=1), df, k)
        assert kept.group_by("group_id").agg(pl.col("split").n_unique())["split"].max() == 1
        assert (kept["split"] == "test").sum() == 10
