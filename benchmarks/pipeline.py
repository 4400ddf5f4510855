"""Pipeline benchmark: a synthetic 200,000-prompt English source through sources, normalize,
dedup, split, translate (pass-through), respond and assemble.

Prints rows/s of the first build, peak RSS of the build process, and the cached rebuild
time as a ratio to the first build (both measured in this run, in one process, after
imports), and the size of the stage cache against the release. Targets: >= 30,000 rows/s,
peak RSS < 1 GB, cached rebuild >= 20x faster, stage cache <= 10x the release.

    python benchmarks/pipeline.py [--rows 200000] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

WORDS = ("how can i get into the old warehouse at night without anyone seeing me and what would "
         "you need to know about alarms cameras guards locks fences dogs neighbours police reports "
         "online forums chemistry stores pharmacies money accounts transfers cards identities emails "
         "passwords servers networks elections voters ballots rumours posts videos pictures quotes "
         "songs books films lyrics recipes doctors nurses lawyers judges teachers students parents").split()


def make_source(path: Path, rows: int, seed: int = 7) -> None:
    """JSONL with ~4% exact duplicates and ~4% near-duplicates (one word changed)."""
    from refuseu.taxonomy import load_taxonomy

    tax = load_taxonomy()
    cats = [c for c in tax.categories if c != "child_sexual_exploitation"]
    rng = random.Random(seed)
    made: list[str] = []
    with path.open("w", encoding="utf-8") as f:
        for i in range(rows):
            r = rng.random()
            if made and r < 0.04:
                text = rng.choice(made)
            elif made and r < 0.08:
                words = rng.choice(made).split()
                words[rng.randrange(len(words))] = rng.choice(WORDS)
                text = " ".join(words)
            else:
                n = int(min(60, max(6, rng.lognormvariate(2.6, 0.5))))
                text = " ".join(rng.choice(WORDS) for _ in range(n)) + f" case {i}"
                made.append(text)
            f.write(json.dumps({"text": text, "kind": "harmful" if rng.random() < 0.85 else "benign",
                                "category": rng.choice(cats), "attack_style": rng.choice(tax.attack_styles)}) + "\n")


def bench_recipe(wd: Path, source: Path, name: str = "bench", **overrides):
    """The benchmark's recipe: English only, the default stages, build and release in ``wd``."""
    from refuseu.config import load_recipe

    return load_recipe(None, overrides={
        "name": name, "languages": ["en"], "sources": [{"spec": str(source)}],
        "build_dir": str(wd / "build"), "release": {"out": str(wd / "releases")},
        "split": {"test_size": 0.05}, **overrides})


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def _child(workdir: str, conn) -> None:
    from refuseu.build import build

    wd = Path(workdir)
    recipe = bench_recipe(wd, wd / "source.jsonl")
    t0 = time.perf_counter()
    first = build(recipe)
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    second = build(recipe)
    t_cached = time.perf_counter() - t0
    # A rebuild after the release folder was removed: every stage comes from the cache.
    shutil.rmtree(first.release_dir)
    t0 = time.perf_counter()
    third = build(recipe)
    t_stage_cache = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cache_bytes = folder_bytes(wd / "build" / "stages")
    release_bytes = folder_bytes(Path(third.release_dir))
    conn.send({"first": t_first, "cached": t_cached, "stage_cached": t_stage_cache, "rss_mb": rss_mb,
               "status": [first.status, second.status, third.status], "stages_run_third": third.stages_run,
               "counts": first.counts, "rejected": first.rejected,
               "cache_bytes": cache_bytes, "release_bytes": release_bytes})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    wd = Path(args.workdir or tempfile.mkdtemp(prefix="refuseu-bench-"))
    wd.mkdir(parents=True, exist_ok=True)
    for sub in ("build", "releases"):
        shutil.rmtree(wd / sub, ignore_errors=True)
    src = wd / "source.jsonl"
    t0 = time.perf_counter()
    make_source(src, args.rows)
    print(f"synthetic source: {args.rows} rows, {src.stat().st_size / 1e6:.1f} MB ({time.perf_counter() - t0:.1f}s)")
    # A fresh process so that peak RSS is the build's own, not this generator's.
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    p = ctx.Process(target=_child, args=(str(wd), child))
    p.start()
    r = parent.recv()
    p.join()
    rows_s = args.rows / r["first"]
    ratio = r["first"] / r["cached"]
    print(f"first build:          {r['first']:.2f}s  -> {rows_s:,.0f} rows/s   (target >= 30,000)")
    # The rebuild with every stage cached costs about what writing the release does (Parquet,
    # hashes, the card and its figures, the report page) plus reading the cache: shown apart;
    # the target above is for the whole build.
    stages = max(1e-9, r["first"] - r["stage_cached"])
    print(f"  about {r['stage_cached']:.2f}s of it writes the release (the stage-cached rebuild); the stages: "
          f"{stages:.2f}s -> {args.rows / stages:,.0f} rows/s")
    print(f"peak RSS:             {r['rss_mb']:.0f} MB                (target < 1024)")
    print(f"cached rebuild:       {r['cached'] * 1000:.1f} ms -> {ratio:,.0f}x faster (target >= 20x)")
    print(f"rebuild from stage cache (release folder removed): {r['stage_cached']:.2f}s "
          f"-> {r['first'] / r['stage_cached']:.1f}x faster; stages run: {r['stages_run_third'] or 'none'}")
    size_ratio = r["cache_bytes"] / r["release_bytes"]
    print(f"stage cache:          {r['cache_bytes'] / 1e6:.1f} MB = {size_ratio:.1f}x the release "
          f"({r['release_bytes'] / 1e6:.1f} MB)   (target <= 10x)")
    print(f"rows: {r['counts']}, rejected: {r['rejected']}; statuses: {r['status']}")
    ok = rows_s >= 30_000 and r["rss_mb"] < 1024 and ratio >= 20 and size_ratio <= 10
    print("targets met" if ok else "targets NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
