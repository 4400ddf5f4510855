"""DedupStage: exact duplicates (rejected) and near-duplicates (MinHash LSH, grouped).

Near-duplicates are pairs of prompts whose lower-cased word k-shingles (``shingle_words``,
default 3) have a Jaccard similarity of at least ``threshold`` (default 0.8). Rows that end
up together share a ``group_id`` (the id of the group's first row): the connected
components of the confirmed pairs, so the split keeps them on one side.

How pairs are found, in three steps:

1. Shingles are hashed in bulk (numpy) and MinHash digests of ``bands * rows`` values
   (at most ``num_perm``) computed in rensa (Rust). An LSH pass in rensa, ``bands`` bands of
   ``rows`` values each, flags the rows that share a band with another row: those with a
   candidate, usually a small share.
2. Candidates, for the flagged rows only, from the same bands: two rows are candidates when
   all values of one band agree, and every row of a band bucket is paired with the bucket's
   first row. A pair of Jaccard ``s`` becomes a candidate with probability (the S-curve)

       P(s) = 1 - (1 - s**rows) ** bands

   The banding is chosen for recall, not for a balance of errors: ``rows`` is the largest
   value for which ``P(threshold) >= 0.98`` with ``bands = num_perm // rows``
   (:func:`lsh_banding`). For the defaults (threshold 0.8, 128 values) that is 18 bands of
   7 rows (126 values used), whose S-curve crosses 0.5 at s = 0.63:

       s      0.5    0.6    0.7    0.8    0.9
       P(s)   0.13   0.40   0.79   0.986  1.000

3. Every candidate pair is confirmed on the exact Jaccard of its two shingle sets (cheap
   for pairs), so a pair below the threshold is never grouped, however many candidates the
   low end of the S-curve lets through; expected recall at a Jaccard ``s >= threshold`` is
   P(s). (Pairing with the bucket's first row keeps the work linear; two later rows of one
   bucket are compared only through another band, which costs little recall with 18 bands.)

``benchmarks/dedup.py`` measures recall per Jaccard band on planted pairs: about 0.997 at
Jaccard >= 0.8 and nothing grouped below 0.8 for the defaults.

With ``semantic`` set, prompts of one (kind, category) whose sentence embeddings have a
cosine similarity >= ``semantic.threshold`` are grouped too, after the MinHash pass (the
same request in other words). The reject detail of ``near_action: reject`` gives the MinHash
estimate of the similarity to the group's first row, or the embedding cosine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from refuseu.config import DedupConfig
from refuseu.stages.base import Stage, StageContext, StageResult, concat_rejects

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


def _candidate_pairs(dig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(i, j) row pairs sharing a band bucket: every row with the first row of the bucket.

    A band's values are mixed into one 64-bit key (a collision only adds a candidate, which
    the exact check then drops)."""
    n = len(dig)
    idx = np.arange(n)
    d64 = dig.astype(np.uint64)
    pairs = []
    with np.errstate(over="ignore"):
        for b in range(bands):
            key = np.zeros(n, dtype=np.uint64)
            for j in range(rows):
                key = (key ^ d64[:, b * rows + j]) * _P[j % len(_P)]
            order = np.argsort(key, kind="stable")  # within a bucket, rows in input order
            k = key[order]
            starts = np.ones(n, dtype=bool)
            starts[1:] = k[1:] != k[:-1]
            head = np.empty(n, dtype=np.int64)
            head[order] = order[np.flatnonzero(starts)][np.cumsum(starts) - 1]
            mask = head != idx
            pairs.append(head[mask] * n + idx[mask])
    flat = np.unique(np.concatenate(pairs)) if pairs else np.zeros(0, dtype=np.int64)
    return np.stack([flat // n, flat % n], axis=1)


def near_duplicate_roots(texts: pl.Series, cfg: DedupConfig, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """For every row, the index of its group's first row and the estimated similarity to it.

    Two rows are grouped when a chain of pairs, each confirmed at ``cfg.threshold`` on exact
    shingle Jaccard, links them (see the module docstring for how candidates are found).
    """
    import rensa

    n = texts.len()
    roots = np.arange(n, dtype=np.int64)
    sims = np.ones(n, dtype=np.float64)
    if n < 2:
        return roots, sims
    tokens, offsets = shingle_hashes(texts, cfg.shingle_words)
    bands, rows = lsh_banding(cfg.threshold, cfg.num_perm)
    perm = bands * rows  # rensa's bands are consecutive runs of ``rows`` values, as in step 2
    matrix = rensa.RMinHash.digest_matrix_from_flat_token_hashes(tokens, offsets, perm, seed)
    lsh = rensa.RMinHashLSH(cfg.threshold, perm, bands)
    flags = np.asarray(lsh.query_duplicate_flags_matrix_one_shot(matrix), dtype=bool)
    cand = np.flatnonzero(flags)
    if len(cand) < 2:
        return roots, sims
    # Digests as numbers only for the flagged rows (usually a small share).
    lengths = (offsets[cand + 1] - offsets[cand]).astype(np.int64)
    sub_offsets = np.zeros(len(cand) + 1, dtype=np.uint64)
    np.cumsum(lengths, out=sub_offsets[1:])
    sub = rensa.RMinHash.digest_matrix_from_flat_token_hashes(
        tokens[_gather(offsets[cand], lengths)], sub_offsets, perm, seed)
    dig = np.asarray(sub.to_rows(), dtype=np.uint32)
    pairs = _candidate_pairs(dig, bands, rows)
    if len(pairs) == 0:
        return roots, sims
    ids, set_offsets = shingle_sets(tokens, offsets, cand)
    similar = pair_jaccard(ids, set_offsets, pairs[:, 0], pairs[:, 1]) >= cfg.threshold
    uf = _UnionFind()
    for a, b in pairs[similar].tolist():
        uf.union(int(cand[a]), int(cand[b]))
    rows_of = {int(c): j for j, c in enumerate(cand)}
    for i in list(uf.parent):
        roots[i] = uf.find(i)
    moved = np.flatnonzero(roots != np.arange(n))
    if len(moved):
        a = np.array([rows_of[int(i)] for i in moved])
        b = np.array([rows_of[int(roots[i])] for i in moved])
        sims[moved] = (dig[a] == dig[b]).mean(axis=1)
    return roots, sims


def reference_matches(texts: pl.Series, reference: pl.Series, cfg: DedupConfig, *, seed: int = 0) -> np.ndarray:
    """For every row of ``texts``: whether it is a near-duplicate of a ``reference`` row, by
    the same rule as :func:`near_duplicate_roots` (directly or through other rows of ``texts``)."""
    n_ref = reference.len()
    if n_ref == 0 or texts.len() == 0:
        return np.zeros(texts.len(), dtype=bool)
    both = pl.concat([reference.cast(pl.String), texts.cast(pl.String)])
    roots, _ = near_duplicate_roots(both, cfg, seed=seed)
    # Reference rows come first, so a group holding one has a reference row as its root.
    return roots[n_ref:] < n_ref


class DedupStage(Stage):
    """Exact duplicates are rejected; near-duplicates (MinHash, and with ``semantic`` also
    paraphrases by sentence embeddings within each (kind, category)) share a ``group_id``."""

    name = "dedup"
    inputs = ("prompt_id", "text", "kind", "source", "source_row")
    outputs = inputs + ("group_id",)
    version = "2"  # candidates chosen for recall and confirmed on exact Jaccard

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

    def run(self, df: pl.DataFrame, ctx: StageContext) -> StageResult:
        df = df.with_row_index("__i")
        first = df.group_by("prompt_id", maintain_order=True).agg(
            pl.col("__i").first().alias("__first"), pl.col("source").first().alias("__fsrc"),
            pl.col("source_row").first().alias("__frow"))
        df = df.join(first, on="prompt_id", how="left", maintain_order="left")
        is_dup = pl.col("__i") != pl.col("__first")
        dups = df.filter(is_dup)
        rejects = [self.reject(dups, "duplicate",
                               pl.format("exact duplicate of {} ({}:{})", "prompt_id", "__fsrc", "__frow"))]
        kept = df.filter(~is_dup).drop("__i", "__first", "__fsrc", "__frow")
        semantic = self.config.semantic
        if (self.config.near or semantic is not None) and kept.height > 1:
            texts = kept.get_column("text")
            if self.config.near:
                roots, sims = near_duplicate_roots(texts, self.config, seed=self.seed)
            else:
                roots, sims = np.arange(kept.height, dtype=np.int64), np.ones(kept.height)
            how = np.zeros(kept.height, dtype=bool)  # True: joined its group by embeddings
            if semantic is not None:
                roots, sims, how = self._paraphrase_roots(kept, roots, sims, ctx)
            ids = kept.get_column("prompt_id")
            kept = kept.with_columns(group_id=ids.gather(roots), __sim=pl.Series(sims), __emb=pl.Series(how))
            if self.config.near_action == "reject":
                near = kept.filter(pl.col("group_id") != pl.col("prompt_id"))
                measure = (pl.when(pl.col("__emb"))
                           .then(pl.format("embedding cosine {}", pl.col("__sim").round(3)))
                           .otherwise(pl.format("estimated Jaccard {}", pl.col("__sim").round(3))))
                rejects.append(self.reject(near, "near_duplicate", pl.format("similar to {} ({})", "group_id", measure)))
                kept = kept.filter(pl.col("group_id") == pl.col("prompt_id"))
            kept = kept.drop("__sim", "__emb")
        else:
            kept = kept.with_columns(group_id=pl.col("prompt_id"))
        return StageResult(kept=kept, rejected=concat_rejects(rejects))

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
