"""The train/test decision of a published release, to keep it in the next one."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from refuseu.errors import InputError


def release_splits(spec: str) -> dict[str, str]:
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
    frames = [pl.read_parquet(f, columns=["prompt_id", "split"]) for f in files]
    rows = pl.concat(frames).drop_nulls()
    per_prompt = rows.group_by("prompt_id").agg((pl.col("split") == "test").any().alias("test"))
    return {pid: ("test" if t else "train") for pid, t in per_prompt.sort("prompt_id").iter_rows()}
