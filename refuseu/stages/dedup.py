"""DedupStage: exact duplicates (rejected) and near-duplicates (MinHash LSH, grouped).

Near-duplicates are pairs of prompts whose lower-cased word k-shingles (``shingle_words``,
default 3) have a Jaccard similarity of at least ``threshold`` (default 0.8). Rows that end
up together share a ``group_id`` (the id of the group's first row): the connected
components of the confirmed pairs, so the split keeps them on one side.

How pairs are found, in three steps:

1. Shingles are hashed in bulk (numpy) and MinHash digests of ``bands * rows`` values
   (at most ``num_perm``) computed in rensa (Rust), a chunk of rows at a time. Each band of
   ``rows`` consecutive values is mixed into one 64-bit key per row; only the keys are
   kept (8 bytes per row and band, spilled to one file per band), not the digests.
2. Candidates, one band at a time: two rows are candidates when their keys of one band
   agree (all values of the band, but for a rare key collision, which step 3 drops), and
   every row of a band bucket is paired with the bucket's first row (in input order). A
   pair of Jaccard ``s`` becomes a candidate with probability (the S-curve)

       P(s) = 1 - (1 - s**rows) ** bands

   The banding is chosen for recall, not for a balance of errors: ``rows`` is the largest
   value for which ``P(threshold) >= 0.98`` with ``bands = num_perm // rows``
   (:func:`lsh_banding`). For the defaults (threshold 0.8, 128 values) that is 18 bands of
   7 rows (126 values used), whose S-curve crosses 0.5 at s = 0.63:

       s      0.5    0.6    0.7    0.8    0.9
       P(s)   0.13   0.40   0.79   0.986  1.000

3. Every candidate pair is confirmed on the exact Jaccard of its two shingle sets (the
   texts are read again and only candidate rows shingled), so a pair below the threshold
   is never grouped, however many candidates the low end of the S-curve lets through;
   expected recall at a Jaccard ``s >= threshold`` is
   P(s). (Pairing with the bucket's first row keeps the work linear; two later rows of one
   bucket are compared only through another band, which costs little recall with 18 bands.)

``benchmarks/dedup.py`` measures recall per Jaccard band on planted pairs: about 0.997 at
Jaccard >= 0.8 and nothing grouped below 0.8 for the defaults.

With ``semantic`` set, prompts of one (kind, category) whose sentence embeddings have a
cosine similarity >= ``semantic.threshold`` are grouped too, after the MinHash pass (the
same request in other words). The reject detail of ``near_action: reject`` gives the exact
shingle Jaccard of the row and its group's first row, or the embedding cosine.

The stage streams (:meth:`DedupStage.run_stream`): it reads the prompt ids of every chunk
(exact duplicates, ids held as 8-byte integers), then the texts of the rows kept (steps
1-3), then every chunk to write its result. Memory at 2 million rows stays at tens of MB
besides one chunk; whole texts are never held together. With ``semantic`` set the stage
needs the whole table (embeddings of every prompt).
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import polars as pl

from refuseu.config import DedupConfig
from refuseu.stages.base import Chunks, Stage, StageContext, StageResult, concat_rejects

_P = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
               0xD6E8FEB86659FD93, 0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53,
               0x27D4EB2F165667C5, 0x94D049BB133111EB], dtype=np.uint64)


_PUNCT = ".,;:!?\"'()[]{}<>«»„“”‘’¿¡…-–—/*_#"

# Candidate recall wanted at the threshold itself (step 2 of the module docstring).
CANDIDATE_RECALL = 0.98


def candidate_probability(s, bands: int, rows: int):
    """The LSH S-curve: probability that a pair of Jaccard ``s`` becomes a candidate."""
    return 1 - (1 - np.asarray(s, dtype=np.float64) ** rows) ** bands


def lsh_banding(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows): the largest ``rows`` whose S-curve with ``bands = num_perm // rows``
    gives candidate recall >= 0.98 at ``threshold``."""
    for rows in range(num_perm, 0, -1):
        bands = num_perm // rows
        if candidate_probability(threshold, bands, rows) >= CANDIDATE_RECALL:
            return bands, rows
    return num_perm, 1


def lsh_bands(threshold: float, num_perm: int) -> int:
    """Number of LSH bands for ``threshold`` (see :func:`lsh_banding`)."""
    return lsh_banding(threshold, num_perm)[0]


