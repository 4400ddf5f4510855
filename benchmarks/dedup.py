"""Near-duplicate benchmark: recall and false grouping of the dedup stage against true
word-shingle Jaccard.

Two planted sets:

- ``planted`` (default): pairs made by editing a base prompt (substituted, inserted and
  deleted words) until their true Jaccard falls in each band (>= 0.8, 0.6-0.8, < 0.6),
  among unrelated background prompts.
- ``pipeline``: the synthetic source of ``benchmarks/pipeline.py`` (one-word edits of
  earlier prompts), with the parent of every edit recorded.

True Jaccard is computed in pure Python on sets of lower-cased word k-shingles (the stage's
shingling: split on spaces, edge punctuation stripped), independently of the stage's hashing.
A pair is caught when both rows get the same ``group_id``. Printed: recall per Jaccard band,
the share of pairs below 0.6 that are grouped (false grouping), rows grouped with a row of
another family (unrelated merges), and the time of the near-duplicate pass.

    python benchmarks/dedup.py [--set planted|pipeline] [--pairs 3000] [--background 50000] [--rows 200000]
"""

from __future__ import annotations

import argparse
import random
import sys
import time

import polars as pl

PUNCT = ".,;:!?\"'()[]{}<>«»„“”‘’¿¡…-–—/*_#"
BANDS = ((0.9, 1.01), (0.8, 0.9), (0.7, 0.8), (0.6, 0.7), (0.0, 0.6))


def shingles(text: str, k: int = 3) -> set:
    words = [w.strip(PUNCT) for w in text.lower().split(" ")]
    words = [w for w in words if w]
    if len(words) < k:
        return {text.lower()}
    return {tuple(words[i:i + k]) for i in range(len(words) - k + 1)}


def jaccard(a: str, b: str, k: int = 3) -> float:
    sa, sb = shingles(a, k), shingles(b, k)
    return len(sa & sb) / len(sa | sb)


def vocabulary(n: int, rng: random.Random) -> list[str]:
    syll = ["ka", "lo", "mi", "ne", "ru", "ta", "vo", "si", "de", "pa", "gu", "fe", "zo", "bi", "ha", "ly"]
    words = set()
    while len(words) < n:
        words.add("".join(rng.choice(syll) for _ in range(rng.randint(2, 4))))
    return sorted(words)


def edit(words: list[str], n_edits: int, vocab: list[str], rng: random.Random) -> list[str]:
    out = list(words)
    for _ in range(n_edits):
        op = rng.random()
        if op < 0.5 or len(out) < 4:
            out[rng.randrange(len(out))] = rng.choice(vocab)
        elif op < 0.75:
            out.insert(rng.randrange(len(out) + 1), rng.choice(vocab))
        else:
            del out[rng.randrange(len(out))]
    return out


