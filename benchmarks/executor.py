"""Executor benchmark: the same translation work through the local executor and through the
Ray executor with 1 and 2 actors (a tiny random-weight Marian model, CPU, no item cache).

Prints items/s of each and the ratio to the local run measured in this same run (time
ratio: ray seconds / local seconds; the goal on CPU is at most 1.3x), and checks that every
variant gave the same outputs. Ray's times include starting the actor pool and loading the
model in each actor (what a build pays once for the actors, and each model stage for its
model: the actors are kept across calls and stages); the local cluster itself is started
before timing. ``--calls`` hands the items over
in that many calls to one executor, as a streamed stage does (one call per chunk of rows). Ray actors run torch with one thread per CPU they hold (Ray sets
OMP_NUM_THREADS); the local run uses torch's default.

    python benchmarks/executor.py                 # 2,000 items, chunks of 256, best of 3 rounds
    python benchmarks/executor.py --n 5000 --actors 1 2 4 --num-cpus 4
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def make_texts(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct short sentences cut from the corpus the tiny models are trained on."""
    from refuseu.devtools.tiny_models import corpus_lines

    rng = random.Random(seed)
    words = " ".join(corpus_lines()).split()
    out: dict[str, None] = {}
    while len(out) < n:
        k = rng.randint(4, 14)
        at = rng.randrange(0, len(words) - k)
        out[" ".join(words[at:at + k]) + f" {len(out)}"] = None
    return list(out)


def run(texts: list[str], model: str, *, executor, chunk: int, max_new_tokens: int,
        calls: int = 1) -> tuple[float, list]:
    from refuseu import executors
    from refuseu.config import TranslateConfig
    from refuseu.engines.cache import CachedTranslator
    from refuseu.engines.translators.hf import HFTranslator

    engine = HFTranslator(TranslateConfig(engine="hf", model=model, device="cpu", max_new_tokens=max_new_tokens))
    with executors.use(executor):
        t0 = time.perf_counter()
        ct, out = CachedTranslator(engine, None, chunk=chunk), []
        step = -(-len(texts) // calls)
        for lo in range(0, len(texts), step):
            out += ct.translate(texts[lo:lo + step], src="en", tgt="de")
        return time.perf_counter() - t0, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="items to translate")
    ap.add_argument("--chunk", type=int, default=256, help="items per engine call (the item cache's chunk)")
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    ap.add_argument("--model", default=None, help="a tiny Marian folder (default: build one)")
    ap.add_argument("--calls", type=int, default=4, help="calls the items are handed over in (one per chunk of rows)")
    ap.add_argument("--repeat", type=int, default=3, help="rounds; each variant's best time is kept")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import ray

    from refuseu.config import ExecutorConfig

    work = tempfile.mkdtemp(prefix="refuseu-exec-bench-")
    model = args.model
    if model is None:
        from refuseu.devtools.tiny_models import build_marian

        model = str(build_marian(Path(work) / "marian"))
    texts = make_texts(args.n)
    variants = [("local", None, ExecutorConfig())] + [("ray", n, ExecutorConfig(kind="ray", concurrency=n))
                                                      for n in args.actors]
    rows = [{"executor": kind, "actors": n, "seconds": float("inf"), "same": True} for kind, n, _ in variants]
    ref = None
    ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        # Rounds interleave the variants, and each keeps its best time: on a shared machine
        # other work slows whichever variant happens to run beside it.
        for _ in range(args.repeat):
            for row, (_, _, cfg) in zip(rows, variants):
                seconds, out = run(texts, model, executor=cfg, chunk=args.chunk, max_new_tokens=args.max_new_tokens,
                                   calls=args.calls)
                ref = out if ref is None else ref
                row["seconds"] = min(row["seconds"], seconds)
                row["same"] = row["same"] and out == ref
    finally:
        ray.shutdown()
    base = rows[0]["seconds"]
    for r in rows:
        r["items_per_s"] = round(args.n / r["seconds"], 1)
        r["time_ratio"] = round(r["seconds"] / base, 3)
        r["seconds"] = round(r["seconds"], 2)
    if args.json:
        print(json.dumps({"n": args.n, "calls": args.calls, "chunk": args.chunk, "rows": rows}, indent=2))
    else:
        print(f"{args.n} items in {args.calls} calls, chunks of {args.chunk}, {args.max_new_tokens} new tokens max, "
              f"{os.cpu_count()} CPUs here, Ray cluster of {args.num_cpus} CPUs, best of {args.repeat}")
        print(f"{'executor':<10}{'actors':>7}{'seconds':>10}{'items/s':>10}{'x local time':>14}{'same':>6}")
        for r in rows:
            print(f"{r['executor']:<10}{r['actors'] or '-':>7}{r['seconds']:>10}{r['items_per_s']:>10}"
                  f"{r['time_ratio']:>14}{'yes' if r['same'] else 'NO':>6}")
    return 0 if all(r["same"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
