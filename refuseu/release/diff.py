"""``diff``: what changed between two releases (folders, or Hub revisions ``hf:OWNER/NAME@REV``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl

from refuseu.errors import BuildError, InputError
from refuseu.release.inspect import ReleaseColumns, load_release_rows
from refuseu.release.manifest import read_manifest
from refuseu.release.verify import require_valid

COMPARE = ("prompt", "chosen", "rejected", "split", "category", "attack_style", "origin", "chosen_origin",
           "rejected_origin", "qe_score", "lid_lang")
#: Columns counted per value (old -> new).
COUNTED = ("category", "attack_style", "origin", "chosen_origin", "rejected_origin")


def _diff_rows(root: Path) -> pl.DataFrame:
    """What :func:`diff_releases` compares, one row per release row, read one record batch at a
    time: ``config``, ``file_split``, ``pair_id``, ``prompt_id``, ``split`` and the counted
    columns as they are, and each compared column as a hash (``<col>#``, equal values give
    equal hashes, a null its own), so no text is held."""
    if not (root / "data").is_dir():
        load_release_rows(root)  # its message for a folder that is not a release
    frames = []
    for config, file_split, df in ReleaseColumns(root).batches(("pair_id", "prompt_id", *COMPARE)):
        keep = [pl.col(c).cast(pl.Categorical) if df.schema[c] == pl.String else pl.col(c)
                for c in ("split", *COUNTED) if c in df.columns]
        frames.append(df.select(
            pl.lit(config, dtype=pl.String).cast(pl.Categorical).alias("config"),
            pl.lit(file_split, dtype=pl.String).cast(pl.Categorical).alias("file_split"),
            *(c for c in ("pair_id", "prompt_id") if c in df.columns), *keep,
            *(pl.col(c).hash(seed=0).alias(f"{c}#") for c in COMPARE if c in df.columns)))
    if not frames:
        return pl.DataFrame()
    return pl.concat(frames, how="diagonal_relaxed")


def fetch_release(spec: str) -> Path:
    """A local folder for ``spec``: a folder as is, or ``hf:OWNER/NAME[@REV]`` from the Hub."""
    if not spec.startswith("hf:"):
        p = Path(spec)
        if not p.exists():
            raise InputError("not found", file=spec,
                             hint="give a folder made by `refuseu build`, or hf:OWNER/NAME@vX.Y.Z")
        if not (p / "manifest.json").exists():
            raise InputError("not a release folder (no manifest.json)", file=spec,
                             hint="give a folder made by `refuseu build`, or hf:OWNER/NAME@vX.Y.Z")
        return p
    repo, at, rev = spec[3:].partition("@")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (HFValidationError, LocalEntryNotFoundError, RepositoryNotFoundError,
                                         RevisionNotFoundError)
    from huggingface_hub.utils import validate_repo_id

    form = "hf:OWNER/NAME or hf:OWNER/NAME@REVISION (a tag such as v1.2.0, a branch or a commit)"
    try:
        validate_repo_id(repo)
        if repo.count("/") != 1 or (at and not rev.strip()):
            raise HFValidationError("")
    except HFValidationError:
        raise InputError("not a Hub dataset id", file=spec, hint=f"give {form}") from None
    try:
        return Path(snapshot_download(repo, repo_type="dataset", revision=rev or None))
    except LocalEntryNotFoundError:
        offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
        raise BuildError(f"{spec} is not in the local Hugging Face cache"
                         + (" and HF_HUB_OFFLINE is set" if offline else " and the Hub could not be reached"),
                         hint="fetch it once with the network on, or give a release folder") from None
    except (RepositoryNotFoundError, RevisionNotFoundError) as e:
        raise BuildError(f"could not fetch {spec}: {type(e).__name__}",
                         hint="check the repo id and revision, and HF_TOKEN for a private or gated repo") from None
    except Exception as e:  # noqa: BLE001 - the network, the disk: one line
        raise BuildError(f"could not fetch {spec}: {type(e).__name__}",
                         hint="check the repo id and revision, the network and HF_TOKEN") from None


def _flat(d, prefix=""):
    out = {}
    for k, v in (d or {}).items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def diff_releases(old: str, new: str) -> dict:
    a_dir, b_dir = fetch_release(old), fetch_release(new)
    for spec, d in ((old, a_dir), (new, b_dir)):
        require_valid(d, action="compare it", hub_snapshot=spec.startswith("hf:"))
    a, b = _diff_rows(a_dir), _diff_rows(b_dir)
    key = ["config", "file_split", "pair_id"]
    cols = [f"{c}#" for c in COMPARE if f"{c}#" in a.columns and f"{c}#" in b.columns]
    # (config and file_split as text: two releases' Categoricals are compared by their text)
    a_keyed = a.select(pl.col("config", "file_split").cast(pl.String), "pair_id", *cols)
    b_keyed = b.select(pl.col("config", "file_split").cast(pl.String), "pair_id", *cols)
    joined = a_keyed.join(b_keyed, on=key, how="full", suffix="_new", coalesce=True)
    del a_keyed, b_keyed
    out: dict = {"old": old, "new": new, "configs": {}}
    for (config, split), part in joined.group_by("config", "file_split", maintain_order=True):
        # A row's hashes are never null, so a null one says the row is not on that side.
        added = part.filter(pl.col(cols[0]).is_null() & pl.col(f"{cols[0]}_new").is_not_null())
        removed = part.filter(pl.col(cols[0]).is_not_null() & pl.col(f"{cols[0]}_new").is_null())
        both = part.filter(pl.col(cols[0]).is_not_null() & pl.col(f"{cols[0]}_new").is_not_null())
        changed_mask = pl.lit(False)
        for c in cols:
            changed_mask = changed_mask | (pl.col(c) != pl.col(f"{c}_new"))
        changed = both.filter(changed_mask)
        out["configs"][f"{config}/{split}"] = {
            "added": added.height, "removed": removed.height, "changed": changed.height,
            "added_ids": sorted(added["pair_id"].to_list())[:50],
            "removed_ids": sorted(removed["pair_id"].to_list())[:50],
            "changed_ids": sorted(changed["pair_id"].to_list())[:50]}
    del joined

    # Contamination across versions: a test prompt of OLD that NEW trains on.
    old_test = set(a.filter(pl.col("split") == "test")["prompt_id"].to_list()) if a.height else set()
    new_train = set(b.filter(pl.col("split") == "train")["prompt_id"].to_list()) if b.height else set()
    leaked = sorted(old_test & new_train)
    out["test_to_train"] = {"count": len(leaked), "prompt_ids": leaked[:50]}

    def counts(df: pl.DataFrame, col: str) -> dict:
        return ({str(k): n for k, n in df.group_by(pl.col(col).cast(pl.String)).len().sort(col, nulls_last=True)
                 .iter_rows()} if df.height else {})

    out["counts"] = {col: {"old": counts(a, col), "new": counts(b, col)} for col in COUNTED
                     if col in a.columns and col in b.columns}
    ma, mb = _flat(read_manifest(a_dir)), _flat(read_manifest(b_dir))
    skip = ("files.", "funnel.", "stage_stats.", "counts.", "recipe.build_dir", "recipe.release.out")
    out["manifest"] = {k: {"old": ma.get(k), "new": mb.get(k)} for k in sorted(set(ma) | set(mb))
                       if ma.get(k) != mb.get(k) and not k.startswith(skip)}
    return out


def format_diff(d: dict) -> str:
    lines = [f"{d['old']} -> {d['new']}", ""]
    leaked = d.get("test_to_train", {}).get("count", 0)
    if leaked:
        import click

        lines += [click.style(f"warning: {leaked} test prompt(s) of {d['old']} are training data in {d['new']}: "
                              "models trained on the new release have seen them (keep the split with "
                              "split.keep_test_from / --keep-test-from)", fg="red", bold=True),
                  "  " + ", ".join(d["test_to_train"]["prompt_ids"][:10]) + (" ..." if leaked > 10 else ""), ""]
    lines += ["rows (by pair id):"]
    for key, c in d["configs"].items():
        lines.append(f"  {key:<24} +{c['added']:<6} -{c['removed']:<6} ~{c['changed']}")
    for col, sides in d["counts"].items():
        keys = sorted(set(sides["old"]) | set(sides["new"]))
        changed = [k for k in keys if sides["old"].get(k) != sides["new"].get(k)]
        if changed:
            lines.append(f"\n{col} (old -> new):")
            lines += [f"  {k:<40} {sides['old'].get(k, 0):>8} -> {sides['new'].get(k, 0)}" for k in changed]
    if d["manifest"]:
        lines.append("\nmanifest differences:")
        lines += [f"  {k}: {json.dumps(v['old'])} -> {json.dumps(v['new'])}" for k, v in d["manifest"].items()]
    return "\n".join(lines)
