"""Refusal-detector accuracy per language on the held-out set in tests/data/refusal_heldout
(15 refusals and 15 non-refusals per language, written independently of the lexicon and
the templates), and its throughput.

    python benchmarks/refusal.py
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def evaluate() -> dict[str, dict]:
    from refuseu.judges import RefusalDetector

    det = RefusalDetector()
    out = {}
    for f in sorted((REPO / "tests" / "data" / "refusal_heldout").glob("*.jsonl")):
        rows = [json.loads(x) for x in f.read_text("utf-8").splitlines() if x.strip()]
        preds = det.is_refusal([r["text"] for r in rows], [f.stem] * len(rows))
        tp = sum(p and r["is_refusal"] for (p, _), r in zip(preds, rows))
        tn = sum((not p) and (not r["is_refusal"]) for (p, _), r in zip(preds, rows))
        errors = [r["text"][:70] for (p, _), r in zip(preds, rows) if p != r["is_refusal"]]
        out[f.stem] = {"n": len(rows), "accuracy": (tp + tn) / len(rows),
                       "recall": tp / max(1, sum(r["is_refusal"] for r in rows)),
                       "specificity": tn / max(1, sum(not r["is_refusal"] for r in rows)), "errors": errors}
    return out


def main() -> int:
    res = evaluate()
    print("lang  n   accuracy  refusals found  non-refusals kept")
    for lang, r in res.items():
        print(f"{lang:<5} {r['n']:<3} {r['accuracy']:>8.0%}  {r['recall']:>14.0%}  {r['specificity']:>17.0%}")
        for e in r["errors"]:
            print(f"        miss: {e}")
    from refuseu.judges import RefusalDetector
    det = RefusalDetector()
    texts = ["I'm sorry, but I can't help with that request."] * 20000
    t0 = time.perf_counter()
    det.is_refusal(texts, ["en"] * len(texts))
    print(f"throughput: {len(texts) / (time.perf_counter() - t0):,.0f} texts/s (lexicon)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
