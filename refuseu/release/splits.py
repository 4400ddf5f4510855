"""The train/test decision of a published release, to keep it in the next one."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from refuseu.errors import InputError


class PinnedSplits(dict):
    """prompt id -> "test" | "train" of a release, with ``test_texts``: the English text of
    its test prompts (sorted, distinct; empty when the release has no English rows), so that
    near-duplicates of them can be kept in test too."""

    def __init__(self, splits: dict[str, str], test_texts: list[str] | None = None):
        super().__init__(splits)
        self.test_texts = list(test_texts or [])


def release_splits(spec: str) -> PinnedSplits:
    """prompt id -> "test" | "train" of a release (a folder, or ``hf:OWNER/NAME@REV``).

    The release is verified by content first. A prompt in test in any file is test.
    """
    from refuseu.release.diff import fetch_release
    from refuseu.release.verify import require_valid

    root = fetch_release(spec)
    require_valid(root, action="keep its test split", hub_snapshot=spec.startswith("hf:"))
    files = sorted(Path(root).glob("data/*/*.parquet"))
    if not files:
        raise InputError("the release holds no data files", file=spec, field="split.keep_test_from")
    frames = [pl.read_parquet(f, columns=["prompt_id", "split"], glob=False) for f in files]
    rows = pl.concat(frames).drop_nulls()
    per_prompt = rows.group_by("prompt_id").agg((pl.col("split") == "test").any().alias("test"))
    splits = {pid: ("test" if t else "train") for pid, t in per_prompt.sort("prompt_id").iter_rows()}
    return PinnedSplits(splits, _english_test_texts(files))


def _english_test_texts(files: list[Path]) -> list[str]:
    """The English prompts of test rows (the ``lang_en`` config and the evaluation config)."""
    texts: set[str] = set()
    for f in files:
        names = pl.scan_parquet(f, glob=False).collect_schema().names()
        if not {"prompt", "split", "lang"} <= set(names):
            continue
        rows = pl.read_parquet(f, columns=["prompt", "split", "lang"], glob=False)
        texts.update(rows.filter((pl.col("lang") == "en") & (pl.col("split") == "test"))
                     .get_column("prompt").drop_nulls().to_list())
    return sorted(texts)
