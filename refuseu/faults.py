"""Fault injection for crash tests: ``REFUSEU_KILL_AT=<point>`` kills the process with
SIGKILL when the build reaches that named point, so a test can stop a real build exactly
there (a stage boundary, half-way through writing a cache entry or the release) and check
that the next build recovers. Unset, :func:`checkpoint` is one dictionary lookup.

``REFUSEU_KILL_AT`` may name several points separated by commas; ``point@N`` fires the
N-th time the point is reached (1-based). ``REFUSEU_PAUSE_AT=<point>=<seconds>`` sleeps there
instead (to hold a build at a known place while another process acts). Points are listed
by ``REFUSEU_KILL_TRACE=FILE``,
which appends every point reached to FILE with a monotonic timestamp.
"""

from __future__ import annotations

import os
import signal
import time

_seen: dict[str, int] = {}


def checkpoint(point: str) -> None:
    """Die here (SIGKILL) when ``REFUSEU_KILL_AT`` names ``point``."""
    trace = os.environ.get("REFUSEU_KILL_TRACE")
    spec = os.environ.get("REFUSEU_KILL_AT")
    pause = os.environ.get("REFUSEU_PAUSE_AT")
    if not spec and not trace and not pause:
        return
    n = _seen[point] = _seen.get(point, 0) + 1
    if trace:  # written first: a watcher sees the point as soon as it is reached
        with open(trace, "a", encoding="utf-8") as f:
            f.write(f"{point}@{n} {time.monotonic():.4f}\n")
    if pause:
        name, _, seconds = pause.partition("=")
        if name == point:
            time.sleep(float(seconds or 1))
    for item in (spec or "").split(","):
        name, _, count = item.strip().partition("@")
        if name == point and int(count or 1) == n:
            os.kill(os.getpid(), signal.SIGKILL)
