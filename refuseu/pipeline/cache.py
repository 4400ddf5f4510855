"""The stage cache: one checksummed entry per (stage, signature) under ``<build>/stages/``.

An entry is a folder ``<nn>-<stage>/<signature>/`` with

- ``kept-<k>.arrow``, one per chunk ``k`` of the stage's output: the columns the stage
  added or changed in that chunk (Arrow IPC, zstd). A column equal to the same column of
  the stage's input chunk is not copied: the entry refers to the entry whose chunk file
  holds it, together with that file's checksum, so a reference never resolves to other
  bytes. (Chunk ``k`` of a stage's output is made from chunk ``k`` of its input.)
- ``rejected.arrow``: the stage's rejected rows.
- ``meta.json``: funnel, stats, per chunk its row count, column map and the size and
  xxh3-128 checksum of its file; it carries a checksum of its own content and is written last.

Entries are written into ``stages/.partial/`` chunk by chunk and renamed into place, so an
entry is whole or absent. Loading verifies every checksum: a damaged or unreadable entry
raises :class:`CacheDamaged`, and the runner recomputes it. Nothing read from the cache is
used before its checksum matched.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import polars as pl
import xxhash

from refuseu.faults import checkpoint
from refuseu.stages.base import Chunks

FORMAT = 3  # 3: kept rows in chunk files
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
    """Where a column of one chunk lives: an entry (relative to ``stages/``), whose chunk file
    of the same index holds it, and that file's checksum."""

    entry: str
    checksum: str


def chunk_file(k: int) -> str:
    return f"kept-{k:05d}.arrow"


@dataclass
class Entry:
    """A verified entry: its meta and rejected rows; kept rows are read chunk by chunk."""

    path: Path
    meta: dict
    rejected: pl.DataFrame

    @property
    def n_chunks(self) -> int:
        return len(self.meta["chunks"])

    @property
    def rows(self) -> int:
        return self.meta["rows"]

    @property
    def column_names(self) -> list[str]:
        return list(self.meta["column_names"])

    def refs(self, k: int) -> dict[str, ColumnRef]:
        """Where each column of chunk ``k`` lives."""
        return {c: ColumnRef(e, h) for c, e, h in self.meta["chunks"][k]["columns"]}


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

    def verify_chunks(self, entry: Entry) -> None:
        """Check every chunk file the entry's rows are read from (its own and the ones its
        references name) against its checksum, without keeping the bytes."""
        own = self.rel(entry.path)
        for k, chunk in enumerate(entry.meta["chunks"]):
            seen = set()
            for _, where, checksum in chunk["columns"]:
                seen.add((where, checksum))
            seen.add((own, chunk["file"]["xxh3_128"]))
            for where, checksum in sorted(seen):
                size = chunk["file"]["bytes"] if where == own else None
                path = self.root / where / chunk_file(k)
                try:
                    digest, n = _file_digest(path)
                except OSError as e:
                    raise CacheDamaged(f"{path.name} unreadable ({e.strerror or type(e).__name__})",
                                       entry=where) from None
                if digest != checksum or (size is not None and n != size):
                    raise CacheDamaged(f"{path.name} does not match its checksum", entry=where)

    def load_chunk(self, entry: Entry, k: int, columns: list[str] | None = None) -> pl.DataFrame:
        """Chunk ``k`` of the entry's kept rows (only ``columns`` when given), resolving
        column references to earlier entries."""
        chunk = entry.meta["chunks"][k]
        refs = entry.refs(k)
        wanted = [c for c in (columns if columns is not None else list(refs)) if c in refs]
        by_entry: dict[str, list[str]] = {}
        for col in wanted:
            by_entry.setdefault(refs[col].entry, []).append(col)
        own = self.rel(entry.path)
        parts: dict[str, pl.Series] = {}
        for where, cols in by_entry.items():
            size = chunk["file"]["bytes"] if where == own else None
            data = self._read_verified(self.root / where / chunk_file(k), refs[cols[0]].checksum, size, entry=where)
            df = self._ipc(data, chunk_file(k), columns=cols, entry=where)
            parts.update({c: df.get_column(c) for c in cols})
        if any(s.len() != chunk["rows"] for s in parts.values()):
            raise CacheDamaged("kept columns have different row counts")
        if not parts:
            return pl.DataFrame()
        return pl.DataFrame([parts[c] for c in wanted])

    # --- writing ------------------------------------------------------------------------
    def open(self, path: Path, *, stage: str, signature: str) -> "EntryWriter":
        """A writer that adds the entry's chunks one by one into ``.partial/``; ``finish``
        renames it into place (whole or not at all)."""
        return EntryWriter(self, path, stage=stage, signature=signature)


