"""One build per build folder: an OS file lock (``filelock``) held for the whole build.

The lock is released by the operating system when the process ends, also on kill -9, so
a crashed build never blocks the next one. A second build waits up to a bounded time,
then fails naming the process that holds the folder.
"""

from __future__ import annotations

import json
import math
import os
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from refuseu.errors import BuildLockedError, InputError

#: Seconds a build waits for another build on the same folder (``REFUSEU_LOCK_TIMEOUT``).
DEFAULT_TIMEOUT = 60.0


def _owner(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return (f"pid {info['pid']} on {info['host']}, started {info['started']}: "
                f"{info['command']}")
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


def _timeout(timeout: float | None) -> float:
    """The seconds to wait: ``timeout``, else ``REFUSEU_LOCK_TIMEOUT``, else 60; a finite number >= 0."""
    where, value = "the lock timeout", timeout
    if timeout is None:
        where, value = "REFUSEU_LOCK_TIMEOUT", os.environ.get("REFUSEU_LOCK_TIMEOUT", DEFAULT_TIMEOUT)
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds >= 0):
        raise InputError(f"{where} {value!r} is not a number of seconds",
                         hint="give a finite number >= 0 (e.g. 60)")
    return seconds


@contextmanager
def build_lock(build_dir: str | Path, *, timeout: float | None = None, reporter=None):
    timeout = _timeout(timeout)
    folder = Path(build_dir)
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / ".lock"))
    owner_file = folder / ".lock.owner"
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if reporter is not None:
            reporter.info(f"waiting up to {timeout:g}s for the build folder {folder} ({_owner(owner_file)})")
        try:
            lock.acquire(timeout=timeout)
        except Timeout:
            raise BuildLockedError(
                f"another build is using the build folder {folder} ({_owner(owner_file)}); "
                f"waited {timeout:g}s",
                hint="wait for it to finish, or give this build its own --build-dir") from None
    try:
        owner_file.write_text(json.dumps({
            "pid": os.getpid(), "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:300]}), encoding="utf-8")
        yield
    finally:
        lock.release()
