"""Scale benchmark: the same English build at 0.2, 1 and 2 million prompts.

For each size, a fresh process builds a synthetic English source (``benchmarks/pipeline.py``'s
generator: ~4% exact and ~4% near-duplicates) with the default recipe and prints its peak
RSS, rows/s, and the size of the stage cache against the release. Ratios are against the
smallest size, measured in the same run (the machine is shared and noisy).

Targets: peak RSS < 1 GB at 2M and roughly flat from 0.2M to 2M; rows/s at 2M >= 80% of the
rows/s at 0.2M; stage cache <= 10x the release.

    python benchmarks/scale.py [--sizes 200000,1000000,2000000] [--chunk-rows 50000] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pipeline import bench_recipe, folder_bytes, make_source  # noqa: E402


def _child(workdir: str, source: str, chunk_rows: int, conn) -> None:
    from refuseu.build import build

    wd = Path(workdir)
    recipe = bench_recipe(wd, Path(source), name="scale", executor={"chunk_rows": chunk_rows})
    t0 = time.perf_counter()
    summary = build(recipe)
    seconds = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cache = folder_bytes(wd / "build" / "stages")
    release = folder_bytes(Path(summary.release_dir))
    conn.send({"seconds": seconds, "rss_mb": rss_mb, "cache": cache, "release": release,
               "rows": sum(v for k, v in summary.counts.items() if k.startswith("lang_")),
               "rejected": summary.rejected})


def run_size(wd: Path, source: Path, chunk_rows: int) -> dict:
    for sub in ("build", "releases"):
        shutil.rmtree(wd / sub, ignore_errors=True)
    ctx = mp.get_context("spawn")  # a fresh process: peak RSS is the build's own
    parent, child = ctx.Pipe()
    p = ctx.Process(target=_child, args=(str(wd), str(source), chunk_rows, child))
    p.start()
    r = parent.recv()
    p.join()
    return r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="200000,1000000,2000000")
    ap.add_argument("--chunk-rows", type=int, default=50_000)
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    wd = Path(args.workdir or tempfile.mkdtemp(prefix="refuseu-scale-"))
    wd.mkdir(parents=True, exist_ok=True)
    full = wd / f"source-{sizes[-1]}.jsonl"
    if not full.exists():
        t0 = time.perf_counter()
        make_source(full, sizes[-1])  # the same seed: a smaller source is a prefix of it
        print(f"synthetic source: {sizes[-1]:,} rows ({time.perf_counter() - t0:.0f}s)")
    results = {}
    for n in sizes:
        src = wd / f"source-{n}.jsonl"
        if not src.exists():
            with full.open("rb") as f, src.open("wb") as out:
                for i, line in enumerate(f):
                    if i == n:
                        break
                    out.write(line)
        r = run_size(wd / "work", src, args.chunk_rows)
        r["rows_s"] = n / r["seconds"]
        results[n] = r
        print(f"{n:>9,} prompts: {r['seconds']:7.1f}s  {r['rows_s']:9,.0f} rows/s  peak RSS {r['rss_mb']:6.0f} MB  "
              f"cache {r['cache'] / 1e6:7.1f} MB = {r['cache'] / r['release']:.1f}x the release "
              f"({r['release'] / 1e6:.1f} MB)", flush=True)
    base = results[sizes[0]]
    top = results[sizes[-1]]
    print(f"\nchunk_rows {args.chunk_rows:,}; ratios against {sizes[0]:,} prompts (same run):")
    for n in sizes[1:]:
        r = results[n]
        print(f"  {n:>9,}: RSS x{r['rss_mb'] / base['rss_mb']:.2f}, throughput x{r['rows_s'] / base['rows_s']:.2f}")
    ok = (top["rss_mb"] < 1024 and top["rss_mb"] / base["rss_mb"] < 1.5
          and top["rows_s"] / base["rows_s"] >= 0.8 and all(r["cache"] / r["release"] <= 10 for r in results.values()))
    print(f"targets (RSS < 1024 MB and flat within 1.5x, throughput >= 0.8x, cache <= 10x): "
          f"{'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