class EntryChunks(Chunks):
    """A cache entry's kept rows as a stage's input: read (and verified) one chunk at a time."""

    def __init__(self, cache: StageCache, entry: Entry):
        self.cache, self.entry = cache, entry

    def __iter__(self) -> Iterator[pl.DataFrame]:
        for k in range(self.entry.n_chunks):
            yield self.cache.load_chunk(self.entry, k)

    def select(self, columns: Iterable[str]) -> Iterator[pl.DataFrame]:
        cols = list(columns)
        for k in range(self.entry.n_chunks):
            yield self.cache.load_chunk(self.entry, k, cols)

    def refs(self, k: int) -> dict[str, ColumnRef]:
        return self.entry.refs(k)

    @property
    def columns(self) -> list[str]:
        return self.entry.column_names

    @property
    def height(self) -> int:
        return self.entry.rows

    def __len__(self) -> int:
        return self.entry.n_chunks


class EntryWriter:
    def __init__(self, cache: StageCache, path: Path, *, stage: str, signature: str):
        self.cache, self.path, self.stage, self.signature = cache, path, stage, signature
        self.tmp = cache.root / ".partial" / f"{path.parent.name}-{path.name}-{os.getpid()}"
        remove_path(self.tmp)
        self.tmp.mkdir(parents=True)
        self.own = cache.rel(path)
        self.chunks: list[dict] = []
        self.column_names: list[str] | None = None

    def add(self, kept: pl.DataFrame, *, upstream: pl.DataFrame | None = None,
            upstream_refs: dict[str, ColumnRef] | None = None) -> dict[str, ColumnRef]:
        """Write the next chunk; columns equal to ``upstream``'s (the input chunk it was made
        from, whose columns live where ``upstream_refs`` says) are referenced, not copied.
        Returns where each column of the chunk lives."""
        k = len(self.chunks)
        if self.column_names is None:
            self.column_names = list(kept.columns)
        elif list(kept.columns) != self.column_names:
            raise ValueError(f"stage {self.stage}: chunk {k} has columns {kept.columns}, "
                             f"the first chunk {self.column_names}")
        refs_up = upstream_refs or {}
        stored, columns = [], []
        for col in kept.columns:
            if (upstream is not None and col in refs_up and upstream.height == kept.height
                    and kept.get_column(col).equals(upstream.get_column(col), check_dtypes=True, check_names=True)):
                columns.append((col, refs_up[col].entry, refs_up[col].checksum))
            else:
                stored.append(col)
                columns.append((col, self.own, None))
        buf = io.BytesIO()
        kept.select(stored).write_ipc(buf, compression=COMPRESSION)
        data = buf.getvalue()
        (self.tmp / chunk_file(k)).write_bytes(data)
        checkpoint(f"cache:{self.stage}:kept.arrow")
        info = {"bytes": len(data), "xxh3_128": file_checksum(data)}
        columns = [(c, e, h if h is not None else info["xxh3_128"]) for c, e, h in columns]
        self.chunks.append({"rows": kept.height, "file": info, "columns": columns})
        return {c: ColumnRef(e, h) for c, e, h in columns}

    def finish(self, *, rejected: pl.DataFrame, funnel: dict, stats: dict) -> Entry:
        buf = io.BytesIO()
        rejected.write_ipc(buf, compression=COMPRESSION)
        data = buf.getvalue()
        (self.tmp / "rejected.arrow").write_bytes(data)
        checkpoint(f"cache:{self.stage}:rejected.arrow")
        files = {"rejected.arrow": {"bytes": len(data), "xxh3_128": file_checksum(data)}}
        meta = {"format": FORMAT, "stage": self.stage, "signature": self.signature,
                "rows": sum(c["rows"] for c in self.chunks), "column_names": self.column_names or [],
                "chunks": self.chunks, "files": files, "funnel": funnel, "stats": stats}
        meta["check"] = _meta_checksum(meta)
        (self.tmp / "meta.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False), encoding="utf-8")
        checkpoint(f"cache:{self.stage}:meta.json")
        remove_path(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.tmp, self.path)
        return Entry(path=self.path, meta=meta, rejected=rejected)

    def abort(self) -> None:
        remove_path(self.tmp)


def _file_digest(path: Path) -> tuple[str, int]:
    h = xxhash.xxh3_128()
    n = 0
    with path.open("rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
            n += len(block)
    return h.hexdigest(), n


def _check_meta_shape(meta: dict) -> None:
    """A meta.json whose checksum matches was still written by some version of this code;
    everything the runner reads from it must be there, with the right types."""
    def need(ok) -> None:
        if not ok:
            raise CacheDamaged("meta.json is incomplete")

    try:
        files = meta["files"]
        need(isinstance(files["rejected.arrow"]["bytes"], int) and isinstance(files["rejected.arrow"]["xxh3_128"], str))
        need(isinstance(meta["rows"], int) and isinstance(meta.get("stats", {}), dict))
        need(all(isinstance(c, str) for c in meta["column_names"]))
        for chunk in meta["chunks"]:
            need(isinstance(chunk["rows"], int) and isinstance(chunk["file"]["bytes"], int)
                 and isinstance(chunk["file"]["xxh3_128"], str))
            need([c[0] for c in chunk["columns"]] == meta["column_names"])
            for col in chunk["columns"]:
                need(len(col) == 3 and all(isinstance(x, str) for x in col))
        need(sum(c["rows"] for c in meta["chunks"]) == meta["rows"])
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