def planted_set(pairs_per_band: int, background: int, seed: int = 11, k: int = 3):
    """Texts, and planted pairs (i, j, true Jaccard): ``pairs_per_band`` in each of >= 0.8,
    0.6-0.8 and < 0.6 (0.2-0.6), plus ``background`` unrelated texts."""
    rng = random.Random(seed)
    vocab = vocabulary(4000, rng)
    texts: list[str] = []
    pairs: list[tuple[int, int, float]] = []
    want = {"hi": pairs_per_band, "mid": pairs_per_band, "lo": pairs_per_band}
    while any(want.values()):
        n = rng.randint(8, 60)
        base = [rng.choice(vocab) for _ in range(n)]
        # Edits spread so that every band fills: few edits for long texts give high Jaccard.
        other = edit(base, rng.randint(1, max(1, n // 3)), vocab, rng)
        a, b = " ".join(base), " ".join(other)
        if a == b:
            continue
        j = jaccard(a, b, k)
        band = "hi" if j >= 0.8 else "mid" if j >= 0.6 else "lo" if j >= 0.2 else None
        if band is None or not want[band]:
            continue
        want[band] -= 1
        texts += [a, b]
        pairs.append((len(texts) - 2, len(texts) - 1, j))
    for _ in range(background):
        texts.append(" ".join(rng.choice(vocab) for _ in range(rng.randint(6, 60))))
    order = list(range(len(texts)))
    rng.shuffle(order)  # pairs are not adjacent rows
    where = {old: new for new, old in enumerate(order)}
    texts = [texts[i] for i in order]
    pairs = [(where[a], where[b], j) for a, b, j in pairs]
    return texts, pairs


def pipeline_set(rows: int, seed: int = 7, k: int = 3):
    """The source of benchmarks/pipeline.py (same random stream), exact duplicates dropped,
    with (parent, edit, true Jaccard) for every one-word edit that is not an exact copy."""
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    from pipeline import WORDS
    from refuseu.taxonomy import load_taxonomy

    tax = load_taxonomy()
    cats = [c for c in tax.categories if c != "child_sexual_exploitation"]
    rng = random.Random(seed)
    made: list[str] = []
    stream: list[str] = []
    edits: list[tuple[str, str]] = []
    for i in range(rows):
        r = rng.random()
        if made and r < 0.04:
            text = rng.choice(made)
        elif made and r < 0.08:
            parent = rng.choice(made)
            words = parent.split()
            words[rng.randrange(len(words))] = rng.choice(WORDS)
            text = " ".join(words)
            edits.append((parent, text))
        else:
            n = int(min(60, max(6, rng.lognormvariate(2.6, 0.5))))
            text = " ".join(rng.choice(WORDS) for _ in range(n)) + f" case {i}"
            made.append(text)
        stream.append(text)
        rng.random(), rng.choice(cats), rng.choice(tax.attack_styles)  # kind, category, style
    index: dict[str, int] = {}
    texts: list[str] = []
    for t in stream:
        if t not in index:
            index[t] = len(texts)
            texts.append(t)
    pairs = [(index[p], index[e], jaccard(p, e, k)) for p, e in edits if p != e]
    return texts, sorted(set(pairs))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--set", choices=("planted", "pipeline"), default="planted")
    ap.add_argument("--pairs", type=int, default=3000, help="planted pairs per band (planted set)")
    ap.add_argument("--background", type=int, default=50_000, help="unrelated rows (planted set)")
    ap.add_argument("--rows", type=int, default=200_000, help="source rows (pipeline set)")
    ap.add_argument("--threshold", type=float, default=0.8)
    args = ap.parse_args()

    from refuseu.config import DedupConfig
    from refuseu.stages.dedup import near_duplicate_roots

    t0 = time.perf_counter()
    if args.set == "planted":
        texts, pairs = planted_set(args.pairs, args.background)
    else:
        texts, pairs = pipeline_set(args.rows)
    print(f"{args.set} set: {len(texts):,} distinct rows, {len(pairs):,} planted pairs "
          f"({time.perf_counter() - t0:.1f}s to make)")
    cfg = DedupConfig(threshold=args.threshold)
    series = pl.Series(texts)
    t0 = time.perf_counter()
    roots, _ = near_duplicate_roots(series, cfg, seed=0)
    dt = time.perf_counter() - t0
    print(f"near-duplicate pass: {dt:.2f}s -> {len(texts) / dt:,.0f} rows/s "
          f"(threshold {cfg.threshold}, num_perm {cfg.num_perm}, {cfg.shingle_words}-word shingles)")
    caught = {band: [0, 0] for band in BANDS}
    for a, b, j in pairs:
        band = next(x for x in BANDS if x[0] <= j < x[1])
        caught[band][1] += 1
        caught[band][0] += int(roots[a] == roots[b])
    print("true Jaccard   pairs   grouped   share")
    for (lo, hi), (c, n) in caught.items():
        name = f"{lo:.1f}-{min(hi, 1.0):.1f}" if lo else f"< {hi:.1f}"
        print(f"{name:>12} {n:>7,} {c:>9,}   {c / n if n else float('nan'):.3f}")
    hi_c = sum(c for (lo, _), (c, n) in caught.items() if lo >= 0.8)
    hi_n = sum(n for (lo, _), (c, n) in caught.items() if lo >= 0.8)
    lo_c, lo_n = caught[BANDS[-1]]
    # Rows grouped with a row that is not of their planted family (a pair's other row).
    family = list(range(len(texts)))
    for a, b, _ in pairs:
        family[b] = family[a]
    root_family = [family[r] for r in roots]
    merges = sum(1 for i in range(len(texts)) if root_family[i] != family[i])
    recall = hi_c / hi_n if hi_n else float("nan")
    false = lo_c / lo_n if lo_n else 0.0
    print(f"recall at J >= 0.8: {recall:.3f} (target >= 0.95); grouped below 0.6: {false:.3f} "
          f"(target <= 0.02); rows grouped with an unrelated row: {merges}")
    print("targets met" if recall >= 0.95 and false <= 0.02 else "targets NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
