"""``inspect``: counts of a release folder per config, split, category, style and origin."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from refuseu.errors import InputError
from refuseu.release.verify import require_valid


def load_release_rows(release: str | Path) -> pl.DataFrame:
    root = Path(release)
    if not (root / "data").is_dir():
        raise InputError("not a release folder (no data/ inside)", file=str(root),
                         hint="give a folder made by 'refuseu build' (releases/<name>-v<version>)")
    frames = []
    for f in sorted((root / "data").glob("*/*.parquet")):
        df = pl.read_parquet(f)
        frames.append(df.with_columns(config=pl.lit(f.parent.name), file_split=pl.lit(f.name.split("-")[0])))
    if not frames:
        return pl.DataFrame()
    return pl.concat(frames, how="diagonal_relaxed")


def inspect_release(release: str | Path) -> dict:
    """Counts of a release; it is verified by content first (exit 1 when damaged)."""
    root = Path(release)
    if not (root / "data").is_dir() and not (root / "manifest.json").exists():
        load_release_rows(root)  # the "not a release folder" message
    require_valid(root, action="inspect it")
    rows = load_release_rows(release)
    if rows.height == 0:
        return {"release": str(release), "rows": 0, "configs": {}}

    def counts(*by: str) -> dict:
        out: dict = {}
        for r in rows.group_by("config", "file_split", *by).len().sort("config", "file_split", *by).iter_rows():
            *key, n = r
            out.setdefault(f"{key[0]}/{key[1]}", {})[" / ".join(str(k) for k in key[2:]) or "rows"] = n
        return out

    return {
        "release": str(release),
        "rows": rows.height,
        "configs": counts(),
        "by_category": counts("category"),
        "by_attack_style": counts("attack_style"),
        "by_origin": counts("origin", "chosen_origin", "rejected_origin"),
    }
