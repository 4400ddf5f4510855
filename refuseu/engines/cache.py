"""The item cache of model stages: SQLite (WAL), one row per (engine signature, source
language, target language, text hash).

Duplicates are computed once, a crash loses at most the batch in flight (each batch is
committed as it finishes), and a rebuild reuses every finished item. The missing items are
computed by the active executor (:mod:`refuseu.executors`: in this process, or on Ray).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import sys
import threading
import time
from pathlib import Path

import xxhash

from refuseu import executors
from refuseu.errors import BuildError
from refuseu.executors import EngineCall
from refuseu.signatures import signature_of


def text_hash(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


class ItemCache:
    """Opened on first use, so a build that computes no items never touches the file.

    Each output is stored with a checksum and checked when read: a damaged item is
    recomputed, never used. A file SQLite cannot use (not a database, truncated, a folder)
    is moved aside to ``items.sqlite.corrupt-<time>`` with a warning, and the build goes on
    with an empty cache.
    """

    def __init__(self, path: str | Path, *, warn=None):
        self.path = Path(path)
        self._warn = warn or _warn_stderr
        self._local = threading.local()
        self._lock = threading.Lock()
        self._generation = 0  # bumped when the file is moved aside: threads reconnect

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "generation", -1) == self._generation:
            return conn
        with self._lock:
            try:
                conn = self._open()
            except sqlite3.DatabaseError as e:
                if not _is_corruption(e):
                    raise _unusable(self.path, e) from None
                self._set_aside(e)
                conn = self._open()
        self._local.conn, self._local.generation = conn, self._generation
        return conn

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and not self.path.is_file():
            raise NotAFileError(f"{self.path.name} is not a file")
        conn = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("CREATE TABLE IF NOT EXISTS items2 (engine TEXT NOT NULL, src TEXT NOT NULL, "
                         "tgt TEXT NOT NULL, hash TEXT NOT NULL, output TEXT, checksum TEXT NOT NULL, "
                         "PRIMARY KEY (engine, src, tgt, hash)) WITHOUT ROWID")
            conn.execute("SELECT COUNT(*) FROM items2").fetchone()
        except sqlite3.DatabaseError:
            conn.close()
            raise
        return conn

    def _set_aside(self, err: Exception) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{os.getpid()}")
        n = 1
        while target.exists():  # never replace an earlier copy
            n += 1
            target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{os.getpid()}-{n}")
        old = getattr(self._local, "conn", None)
        if old is not None:
            try:
                old.close()
            except sqlite3.Error:
                pass
        self._local.conn = None
        if self.path.exists():
            os.replace(self.path, target)
        for suffix in ("-wal", "-shm"):
            side = self.path.with_name(self.path.name + suffix)
            if side.exists():
                os.replace(side, target.with_name(target.name + suffix))
        self._generation += 1
        self._warn(f"item cache {self.path} is damaged ({err}); moved aside to {target.name}, "
                   "continuing with an empty cache")

    def _retry(self, fn):
        """Run ``fn(conn)``; on a damaged database, set the file aside and run it once more."""
        try:
            return fn(self._conn())
        except sqlite3.DatabaseError as e:
            if not _is_corruption(e):
                raise _unusable(self.path, e) from None
            with self._lock:
                self._set_aside(e)
            try:
                return fn(self._conn())
            except sqlite3.DatabaseError as e2:
                raise _unusable(self.path, e2) from None

    def get_many(self, engine: str, src: str, tgt: str, hashes: list[str]) -> dict[str, str]:
        def run(conn):
            out: dict[str, str] = {}
            bad: list[str] = []
            for i in range(0, len(hashes), 500):
                chunk = hashes[i:i + 500]
                q = ",".join("?" * len(chunk))
                for h, o, c in conn.execute(f"SELECT hash, output, checksum FROM items2 WHERE engine=? AND src=? "
                                            f"AND tgt=? AND hash IN ({q})", (engine, src, tgt, *chunk)):
                    if c == _item_checksum(engine, src, tgt, h, o):
                        out[h] = o
                    else:
                        bad.append(h)
            if bad:
                self._warn(f"item cache {self.path.name}: {len(bad)} damaged item(s) will be recomputed")
            return out

        return self._retry(run)

    def put_many(self, engine: str, src: str, tgt: str, items: list[tuple[str, str]]) -> None:
        rows = [(engine, src, tgt, h, o, _item_checksum(engine, src, tgt, h, o)) for h, o in items]

        def run(conn):
            with conn:
                conn.executemany("INSERT OR REPLACE INTO items2 VALUES (?, ?, ?, ?, ?, ?)", rows)

        self._retry(run)

    def count(self) -> int:
        return self._retry(lambda conn: conn.execute("SELECT COUNT(*) FROM items2").fetchone()[0])


class NotAFileError(sqlite3.DatabaseError):
    """The cache path exists but is a folder or another non-file: unusable, set aside."""


# SQLite's own words for a file that is not (or no longer) a database. Anything else (disk
# full, I/O error, permissions, locked) leaves the file alone and stops the build.
_CORRUPT = {"SQLITE_CORRUPT", "SQLITE_NOTADB"}


def _is_corruption(err: sqlite3.DatabaseError) -> bool:
    if isinstance(err, NotAFileError):
        return True
    name = getattr(err, "sqlite_errorname", "") or ""
    return any(name == base or name.startswith(base + "_") for base in _CORRUPT)


def _unusable(path: Path, err: sqlite3.DatabaseError) -> BuildError:
    name = getattr(err, "sqlite_errorname", None)
    return BuildError(f"the item cache {path} cannot be used: {err}" + (f" ({name})" if name else ""),
                      hint="free disk space or fix the folder's permissions and run again; the cache "
                           "itself was left as it is")


def _item_checksum(engine: str, src: str, tgt: str, key: str, output: str | None) -> str:
    # The whole key is covered: an item moved to another engine or language pair is damage too.
    blob = "\x1f".join((engine, src, tgt, key, "" if output is None else "\x00" + output))
    return xxhash.xxh3_64_hexdigest(blob.encode("utf-8", "surrogatepass"))


def _warn_stderr(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _translate(engine, texts: list[str], *, src: str, tgt: str) -> list[str | None]:
    return engine.translate(texts, src=src, tgt=tgt)


def _load_translator(engine, *, src: str, tgt: str) -> None:
    if hasattr(engine, "load") and hasattr(engine, "model_for"):
        engine.load(engine.model_for(tgt, src))


def _generate(engine, prompts: list[str], *, system: str | None) -> list[str]:
    return engine.generate(prompts, system=system)


def _load_generator(engine, *, system: str | None) -> None:
    if hasattr(engine, "load"):
        engine.load()


# What an executor runs on each chunk of missing items (module-level: a Ray worker imports them).
TRANSLATE = EngineCall(run=_translate, load=_load_translator)
GENERATE = EngineCall(run=_generate, load=_load_generator)


class CachedTranslator:
    """Wraps an engine: unique texts only, cache first, the rest in committed chunks."""

    def __init__(self, engine, cache: ItemCache | None, *, chunk: int = 256):
        self.engine = engine
        self.cache = cache
        self.chunk = chunk
        self.computed = 0  # items the engine translated (not from cache) in this process
        self._keys: dict[tuple[str, str], str] = {}

    def key(self, src: str, tgt: str) -> str:
        """Cache key of the engine for one language pair: its settings and, where the
        engine has one model per pair, that model's id and revision."""
        if (src, tgt) not in self._keys:
            e = self.engine
            parts = {"settings": e.settings() if hasattr(e, "settings") else e.signature()}
            if hasattr(e, "item_key"):
                parts["pair"] = e.item_key(src, tgt)
            self._keys[(src, tgt)] = signature_of(parts)
        return self._keys[(src, tgt)]

    @property
    def name(self) -> str:
        return self.engine.name

    def signature(self) -> dict:
        return self.engine.signature()

    def covers(self, lang: str) -> bool:
        return self.engine.covers(lang)

    def translate(self, texts: list[str], *, src: str, tgt: str, progress=None) -> list[str | None]:
        unique = list(dict.fromkeys(texts))
        hashes = [text_hash(t) for t in unique]
        key = self.key(src, tgt)
        done = self.cache.get_many(key, src, tgt, hashes) if self.cache else {}
        if progress is not None and done:
            progress.update(len(done))
        todo = [(t, h) for t, h in zip(unique, hashes) if h not in done]
        for i, outs in executors.current().map_chunks(self.engine, [t for t, _ in todo], call=TRANSLATE,
                                                      chunk=self.chunk, src=src, tgt=tgt):
            part = todo[i:i + len(outs)]
            self.computed += len(part)
            pairs = [(h, o) for (_, h), o in zip(part, outs)]
            if self.cache:
                self.cache.put_many(key, src, tgt, [(h, o) for h, o in pairs if o is not None])
            done.update(pairs)
            if progress is not None:
                progress.update(len(part))
        by_text = {t: done.get(h) for t, h in zip(unique, hashes)}
        return [by_text[t] for t in texts]


