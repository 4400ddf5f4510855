"""Language-ID benchmark and held-out accuracy.

1. Accuracy per language on the held-out sentences in tests/data/lid_heldout/<lang>.txt
   (natural sentences, not from the seed) for fastText lite alone, lingua alone and the
   combined default rule; with the rule's default threshold applied.
2. Throughput on 100,000 short texts (the held-out sentences and the seed translations,
   repeated, each with its expected language): fastText alone and the combined rule.
   Targets: fastText >= 50,000 texts/s, combined >= 20,000 texts/s.

    python benchmarks/langid.py [--n 100000]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time

import yaml
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from refuseu.config import LidConfig  # noqa: E402
from refuseu.engines.lid.combined import CombinedLid  # noqa: E402
from refuseu.engines.lid.fasttext_lid import FastTextLid  # noqa: E402
from refuseu.engines.lid.lingua_lid import LinguaLid  # noqa: E402
from refuseu.languages import ALL12  # noqa: E402


def heldout() -> dict[str, list[str]]:
    out = {}
    for lang in ALL12:
        p = REPO / "tests" / "data" / "lid_heldout" / f"{lang}.txt"
        if p.exists():
            out[lang] = [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip()]
    return out


def accuracy(engine, data: dict[str, list[str]], threshold: float | None) -> dict[str, float]:
    res = {}
    for lang, texts in data.items():
        preds = engine.predict(texts, [lang] * len(texts))
        ok = sum(p.lang == lang and (threshold is None or p.score >= threshold) for p in preds)
        res[lang] = ok / len(texts)
    return res


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    args = ap.parse_args()
    data = heldout()
    langs = list(ALL12)
    thr = LidConfig().threshold
    engines = {"fasttext": FastTextLid("lite"), "lingua": LinguaLid(langs), "combined": CombinedLid(langs)}
    print(f"held-out accuracy ({sum(map(len, data.values()))} sentences; combined with threshold {thr}):")
    table = {name: accuracy(e, data, thr if name == "combined" else None) for name, e in engines.items()}
    print("lang  " + "  ".join(f"{n:>9}" for n in table))
    for lang in data:
        print(f"{lang:<5} " + "  ".join(f"{table[n][lang]:>9.0%}" for n in table))

    # Short natural texts: the held-out sentences and the native templates (refusals,
    # openers), each with its language; the longer seed prompts are reported separately.
    pool: list[tuple[str, str]] = [(t, lang) for lang, ts in data.items() for t in ts]
    for f in sorted((REPO / "refuseu" / "data" / "templates").glob("*.yaml")):
        tpl = yaml.safe_load(f.read_text(encoding="utf-8"))
        for texts_ in list(tpl["refusals"].values()) + [tpl["compliance_openers"], tpl.get("over_refusals", [])]:
            pool += [(t, f.stem) for t in texts_]
    prompts: list[tuple[str, str]] = []
    for f in sorted((REPO / "refuseu" / "data" / "tm").glob("*.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            prompts.append((json.loads(line)["target"], f.stem))
    for label, source in (("short texts", pool), ("seed prompts", prompts)):
        rng = random.Random(0)
        items = [source[rng.randrange(len(source))] for _ in range(args.n)]
        texts, expected = [t for t, _ in items], [lang for _, lang in items]
        mean_chars = sum(map(len, texts)) / len(texts)
        print(f"\nthroughput on {args.n:,} {label} (mean {mean_chars:.0f} chars, {len(set(expected))} languages):")
        t0 = time.perf_counter()
        FastTextLid("lite", workers=1).predict(texts, expected)
        ft1 = args.n / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        FastTextLid("lite").predict(texts, expected)
        ft = args.n / (time.perf_counter() - t0)
        comb = CombinedLid(langs)
        t0 = time.perf_counter()
        comb.predict(texts, expected)
        cb = args.n / (time.perf_counter() - t0)
        print(f"  fastText lite, one process: {ft1:>10,.0f} texts/s")
        print(f"  fastText lite (engine):     {ft:>10,.0f} texts/s   (target >= 50,000)  {ft / ft1:.2f}x one process")
        print(f"  combined rule:              {cb:>10,.0f} texts/s   (target >= 20,000); lingua consulted for "
              f"{comb.consulted / args.n:.1%} of texts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
