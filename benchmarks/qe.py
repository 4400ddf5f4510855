"""Quality-estimation throughput on this machine: the tiny COMET checkpoints (QE and
reference-based, built locally on a tiny XLM-R encoder: the real comet code path, toy
sizes) and sacrebleu chrF (the round-trip scorer), on seed prompts and their reference
translations. Prints items/s and each as a ratio to the cheap checks, measured in the same run.

    python benchmarks/qe.py [--n 2000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    args = ap.parse_args()
    from refuseu.config import QeConfig
    from refuseu.devtools.tiny_comet import build_tiny_comet, build_tiny_xlmr
    from refuseu.engines.qe.checks import cheap_check
    from refuseu.engines.qe.scorers import ChrfRoundTrip, CometScorer
    from refuseu.resources import data_dir

    pairs = []
    for f in sorted((data_dir() / "tm").glob("*.jsonl")):
        pairs += [(json.loads(x)["source"], json.loads(x)["target"]) for x in f.read_text("utf-8").splitlines()]
    pairs = (pairs * (args.n // len(pairs) + 1))[: args.n]
    src, mt = [p[0] for p in pairs], [p[1] for p in pairs]
    wd = Path(tempfile.mkdtemp(prefix="refuseu-qe-bench-"))
    enc = build_tiny_xlmr(wd / "xlmr")
    models = {"qe": build_tiny_comet(wd / "qe", enc, kind="qe"),
              "roundtrip": build_tiny_comet(wd / "reg", enc, kind="regression")}

    t0 = time.perf_counter()
    for s, t in zip(src, mt):
        cheap_check(s, t, min_ratio=0.3, max_ratio=3.0, max_repeat=4)
    base = len(src) / (time.perf_counter() - t0)
    print(f"{len(src)} pairs (seed prompts and reference translations, 11 languages)")
    print(f"cheap checks:              {base:>10,.0f} items/s  (baseline)")
    t0 = time.perf_counter()
    ChrfRoundTrip(QeConfig(scorer="chrf-roundtrip")).score(src, mt, src)
    chrf = len(src) / (time.perf_counter() - t0)
    print(f"chrF round trip (sacrebleu): {chrf:>8,.0f} items/s  ({chrf / base:.3f}x the checks)")
    for mode, ckpt in models.items():
        scorer = CometScorer(QeConfig(scorer="comet", mode=mode, model=str(ckpt), device="cpu", batch_size=64))
        scorer.score(src[:8], mt[:8], src[:8])  # load once (as a build does)
        t0 = time.perf_counter()
        scorer.score(src, mt, src)
        rate = len(src) / (time.perf_counter() - t0)
        print(f"tiny COMET {mode:<9} (d=32, 2 layers): {rate:>7,.0f} items/s  ({rate / base:.4f}x the checks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
