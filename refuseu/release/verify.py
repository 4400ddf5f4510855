"""``verify``: a release is valid only when its files are exactly what its manifest lists.

Every file of the folder must be listed in ``manifest.json`` with the same size and
sha256, every listed file must exist, the manifest must be complete, and the row counts of
the Parquet files must add up to the manifest's counts per config and split. The build's
up-to-date check, ``inspect``, ``diff``, ``push`` and ``refuseu verify`` all use
:func:`verify_release`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from refuseu.errors import InputError, ReleaseDamagedError
from refuseu.release.manifest import content_checksum, manifest_type_problem, sha256_file
from refuseu.stages.base import REJECT_SCHEMA

REQUIRED_KEYS = ("name", "version", "build_signature", "files", "counts", "languages", "content_sha256")


@dataclass
class Verification:
    release: str
    manifest_error: str | None = None
    missing: list[str] = field(default_factory=list)     # listed, not on disk
    extra: list[str] = field(default_factory=list)       # on disk, not listed
    changed: list[str] = field(default_factory=list)     # size or sha256 differ
    counts: list[str] = field(default_factory=list)      # row counts that disagree
    columns: list[str] = field(default_factory=list)     # files without the columns readers need
    manifest: dict | None = None
    files: dict[str, dict] = field(default_factory=dict)  # rel -> {"bytes", "sha256"} as on disk

    @property
    def ok(self) -> bool:
        return not (self.manifest_error or self.missing or self.extra or self.changed or self.counts
                    or self.columns)

    def problems(self) -> list[str]:
        out = []
        if self.manifest_error:
            out.append(f"manifest.json: {self.manifest_error}")
        out += [f"missing: {p}" for p in self.missing]
        out += [f"extra: {p}" for p in self.extra]
        out += [f"changed: {p}" for p in self.changed]
        out += [f"row count: {c}" for c in self.counts]
        out += [f"columns: {c}" for c in self.columns]
        return out

    def to_dict(self) -> dict:
        return {"release": self.release, "valid": self.ok, "manifest_error": self.manifest_error,
                "missing": self.missing, "extra": self.extra, "changed": self.changed,
                "row_counts": self.counts, "columns": self.columns}


def _load_manifest(root: Path) -> tuple[dict | None, str | None]:
    path = root / "manifest.json"
    if not path.is_file():
        return None, "missing"
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return None, f"unreadable ({type(e).__name__})"
    if not isinstance(m, dict):
        return None, "not a JSON object"
    absent = [k for k in REQUIRED_KEYS if k not in m]
    if absent:
        return None, f"incomplete (no {', '.join(absent)})"
    if m["content_sha256"] != content_checksum(m):
        return None, "edited or damaged (its content does not match its content_sha256)"
    files = m["files"]
    if not isinstance(files, dict) or not all(
            isinstance(v, dict) and isinstance(v.get("sha256"), str) and isinstance(v.get("bytes"), int)
            for v in files.values()):
        return None, "incomplete ('files' must map each path to its bytes and sha256)"
    wrong = manifest_type_problem(m)
    if wrong:
        return None, wrong
    return m, None


def require_release_folder(release: str | Path) -> Path:
    """``release`` as a path, or an :class:`InputError` (exit 2) when it is not a release at all:
    not found, a file, or a folder with neither ``manifest.json`` nor ``data/`` (an empty
    folder, the folder that holds releases). A release missing one of the two is damaged,
    which :func:`verify_release` reports."""
    root = Path(release)
    hint = "give a folder made by 'refuseu build' (releases/<name>-v<version>)"
    if not root.exists():
        raise InputError("not found", file=str(release), hint=hint)
    if not root.is_dir():
        raise InputError("not a release folder (a file, not a folder)", file=str(release), hint=hint)
    if not (root / "manifest.json").exists() and not (root / "data").exists():
        found = sorted(p.parent.name for p in root.glob("*/manifest.json"))
        if found:
            hint = f"it holds releases: give one of them, e.g. {root / found[0]}"
        raise InputError("not a release folder (no manifest.json or data/)", file=str(release), hint=hint)
    return root


#: Files a Hub snapshot of a release holds besides the release itself.
HUB_FILES = (".gitattributes",)


def verify_release(release: str | Path, *, hub_snapshot: bool = False) -> Verification:
    """Check a release folder by content; never raises for damage (see ``Verification.ok``).

    ``hub_snapshot``: the folder was downloaded from the Hub, which adds ``.gitattributes``."""
    root = Path(release)
    v = Verification(release=str(release))
    if not root.is_dir():
        v.manifest_error = "not a folder" if root.exists() else "release folder not found"
        return v
    if not (root / "manifest.json").exists() and not (root / "data").exists():
        v.manifest_error = "missing (not a release folder: no manifest.json or data/)"
        return v  # e.g. the folder that holds releases: none of its files is hashed
    manifest, err = _load_manifest(root)
    v.manifest, v.manifest_error = manifest, err
    skip = {"manifest.json", *(HUB_FILES if hub_snapshot else ())}
    on_disk = sorted(rel for rel in (p.relative_to(root).as_posix() for p in root.rglob("*")
                                     if p.is_symlink() or not p.is_dir())
                     if rel not in skip and not (hub_snapshot and rel.startswith(".cache/")))
    listed = manifest["files"] if manifest else {}
    for rel in on_disk:
        p = root / rel
        regular = p.is_file() and (hub_snapshot or not p.is_symlink())  # never open a FIFO or device
        if not regular:
            (v.changed if rel in listed else v.extra).append(rel)
            continue
        try:
            v.files[rel] = {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
        except OSError:
            v.changed.append(rel)
            continue
        if manifest is None:
            continue
        if rel not in listed:
            v.extra.append(rel)
        elif (listed[rel]["bytes"], listed[rel]["sha256"]) != (v.files[rel]["bytes"], v.files[rel]["sha256"]):
            v.changed.append(rel)
    v.missing = sorted(rel for rel in listed if rel not in v.files and rel not in v.changed)
    if manifest is not None and not (v.missing or v.changed):
        v.counts, v.columns = _check_counts(root, manifest)
    return v


#: Columns every data file holds, as text (the commands that read a release find rows by them).
DATA_TEXT_COLUMNS = ("pair_id", "prompt_id", "lang", "split", "kind")
#: Columns that are numbers where a data file has them.
DATA_NUMBER_COLUMNS = ("qe_score", "lid_score")
#: Columns of ``rejects.parquet``, as text.
REJECT_TEXT_COLUMNS = tuple(REJECT_SCHEMA)


def _schema_problem(schema, text: tuple[str, ...], numbers: tuple[str, ...] = ()) -> str | None:
    """What is wrong with a Parquet file's columns (a pyarrow schema), or None."""
    import pyarrow as pa

    names = set(schema.names)
    missing = [c for c in text if c not in names]
    if missing:
        return f"lacks the column{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
    for col in text:
        t = schema.field(col).type
        t = t.value_type if pa.types.is_dictionary(t) else t
        if not (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t)):
            return f"column {col} is {t}, not text"
    for col in numbers:
        if col in names:
            t = schema.field(col).type
            if not (pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_null(t)):
                return f"column {col} is {t}, not a number"
    return None


