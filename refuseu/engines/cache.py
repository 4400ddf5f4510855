"""The item cache of model stages: SQLite (WAL), one row per (engine signature, source
language, target language, text hash).

Duplicates are computed once, a crash loses at most the batch in flight (each batch is
committed as it finishes), and a rebuild reuses every finished item.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from pathlib import Path

from refuseu.pipeline.runner import signature_of


def text_hash(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


class ItemCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._conn() as c:
            c.execute("CREATE TABLE IF NOT EXISTS items (engine TEXT NOT NULL, src TEXT NOT NULL, "
                      "tgt TEXT NOT NULL, hash TEXT NOT NULL, output TEXT, "
                      "PRIMARY KEY (engine, src, tgt, hash)) WITHOUT ROWID")

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=60)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def get_many(self, engine: str, src: str, tgt: str, hashes: list[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        conn = self._conn()
        for i in range(0, len(hashes), 500):
            chunk = hashes[i:i + 500]
            q = ",".join("?" * len(chunk))
            for h, o in conn.execute(f"SELECT hash, output FROM items WHERE engine=? AND src=? AND tgt=? "
                                     f"AND hash IN ({q})", (engine, src, tgt, *chunk)):
                out[h] = o
        return out

    def put_many(self, engine: str, src: str, tgt: str, items: list[tuple[str, str]]) -> None:
        conn = self._conn()
        with conn:
            conn.executemany("INSERT OR REPLACE INTO items VALUES (?, ?, ?, ?, ?)",
                             [(engine, src, tgt, h, o) for h, o in items])

    def count(self) -> int:
        return self._conn().execute("SELECT COUNT(*) FROM items").fetchone()[0]


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
        for i in range(0, len(todo), self.chunk):
            part = todo[i:i + self.chunk]
            outs = self.engine.translate([t for t, _ in part], src=src, tgt=tgt)
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
        for i in range(0, len(todo), self.chunk):
            part = todo[i:i + self.chunk]
            outs = self.engine.generate([p for p, _ in part], system=system)
            self.computed += len(part)
            pairs = [(h, o) for (_, h), o in zip(part, outs)]
            if self.cache:
                self.cache.put_many(key, lang, role, pairs)
            done.update(pairs)
            if progress is not None:
                progress.update(len(part))
        by_prompt = {p: done[h] for p, h in zip(unique, hashes)}
        return [by_prompt[p] for p in prompts]
