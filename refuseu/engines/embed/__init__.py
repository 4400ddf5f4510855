"""Sentence embeddings for semantic near-duplicate grouping (``dedup.semantic``).

An embedder has ``settings()`` (what decides its vectors: model id and revision) and
``embed(texts) -> float32 array`` of unit-length rows. :class:`CachedEmbedder` puts the item
cache in front of it, so a rebuild embeds only texts it has not seen.
"""

from __future__ import annotations

import base64

import numpy as np

from refuseu.engines.cache import ItemCache, text_hash
from refuseu.signatures import signature_of

#: Item cache "languages" of embeddings: English prompts, embedding vectors.
_SRC, _TGT = "en", "embedding"


def load_embedder(cfg):
    """The embedder of a ``dedup.semantic`` section (sentence-transformers)."""
    from refuseu.engines.embed.st_embedder import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(cfg.model, revision=cfg.revision, device=cfg.device,
                                       batch_size=cfg.batch_size)


class CachedEmbedder:
    """Unique texts only, cache first, the rest in committed chunks."""

    def __init__(self, engine, cache: ItemCache | None, *, chunk: int = 1024):
        self.engine = engine
        self.cache = cache
        self.chunk = chunk
        self.computed = 0  # texts the engine embedded (not from cache) in this process

    def embed(self, texts: list[str]) -> np.ndarray:
        unique = list(dict.fromkeys(texts))
        hashes = [text_hash(t) for t in unique]
        key = signature_of({"embedder": self.engine.settings()})
        done: dict[str, np.ndarray] = {}
        if self.cache:
            for h, blob in self.cache.get_many(key, _SRC, _TGT, hashes).items():
                done[h] = np.frombuffer(base64.b64decode(blob), dtype=np.float32)
        todo = [(t, h) for t, h in zip(unique, hashes) if h not in done]
        for i in range(0, len(todo), self.chunk):
            part = todo[i:i + self.chunk]
            vecs = np.asarray(self.engine.embed([t for t, _ in part]), dtype=np.float32)
            self.computed += len(part)
            if self.cache:
                self.cache.put_many(key, _SRC, _TGT, [(h, base64.b64encode(v.tobytes()).decode("ascii"))
                                                      for (_, h), v in zip(part, vecs)])
            done.update((h, v) for (_, h), v in zip(part, vecs))
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        by_text = {t: done[h] for t, h in zip(unique, hashes)}
        return np.stack([by_text[t] for t in texts])


def similar_pairs(emb: np.ndarray, strata: np.ndarray, threshold: float, *, cells: int = 1 << 24) -> np.ndarray:
    """(i, j) row pairs, i < j, of one stratum whose embeddings' cosine is >= ``threshold``
    (rows of ``emb`` are unit length). Similarities are computed in blocks of about
    ``cells`` values, so memory stays flat however large a stratum is."""
    out = []
    for s in np.unique(strata):
        idx = np.flatnonzero(strata == s)
        e = emb[idx]
        chunk = max(1, cells // len(idx))
        for lo in range(0, len(idx), chunk):
            sims = e[lo:lo + chunk] @ e.T
            i, j = np.nonzero(sims >= threshold)
            i = i + lo
            keep = j > i
            out.append(np.stack([idx[i[keep]], idx[j[keep]]], axis=1))
    return np.concatenate(out) if out else np.zeros((0, 2), dtype=np.int64)
