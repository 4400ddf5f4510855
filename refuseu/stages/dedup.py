"""DedupStage: exact duplicates (rejected) and near-duplicates (MinHash LSH, grouped).

Near-duplicate detection hashes lower-cased word shingles in bulk (numpy), computes
MinHash digests and a first LSH pass in rensa (Rust), and only for the rows rensa flags
builds explicit candidate pairs, verified by estimated Jaccard similarity. Rows that
end up together share a ``group_id`` (the id of the group's first row), so the split
keeps them on one side.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from refuseu.config import DedupConfig
from refuseu.stages.base import Stage, StageContext, StageResult, concat_rejects

_P = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
               0xD6E8FEB86659FD93, 0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53,
               0x27D4EB2F165667C5, 0x94D049BB133111EB], dtype=np.uint64)


_PUNCT = ".,;:!?\"'()[]{}<>«»„“”‘’¿¡…-–—/*_#"


def lsh_bands(threshold: float, num_perm: int) -> int:
    """Number of bands minimising false positives + false negatives around ``threshold``
    (the same criterion as datasketch), restricted to bands that divide ``num_perm``."""
    xs = np.linspace(0, 1, 201)
    best, best_err = 1, float("inf")
    for b in range(1, num_perm + 1):
        if num_perm % b:
            continue
        r = num_perm // b
        p = 1 - (1 - xs ** r) ** b
        fp = np.trapz(np.where(xs < threshold, p, 0), xs)
        fn = np.trapz(np.where(xs >= threshold, 1 - p, 0), xs)
        if fp + fn < best_err:
            best, best_err = b, fp + fn
    return best


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


def near_duplicate_roots(texts: pl.Series, cfg: DedupConfig, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """For every row, the index of its group's first row and the estimated similarity to it."""
    import rensa

    n = texts.len()
    roots = np.arange(n, dtype=np.int64)
    sims = np.ones(n, dtype=np.float64)
    if n < 2:
        return roots, sims
    tokens, offsets = shingle_hashes(texts, cfg.shingle_words)
    bands = lsh_bands(cfg.threshold, cfg.num_perm)
    matrix = rensa.RMinHash.digest_matrix_from_flat_token_hashes(tokens, offsets, cfg.num_perm, seed)
    lsh = rensa.RMinHashLSH(cfg.threshold, cfg.num_perm, bands)
    flags = np.asarray(lsh.query_duplicate_flags_matrix_one_shot(matrix), dtype=bool)
    cand = np.flatnonzero(flags)
    if len(cand) < 2:
        return roots, sims
    # Exact digests only for the flagged rows (usually a small share).
    starts, lengths = offsets[cand].astype(np.int64), (offsets[cand + 1] - offsets[cand]).astype(np.int64)
    sub_offsets = np.zeros(len(cand) + 1, dtype=np.uint64)
    np.cumsum(lengths, out=sub_offsets[1:])
    gather = np.repeat(starts - sub_offsets[:-1].astype(np.int64), lengths) + np.arange(int(lengths.sum()))
    sub = rensa.RMinHash.digest_matrix_from_flat_token_hashes(tokens[gather], sub_offsets, cfg.num_perm, seed)
    dig = np.asarray(sub.to_rows(), dtype=np.uint32)
    r = cfg.num_perm // bands
    # Candidate pairs: every row with the first row of each band bucket it shares.
    pairs = []
    for b in range(bands):
        band = np.ascontiguousarray(dig[:, b * r:(b + 1) * r])
        keys = band.view(np.dtype((np.void, band.dtype.itemsize * r))).ravel()
        _, first_of_key, inverse = np.unique(keys, return_index=True, return_inverse=True)
        head = first_of_key[inverse.ravel()]
        mask = head != np.arange(len(cand))
        pairs.append(np.stack([head[mask], np.flatnonzero(mask)], axis=1))
    pairs = np.unique(np.concatenate(pairs), axis=0)
    if len(pairs) == 0:
        return roots, sims
    similar = (dig[pairs[:, 0]] == dig[pairs[:, 1]]).mean(axis=1) >= cfg.threshold
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


class DedupStage(Stage):
    name = "dedup"
    inputs = ("prompt_id", "text", "kind", "source", "source_row")
    outputs = inputs + ("group_id",)

    def __init__(self, config: DedupConfig, *, seed: int):
        self.config = config
        self.seed = seed

    def signature_parts(self) -> dict:
        import rensa  # noqa: F401  (version recorded: digests depend on it)
        from importlib.metadata import version
        return {**self.config.model_dump(mode="json"), "seed": self.seed,
                "rensa": version("rensa"), "polars": pl.__version__}

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
        if self.config.near and kept.height > 1:
            roots, sims = near_duplicate_roots(kept.get_column("text"), self.config, seed=self.seed)
            ids = kept.get_column("prompt_id")
            kept = kept.with_columns(group_id=ids.gather(roots), __sim=pl.Series(sims))
            if self.config.near_action == "reject":
                near = kept.filter(pl.col("group_id") != pl.col("prompt_id"))
                rejects.append(self.reject(near, "near_duplicate",
                                           pl.format("similar to {} (estimated Jaccard {})", "group_id",
                                                     pl.col("__sim").round(3))))
                kept = kept.filter(pl.col("group_id") == pl.col("prompt_id"))
            kept = kept.drop("__sim")
        else:
            kept = kept.with_columns(group_id=pl.col("prompt_id"))
        return StageResult(kept=kept, rejected=concat_rejects(rejects))