def _check_counts(root: Path, manifest: dict) -> tuple[list[str], list[str]]:
    """Row counts that disagree with the manifest, and files without the columns (and column
    types) that the commands reading a release find rows by."""
    import pyarrow.parquet as pq

    found: dict[str, int] = {}
    bad, columns = [], []
    for rel in manifest["files"]:
        if rel == "rejects.parquet":
            try:
                problem = _schema_problem(pq.read_schema(root / rel), REJECT_TEXT_COLUMNS)
            except Exception as e:  # noqa: BLE001 - sha256 matched, so the manifest listed a bad file
                problem = f"is not readable Parquet ({type(e).__name__})"
            if problem:
                columns.append(f"{rel} {problem}")
            continue
        if not (rel.startswith("data/") and rel.endswith(".parquet")):
            continue
        parts = rel.split("/")
        config, stem = parts[1], parts[-1].split("-")[0]
        split = "eval" if config == "evaluation" else stem
        try:
            meta = pq.ParquetFile(root / rel)
            n = meta.metadata.num_rows
            problem = _schema_problem(meta.schema_arrow, DATA_TEXT_COLUMNS, DATA_NUMBER_COLUMNS)
        except Exception as e:  # sha256 matched, so the manifest itself listed a bad file
            bad.append(f"{rel} is not readable Parquet ({type(e).__name__})")
            continue
        if problem:
            columns.append(f"{rel} {problem}")
        found[f"{config}/{split}"] = found.get(f"{config}/{split}", 0) + n
    counts = manifest.get("counts") or {}
    for key in sorted(set(found) | set(counts)):
        if found.get(key, 0) != counts.get(key, 0):
            bad.append(f"{key}: manifest says {counts.get(key, 0)}, files hold {found.get(key, 0)}")
    return bad, columns


def require_valid(release: str | Path, *, action: str, hub_snapshot: bool = False) -> Verification:
    """:func:`verify_release`, raising :class:`ReleaseDamagedError` (exit 1) when damaged."""
    v = verify_release(release, hub_snapshot=hub_snapshot)
    if not v.ok:
        problems = v.problems()
        shown = "; ".join(problems[:8]) + (f"; and {len(problems) - 8} more" if len(problems) > 8 else "")
        raise ReleaseDamagedError(
            f"release {release} is damaged, refusing to {action}: {shown}",
            hint="run `refuseu verify` on it for the full list; rebuild it with `refuseu build --repair` "
                 "(same recipe and version), or remove the folder and build again")
    return v
