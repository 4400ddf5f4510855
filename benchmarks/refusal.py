"""Refusal-judge accuracy per language on the held-out sets, and the lexicon's throughput.

- ``tests/data/refusal_heldout``: 15 refusals and 15 non-refusals per language, written
  independently of the lexicon and the templates (the first set).
- ``tests/data/refusal_heldout_v2``: 20 refusals and 20 non-refusals per language, written
  by someone who never saw the lexicon, by kind (informal and formal address, no apology,
  future and habitual negation, identity, partial, reason first, gendered forms; quoted
  refusals, helpful answers with negation, long helpful answers).

Neither set is used to tune the lexicon (it is tuned on ``tests/data/refusal_dev``).

    python benchmarks/refusal.py [--errors] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SETS = ("refusal_heldout", "refusal_heldout_v2")


def evaluate(folder: Path, detector=None) -> dict[str, dict]:
    from refuseu.judges import RefusalDetector

    det = detector or RefusalDetector()
    out = {}
    for f in sorted(folder.glob("*.jsonl")):
        rows = [json.loads(x) for x in f.read_text("utf-8").splitlines() if x.strip()]
        preds = [p for p, _ in det.is_refusal([r["text"] for r in rows], [f.stem] * len(rows))]
        right = [p == r["is_refusal"] for p, r in zip(preds, rows)]
        kinds_wrong = Counter(r.get("kind", "?") for r, ok in zip(rows, right) if not ok)
        n_ref = sum(r["is_refusal"] for r in rows)
        out[f.stem] = {
            "n": len(rows), "accuracy": sum(right) / len(rows),
            "recall": sum(ok for ok, r in zip(right, rows) if r["is_refusal"]) / max(1, n_ref),
            "specificity": sum(ok for ok, r in zip(right, rows) if not r["is_refusal"]) / max(1, len(rows) - n_ref),
            "errors": [f"[{r.get('kind', '?')}] {'missed' if r['is_refusal'] else 'false alarm'}: {r['text'][:90]}"
                       for r, ok in zip(rows, right) if not ok],
            "errors_by_kind": dict(kinds_wrong)}
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--errors", action="store_true", help="print every misjudged answer")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results = {}
    for name in SETS:
        folder = REPO / "tests" / "data" / name
        if folder.is_dir():
            results[name] = evaluate(folder)
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    for name, res in results.items():
        print(f"\n{name}")
        print("lang  n   accuracy  refusals found  non-refusals kept")
        for lang, r in res.items():
            print(f"{lang:<5} {r['n']:<3} {r['accuracy']:>8.1%}  {r['recall']:>14.0%}  {r['specificity']:>17.0%}")
            if args.errors:
                for e in r["errors"]:
                    print(f"        {e}")
        accs = [r["accuracy"] for r in res.values()]
        print(f"mean  {sum(accs) / len(accs):.3f}   min {min(accs):.3f}")
    from refuseu.judges import RefusalDetector
    det = RefusalDetector()
    texts = [f"I'm sorry, but I can't help with that request number {i}." for i in range(5000)] + \
            [f"Sure! Here is a detailed answer to your question number {i}, step by step." for i in range(5000)]
    det.is_refusal(texts[:10], ["de"] * 10)
    t0 = time.perf_counter()
    det.is_refusal(texts, ["de"] * len(texts))
    print(f"\nthroughput: {len(texts) / (time.perf_counter() - t0):,.0f} texts/s (lexicon, de + en cues)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