def shingle_hashes(texts: pl.Series, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat uint64 hashes of lower-cased word k-shingles and row offsets (CSR layout)."""
    n = texts.len()
    # Texts are whitespace-normalized already, so splitting on one space finds the words;
    # stripping edge punctuation per word is several times cheaper than a \w+ regex.
    words = (pl.DataFrame({"t": texts}).with_row_index("row")
             .select("row", w=pl.col("t").str.to_lowercase().str.split(" "))
             .explode("w")
             .with_columns(pl.col("w").str.strip_chars(_PUNCT))
             .filter(pl.col("w").str.len_bytes() > 0))
    rows = words.get_column("row").to_numpy().astype(np.int64)
    h = words.get_column("w").hash(seed=1).to_numpy()
    if k > 1 and len(h) >= k:
        m = len(h) - k + 1
        valid = rows[: m] == rows[k - 1:]
        comb = h[:m] * _P[0]
        for j in range(1, k):
            comb = comb ^ (h[j: j + m] * _P[j % len(_P)])
        sh_rows, sh = rows[:m][valid], comb[valid]
    else:
        sh_rows, sh = rows, h
    counts = np.bincount(sh_rows, minlength=n)
    # Rows with fewer than k words (or none) get one shingle: the hash of the whole text.
    short = np.flatnonzero(counts == 0)
    if len(short):
        whole = texts.gather(short).str.to_lowercase().hash(seed=2).to_numpy()
        sh_rows = np.concatenate([sh_rows, short])
        sh = np.concatenate([sh, whole])
        order = np.argsort(sh_rows, kind="stable")
        sh_rows, sh = sh_rows[order], sh[order]
        counts = np.bincount(sh_rows, minlength=n)
    offsets = np.zeros(n + 1, dtype=np.uint64)
    np.cumsum(counts, out=offsets[1:])
    return np.ascontiguousarray(sh, dtype=np.uint64), offsets


class _UnionFind:
    def __init__(self):
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        p = self.parent.setdefault(x, x)
        while p != self.parent[p]:
            self.parent[p] = self.parent[self.parent[p]]
            p = self.parent[p]
        self.parent[x] = p
        return p

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:  # the smaller index (earlier row) is the root
            lo, hi = min(ra, rb), max(ra, rb)
            self.parent[hi] = lo


def _gather(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Indices of the concatenated slices ``[start, start + length)``."""
    starts, lengths = starts.astype(np.int64), lengths.astype(np.int64)
    out_offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=out_offsets[1:])
    return np.repeat(starts - out_offsets[:-1], lengths) + np.arange(int(out_offsets[-1]))


