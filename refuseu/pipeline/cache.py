"""The stage cache: one checksummed entry per (stage, signature) under ``<build>/stages/``.

An entry is a folder ``<nn>-<stage>/<signature>/`` with

- ``kept.arrow``: the columns of the stage's output that the stage added or changed
  (Arrow IPC, zstd). A column equal to the same column of the stage's input is not
  copied: the entry refers to the entry that holds it, together with the checksum of
  that entry's file, so a reference never resolves to other bytes.
- ``rejected.arrow``: the stage's rejected rows.
- ``meta.json``: funnel, stats, the column map and the size and xxh3-128 checksum of each
  file; it carries a checksum of its own content and is written last.

Entries are written into ``stages/.partial/`` and renamed into place, so an entry is whole
or absent. Loading verifies every checksum: a damaged or unreadable entry raises
:class:`CacheDamaged`, and the runner recomputes it. Nothing read from the cache is used
before its checksum matched.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import xxhash

from refuseu.faults import checkpoint

FORMAT = 2
COMPRESSION = "zstd"


class CacheDamaged(Exception):
    """A cache entry that cannot be trusted: missing, unreadable or failing its checksum.
    ``entry`` names the damaged entry (relative to ``stages/``) when it is not the one read."""

    def __init__(self, message: str, *, entry: str | None = None):
        super().__init__(message)
        self.entry = entry


def file_checksum(data: bytes) -> str:
    return xxhash.xxh3_128_hexdigest(data)


def _meta_checksum(meta: dict) -> str:
    body = {k: v for k, v in meta.items() if k != "check"}
    return file_checksum(json.dumps(body, sort_keys=True, ensure_ascii=False).encode("utf-8"))


@dataclass(frozen=True)
class ColumnRef:
    """Where a column's bytes live: an entry (relative to ``stages/``) and that file's checksum."""

    entry: str
    checksum: str


@dataclass
class Entry:
    """A verified entry: its meta and rejected rows; kept rows are loaded on demand."""

    path: Path
    meta: dict
    rejected: pl.DataFrame

    @property
    def columns(self) -> dict[str, ColumnRef]:
        return {c: ColumnRef(e, h) for c, e, h in self.meta["columns"]}


class StageCache:
    def __init__(self, build_dir: str | Path):
        self.root = Path(build_dir) / "stages"

    def entry_dir(self, index: int, stage: str, signature: str) -> Path:
        return self.root / f"{index:02d}-{stage}" / signature

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    # --- housekeeping -------------------------------------------------------------------
    def remove_leftovers(self) -> int:
        """Remove partial entries of interrupted builds (``.partial/*-<pid>``) whose process
        is gone; returns how many were removed."""
        partial = self.root / ".partial"
        if not partial.is_dir():
            return 0
        n = 0
        for p in partial.iterdir():
            pid = p.name.rsplit("-", 1)[-1]
            if pid.isdigit() and int(pid) != os.getpid() and pid_alive(int(pid)):
                continue
            remove_path(p)
            n += 1
        return n

    def discard(self, path: Path) -> None:
        remove_path(path)

    # --- reading ------------------------------------------------------------------------
    @staticmethod
    def _read_verified(path: Path, checksum: str, size: int | None = None, *, entry: str | None = None) -> bytes:
        """The file's bytes, once they match ``checksum`` (and ``size`` when given)."""
        try:
            data = path.read_bytes()
        except OSError as e:
            raise CacheDamaged(f"{path.name} unreadable ({e.strerror or type(e).__name__})", entry=entry) from None
        if (size is not None and len(data) != size) or file_checksum(data) != checksum:
            raise CacheDamaged(f"{path.name} does not match its checksum", entry=entry)
        return data

    @staticmethod
    def _ipc(data: bytes, name: str, *, columns: list[str] | None = None, entry: str | None = None) -> pl.DataFrame:
        try:
            return pl.read_ipc(io.BytesIO(data), columns=columns)
        except Exception as e:  # checksum matched but the bytes are not Arrow: written by a bug
            raise CacheDamaged(f"{name} unreadable ({type(e).__name__})", entry=entry) from None

    def load(self, path: Path, *, stage: str, signature: str) -> Entry:
        """The entry at ``path`` with its meta and rejected rows verified."""
        try:
            meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CacheDamaged("meta.json missing") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CacheDamaged(f"meta.json unreadable ({type(e).__name__})") from None
        if not isinstance(meta, dict) or meta.get("check") != _meta_checksum(meta):
            raise CacheDamaged("meta.json does not match its checksum")
        if meta.get("format") != FORMAT or meta.get("stage") != stage or meta.get("signature") != signature:
            raise CacheDamaged("meta.json belongs to another stage, signature or cache format")
        _check_meta_shape(meta)
        info = meta["files"]["rejected.arrow"]
        data = self._read_verified(path / "rejected.arrow", info["xxh3_128"], info["bytes"])
        return Entry(path=path, meta=meta, rejected=self._ipc(data, "rejected.arrow"))

    def load_kept(self, entry: Entry) -> pl.DataFrame:
        """The entry's kept rows, resolving column references to earlier entries."""
        by_entry: dict[str, list[str]] = {}
        refs = entry.columns
        for col, ref in refs.items():
            by_entry.setdefault(ref.entry, []).append(col)
        own = self.rel(entry.path)
        by_entry.setdefault(own, [])  # checked even when every column is a reference
        parts: dict[str, pl.Series] = {}
        own_info = entry.meta["files"]["kept.arrow"]
        for where, cols in by_entry.items():
            checksum, size = ((own_info["xxh3_128"], own_info["bytes"]) if where == own
                              else (refs[cols[0]].checksum, None))
            data = self._read_verified(self.root / where / "kept.arrow", checksum, size, entry=where)
            if cols:
                df = self._ipc(data, "kept.arrow", columns=cols, entry=where)
                parts.update({c: df.get_column(c) for c in cols})
        heights = {s.len() for s in parts.values()}
        if len(heights) > 1 or (heights and heights.pop() != entry.meta["rows"]):
            raise CacheDamaged("kept columns have different row counts")
        if not parts:
            return pl.DataFrame()
        return pl.DataFrame([parts[c] for c in refs])

    # --- writing ------------------------------------------------------------------------
    def write(self, path: Path, *, stage: str, signature: str, kept: pl.DataFrame, rejected: pl.DataFrame,
              funnel: dict, stats: dict, upstream: pl.DataFrame | None,
              upstream_columns: dict[str, ColumnRef] | None) -> dict[str, ColumnRef]:
        """Write an entry (whole or not at all); returns where each kept column lives."""
        tmp = self.root / ".partial" / f"{path.parent.name}-{path.name}-{os.getpid()}"
        remove_path(tmp)
        tmp.mkdir(parents=True)
        own = self.rel(path)
        # Columns equal to the input's are referenced, not copied.
        refs_up = upstream_columns or {}
        stored, columns = [], []
        for col in kept.columns:
            if (upstream is not None and col in refs_up and upstream.height == kept.height
                    and kept.get_column(col).equals(upstream.get_column(col), check_dtypes=True, check_names=True)):
                columns.append((col, refs_up[col].entry, refs_up[col].checksum))
            else:
                stored.append(col)
                columns.append((col, own, None))
        files = {}
        for name, df in (("kept.arrow", kept.select(stored)), ("rejected.arrow", rejected)):
            buf = io.BytesIO()
            df.write_ipc(buf, compression=COMPRESSION)
            data = buf.getvalue()
            (tmp / name).write_bytes(data)
            files[name] = {"bytes": len(data), "xxh3_128": file_checksum(data)}
            checkpoint(f"cache:{stage}:{name}")
        own_sum = files["kept.arrow"]["xxh3_128"]
        columns = [(c, e, h if h is not None else own_sum) for c, e, h in columns]
        meta = {"format": FORMAT, "stage": stage, "signature": signature, "rows": kept.height,
                "columns": columns, "files": files, "funnel": funnel, "stats": stats}
        meta["check"] = _meta_checksum(meta)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False), encoding="utf-8")
        checkpoint(f"cache:{stage}:meta.json")
        remove_path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, path)
        return {c: ColumnRef(e, h) for c, e, h in columns}


def _check_meta_shape(meta: dict) -> None:
    """A meta.json whose checksum matches was still written by some version of this code;
    everything the runner reads from it must be there, with the right types."""
    def need(ok) -> None:
        if not ok:
            raise CacheDamaged("meta.json is incomplete")

    try:
        files = meta["files"]
        for name in ("kept.arrow", "rejected.arrow"):
            need(isinstance(files[name]["bytes"], int) and isinstance(files[name]["xxh3_128"], str))
        need(isinstance(meta["rows"], int) and isinstance(meta.get("stats", {}), dict))
        for col in meta["columns"]:
            need(len(col) == 3 and all(isinstance(x, str) for x in col))
        for counts in meta["funnel"].values():
            need(all(isinstance(counts[k], int) for k in ("in", "kept", "rejected")))
            need(isinstance(counts["reasons"], dict))
    except (KeyError, TypeError, AttributeError):
        raise CacheDamaged("meta.json is incomplete") from None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_path(path: Path) -> None:
    """Remove a file or folder if it is there (never following a symlink into a folder)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        try:
            path.unlink()
        except OSError:
            pass