class CachedGenerator:
    """Wraps a generator: unique prompts only, cache first (keyed by the engine's settings,
    the system prompt, the language and the role), the rest in committed chunks."""

    def __init__(self, engine, cache: ItemCache | None, *, chunk: int = 64):
        self.engine = engine
        self.cache = cache
        self.chunk = chunk
        self.computed = 0

    def signature(self) -> dict:
        return self.engine.settings()

    def generate(self, prompts: list[str], *, lang: str, role: str, system: str | None,
                 progress=None) -> list[str]:
        key = signature_of({"settings": self.engine.settings(), "system": system})
        unique = list(dict.fromkeys(prompts))
        hashes = [text_hash(p) for p in unique]
        done = self.cache.get_many(key, lang, role, hashes) if self.cache else {}
        todo = [(p, h) for p, h in zip(unique, hashes) if h not in done]
        if progress is not None and done:
            progress.update(len(done))
        for i, outs in executors.current().map_chunks(self.engine, [p for p, _ in todo], call=GENERATE,
                                                      chunk=self.chunk, system=system):
            part = todo[i:i + len(outs)]
            self.computed += len(part)
            pairs = [(h, o) for (_, h), o in zip(part, outs)]
            if self.cache:
                self.cache.put_many(key, lang, role, pairs)
            done.update(pairs)
            if progress is not None:
                progress.update(len(part))
        by_prompt = {p: done[h] for p, h in zip(unique, hashes)}
        return [by_prompt[p] for p in prompts]