def shingle_sets(tokens: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct shingles of ``rows`` as sorted dense ids (one id per distinct hash among
    these rows), in CSR layout: ids and offsets, one slice per row of ``rows``."""
    lengths = (offsets[rows + 1] - offsets[rows]).astype(np.int64)
    uniq, inverse = np.unique(tokens[_gather(offsets[rows], lengths)], return_inverse=True)
    width = max(1, len(uniq))
    # (row, id) as one integer: a single sort finds each row's distinct ids (no lexsort).
    keys = np.unique(np.repeat(np.arange(len(rows), dtype=np.int64), lengths) * width + inverse.ravel())
    set_offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys // width, minlength=len(rows)), out=set_offsets[1:])
    return keys % width, set_offsets


def pair_jaccard(ids: np.ndarray, set_offsets: np.ndarray, a: np.ndarray, b: np.ndarray,
                 *, chunk: int = 4_000_000) -> np.ndarray:
    """Exact Jaccard of the sets ``a[i]`` and ``b[i]`` (indices into :func:`shingle_sets`)."""
    sizes = np.diff(set_offsets)
    width = int(ids.max()) + 1 if len(ids) else 1
    out = np.empty(len(a), dtype=np.float64)
    ends = np.cumsum(sizes[a] + sizes[b])
    lo = 0
    while lo < len(a):  # chunks of about ``chunk`` shingles keep memory flat
        base = ends[lo - 1] if lo else 0
        hi = max(lo + 1, int(np.searchsorted(ends, base + chunk, side="right")))
        pa, pb = a[lo:hi], b[lo:hi]
        la, lb = sizes[pa], sizes[pb]
        pair = np.arange(hi - lo, dtype=np.int64)
        keys = np.sort(np.concatenate([np.repeat(pair, la) * width + ids[_gather(set_offsets[pa], la)],
                                       np.repeat(pair, lb) * width + ids[_gather(set_offsets[pb], lb)]]))
        # Each set is distinct, so two equal neighbours are one shingle of a and one of b.
        same = keys[1:] == keys[:-1]
        inter = np.bincount(keys[1:][same] // width, minlength=hi - lo)
        out[lo:hi] = inter / (la + lb - inter)
        lo = hi
    return out


def _band_keys_of_digests(dig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One 64-bit key per (row, band): the band's ``rows`` digest values mixed (a collision
    only adds a candidate, which the exact check then drops)."""
    d = dig[:, : bands * rows].astype(np.uint64).reshape(len(dig), bands, rows)
    key = np.zeros((len(dig), bands), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(rows):
            key = (key ^ d[:, :, j]) * _P[j % len(_P)]
    return key


def _bucket_heads(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(head, row) for every row of a band whose bucket has an earlier row: the bucket's
    first row (in input order) and the row."""
    n = len(key)
    idx = np.arange(n)
    order = np.argsort(key, kind="stable")  # within a bucket, rows in input order
    k = key[order]
    starts = np.ones(n, dtype=bool)
    starts[1:] = k[1:] != k[:-1]
    head = np.empty(n, dtype=np.int64)
    head[order] = order[np.flatnonzero(starts)][np.cumsum(starts) - 1]
    mask = head != idx
    return head[mask], idx[mask]


def _candidate_pairs(dig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(i, j) row pairs sharing a band bucket: every row with the first row of the bucket."""
    n = len(dig)
    keys = _band_keys_of_digests(dig, bands, rows)
    pairs = []
    for b in range(bands):
        head, row = _bucket_heads(keys[:, b])
        pairs.append(head * n + row)
    flat = np.unique(np.concatenate(pairs)) if pairs else np.zeros(0, dtype=np.int64)
    return np.stack([flat // n, flat % n], axis=1)


#: Rows whose digests leave rensa at once (its export is a list of Python ints: ~40 MB).
_DIGEST_ROWS = 8192
#: Rows shingled at once (a longer piece of text is cut; working memory grows with it).
_PIECE_ROWS = 20_000


def _band_keys(tokens: np.ndarray, offsets: np.ndarray, bands: int, rows: int, seed: int) -> np.ndarray:
    """Band keys (rows x bands, uint64) of the MinHash digests of shingled rows (CSR)."""
    import rensa

    m = len(offsets) - 1
    out = np.empty((m, bands), dtype=np.uint64)
    for lo in range(0, m, _DIGEST_ROWS):
        hi = min(m, lo + _DIGEST_ROWS)
        a, b = int(offsets[lo]), int(offsets[hi])
        # rensa's bands are consecutive runs of ``rows`` values, as in step 2
        matrix = rensa.RMinHash.digest_matrix_from_flat_token_hashes(
            tokens[a:b], offsets[lo: hi + 1] - offsets[lo], bands * rows, seed)
        # fromiter over the flattened rows: about 40% faster than np.array on the nested list
        flat = np.fromiter(itertools.chain.from_iterable(matrix.to_rows()), dtype=np.uint32,
                           count=(hi - lo) * bands * rows)
        out[lo:hi] = _band_keys_of_digests(flat.reshape(hi - lo, bands * rows), bands, rows)
    return out


def _pieces(texts: Iterable[pl.Series]) -> Iterator[pl.Series]:
    for t in texts:
        for lo in range(0, t.len(), _PIECE_ROWS):
            yield t.slice(lo, _PIECE_ROWS).cast(pl.String)


def near_duplicate_roots_stream(texts: Callable[[], Iterable[pl.Series]], cfg: DedupConfig, *, seed: int = 0,
                                scratch: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`near_duplicate_roots` over texts that come in pieces: ``texts()`` gives the
    pieces in order (it is called twice). Memory holds 8 bytes of band key per row and band
    at a time (the keys of the other bands wait in files under ``scratch``), the candidate
    pairs and the shingles of candidate rows only; never every text at once."""
    bands, rows = lsh_banding(cfg.threshold, cfg.num_perm)
    folder = Path(tempfile.mkdtemp(prefix="dedup-", dir=scratch))
    try:
        # 1. Band keys of every row, one spill file per band.
        files = [open(folder / f"band{b:03d}.u64", "wb") for b in range(bands)]
        n = 0
        try:
            for piece in _pieces(texts()):
                if piece.len() == 0:
                    continue
                tokens, offsets = shingle_hashes(piece, cfg.shingle_words)
                keys = _band_keys(tokens, offsets, bands, rows, seed)
                for b, f in enumerate(files):
                    f.write(np.ascontiguousarray(keys[:, b]).tobytes())
                n += piece.len()
        finally:
            for f in files:
                f.close()
        roots = np.arange(n, dtype=np.int64)
        sims = np.ones(n, dtype=np.float64)
        if n < 2:
            return roots, sims
        # 2. Candidates per band: every row with its bucket's first row.
        codes = []
        for b in range(bands):
            head, row = _bucket_heads(np.fromfile(folder / f"band{b:03d}.u64", dtype=np.uint64))
            codes.append(np.unique(head * n + row))
            (folder / f"band{b:03d}.u64").unlink()
        flat = np.unique(np.concatenate(codes))
        del codes
        if len(flat) == 0:
            return roots, sims
        first, second = flat // n, flat % n
        del flat
        cand = np.unique(np.concatenate([first, second]))
        # 3. Shingles of candidate rows only, confirmed on exact Jaccard.
        tok_parts, len_parts = [], []
        start = 0
        for piece in _pieces(texts()):
            m = piece.len()
            lo, hi = np.searchsorted(cand, [start, start + m])
            if hi > lo:
                t, o = shingle_hashes(piece.gather(cand[lo:hi] - start), cfg.shingle_words)
                tok_parts.append(t)
                len_parts.append(np.diff(o))
            start += m
        set_offsets = np.zeros(len(cand) + 1, dtype=np.uint64)
        np.cumsum(np.concatenate(len_parts), out=set_offsets[1:])
        ids, set_offsets = shingle_sets(np.concatenate(tok_parts), set_offsets, np.arange(len(cand)))
        del tok_parts
        a, b = np.searchsorted(cand, first), np.searchsorted(cand, second)
        similar = pair_jaccard(ids, set_offsets, a, b) >= cfg.threshold
        uf = _UnionFind()
        for x, y in zip(first[similar].tolist(), second[similar].tolist()):
            uf.union(x, y)
        for i in list(uf.parent):
            roots[i] = uf.find(i)
        moved = np.flatnonzero(roots != np.arange(n))
        if len(moved):  # exact Jaccard to the group's first row
            sims[moved] = pair_jaccard(ids, set_offsets, np.searchsorted(cand, moved),
                                       np.searchsorted(cand, roots[moved]))
        return roots, sims
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def near_duplicate_roots(texts: pl.Series, cfg: DedupConfig, *, seed: int = 0,
                         scratch: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """For every row, the index of its group's first row and the Jaccard similarity of
    their shingle sets.

    Two rows are grouped when a chain of pairs, each confirmed at ``cfg.threshold`` on exact
    shingle Jaccard, links them (see the module docstring for how candidates are found).
    """
    return near_duplicate_roots_stream(lambda: [texts], cfg, seed=seed, scratch=scratch)


def reference_matches(texts: pl.Series | Callable[[], Iterable[pl.Series]], reference: pl.Series, cfg: DedupConfig,
                      *, seed: int = 0, scratch: str | None = None) -> np.ndarray:
    """For every row of ``texts``: whether it is a near-duplicate of a ``reference`` row, by
    the same rule as :func:`near_duplicate_roots` (directly or through other rows of ``texts``).
    ``texts`` may be a function giving the texts in pieces (see :func:`near_duplicate_roots_stream`)."""
    pieces = texts if callable(texts) else (lambda: [texts])
    n_ref = reference.len()
    if n_ref == 0:
        return np.zeros(sum(t.len() for t in pieces()), dtype=bool)
    ref = reference.cast(pl.String)
    roots, _ = near_duplicate_roots_stream(lambda: itertools.chain([ref], pieces()), cfg, seed=seed,
                                           scratch=scratch)
    # Reference rows come first, so a group holding one has a reference row as its root.
    return roots[n_ref:] < n_ref


def id_keys(ids: pl.Series) -> np.ndarray:
    """Prompt or group ids as uint64: a 16-digit lower-case hex id is its value (ids are
    blake2b digests of 8 bytes), any other id a 64-bit hash of its text."""
    s = ids.cast(pl.String)
    hexy = s.str.contains("^[0-9a-f]{16}$").fill_null(False).to_numpy()
    hi = s.str.slice(0, 8).str.to_integer(base=16, strict=False).fill_null(0).to_numpy().astype(np.uint64)
    lo = s.str.slice(8, 8).str.to_integer(base=16, strict=False).fill_null(0).to_numpy().astype(np.uint64)
    out = (hi << np.uint64(32)) | lo
    if not hexy.all():
        out = np.where(hexy, out, s.hash(seed=3).to_numpy())
    return out


class DedupStage(Stage):
    """Exact duplicates are rejected; near-duplicates (MinHash, and with ``semantic`` also
    paraphrases by sentence embeddings within each (kind, category)) share a ``group_id``."""

    name = "dedup"
    inputs = ("prompt_id", "text", "kind", "source", "source_row")
    outputs = inputs + ("group_id",)
    version = "3"  # streamed; the near-duplicate detail gives the exact Jaccard to the group's first row

    def __init__(self, config: DedupConfig, *, seed: int, cache_dir: str | Path | None = None):
        self.config = config
        self.seed = seed
        self.cache_dir = cache_dir
        self._embedder = None

    def _semantic(self):
        """The (cached) embedder of ``semantic``; resolving the model is the preflight check."""
        if self._embedder is None:
            from refuseu.engines.cache import ItemCache
            from refuseu.engines.embed import CachedEmbedder, load_embedder

            cache = ItemCache(Path(self.cache_dir) / "items.sqlite") if self.cache_dir else None
            self._embedder = CachedEmbedder(load_embedder(self.config.semantic), cache)
        return self._embedder

    def preflight(self) -> None:
        if self.config.semantic is not None:
            self._semantic()  # a missing model stops the build here, before any work

    def signature_parts(self) -> dict:
        import rensa  # noqa: F401  (version recorded: digests depend on it)
        from importlib.metadata import version
        parts = {**self.config.model_dump(mode="json", exclude={"semantic"}), "seed": self.seed,
                 "rensa": version("rensa"), "polars": pl.__version__}
        if self.config.semantic is not None:
            sem = self.config.semantic
            parts["semantic"] = {"threshold": sem.threshold, **self._semantic().engine.settings()}
        return parts

    def needs_whole_table(self) -> bool:
        return self.config.semantic is not None  # embeddings of every prompt at once

    def run_stream(self, chunks: Chunks, ctx: StageContext) -> Iterator[StageResult]:
        """Three reads of the input: prompt ids (exact duplicates: the first occurrence wins),
        texts of the rows kept (near-duplicate groups), and every column (the results)."""
        ids = [id_keys(c.get_column("prompt_id")) for c in chunks.select(["prompt_id"])]
        ids = np.concatenate(ids) if ids else np.zeros(0, dtype=np.uint64)
        n = len(ids)
        _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
        dup = first[inverse.ravel()] != np.arange(n)
        # First occurrences of repeated ids: their ``source:row`` goes in their duplicates' detail.
        repeated = ~dup & (np.bincount(inverse.ravel(), minlength=len(first))[inverse.ravel()] > 1)
        del first, inverse
        n_kept = int(n - dup.sum())

        def kept_texts():
            start = 0
            for c in chunks.select(["text"]):
                keep = ~dup[start: start + c.height]
                start += c.height
                yield c.get_column("text").filter(pl.Series(keep))

        roots = np.arange(n_kept, dtype=np.int64)
        sims = np.ones(n_kept, dtype=np.float64)
        how = np.zeros(n_kept, dtype=bool)  # True: joined its group by embeddings
        if self.config.near and n_kept > 1:
            roots, sims = near_duplicate_roots_stream(kept_texts, self.config, seed=self.seed, scratch=ctx.scratch)
        if self.config.semantic is not None and n_kept > 1:
            cols = [c for c in ("text", "kind", "category") if c in chunks.columns]
            start, parts = 0, []
            for c in chunks.select(cols):
                parts.append(c.filter(pl.Series(~dup[start: start + c.height])))
                start += c.height
            roots, sims, how = self._paraphrase_roots(pl.concat(parts), roots, sims, ctx)
        moved = roots != np.arange(n_kept)
        is_root = np.zeros(n_kept, dtype=bool)
        is_root[roots[moved]] = True
        reject_near = self.config.near_action == "reject"

        refs: dict[int, str] = {}  # id -> "source:row" of its first occurrence
        root_ids: dict[int, str] = {}  # kept row -> prompt id, for rows that head a group
        start = kept_start = 0
        for chunk in chunks:
            m = chunk.height
            c_ids, c_dup, c_rep = ids[start: start + m], dup[start: start + m], repeated[start: start + m]
            start += m
            if c_rep.any():
                where = chunk.filter(pl.Series(c_rep)).select(pl.format("{}:{}", "source", "source_row")).to_series()
                refs.update(zip(c_ids[c_rep].tolist(), where.to_list()))
            rejects = []
            if c_dup.any():
                dups = chunk.filter(pl.Series(c_dup))
                ref = pl.Series([refs.get(i) for i in c_ids[c_dup].tolist()], dtype=pl.String)
                dups = dups.with_columns(__ref=ref)
                rejects.append(self.reject(dups, "duplicate",
                                           pl.format("exact duplicate of {} ({})", "prompt_id", "__ref")))
            kept = chunk.filter(pl.Series(~c_dup))
            mk = kept.height
            k_roots, k_moved = roots[kept_start: kept_start + mk], moved[kept_start: kept_start + mk]
            heads = np.flatnonzero(is_root[kept_start: kept_start + mk])
            if len(heads):
                root_ids.update(zip((heads + kept_start).tolist(),
                                    kept.get_column("prompt_id").gather(heads).to_list()))
            group = [root_ids[r] if mv else None for r, mv in zip(k_roots.tolist(), k_moved.tolist())] \
                if k_moved.any() else [None] * mk
            group = pl.lit(pl.Series(group, dtype=pl.String))
            kept = kept.with_columns(group_id=pl.coalesce(group, pl.col("prompt_id")))
            if reject_near and k_moved.any():
                near = kept.filter(pl.Series(k_moved)).with_columns(
                    __sim=pl.Series(sims[kept_start: kept_start + mk][k_moved]),
                    __emb=pl.Series(how[kept_start: kept_start + mk][k_moved]))
                measure = (pl.when(pl.col("__emb"))
                           .then(pl.format("embedding cosine {}", pl.col("__sim").round(3)))
                           .otherwise(pl.format("Jaccard {}", pl.col("__sim").round(3))))
                rejects.append(self.reject(near, "near_duplicate",
                                           pl.format("similar to {} ({})", "group_id", measure)))
                kept = kept.filter(pl.Series(~k_moved))
            kept_start += mk
            yield StageResult(kept=kept, rejected=concat_rejects(rejects), input=chunk)

    def _paraphrase_roots(self, kept: pl.DataFrame, roots: np.ndarray, sims: np.ndarray, ctx: StageContext):
        """Groups joined by embedding cosine >= ``semantic.threshold`` within each (kind,
        category): roots (first row of the merged group), similarity to it, and whether a
        row's group changed through embeddings."""
        from refuseu.engines.embed import similar_pairs

        texts = kept.get_column("text").to_list()
        with ctx.progress("dedup: embeddings", len(texts)) as bar:
            emb = self._semantic().embed(texts)
            bar.update(len(texts))
        keys = ["kind"] + (["category"] if "category" in kept.columns else [])
        strata = kept.select(pl.struct(keys).rank("dense")).to_series().to_numpy()
        pairs = similar_pairs(emb, strata, self.config.semantic.threshold)
        uf = _UnionFind()
        for i in np.flatnonzero(roots != np.arange(len(roots))).tolist():
            uf.union(i, int(roots[i]))
        for a, b in pairs.tolist():
            uf.union(a, b)
        new_roots = roots.copy()
        for i in list(uf.parent):
            new_roots[i] = uf.find(i)
        changed = new_roots != roots
        sims = sims.copy()
        sims[changed] = np.einsum("ij,ij->i", emb[changed], emb[new_roots[changed]])
        return new_roots, sims, changed
