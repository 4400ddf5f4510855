"""Progress and stage reports on stderr (rich), silenced with ``quiet``."""

from __future__ import annotations

import sys
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class Reporter:
    def __init__(self, *, quiet: bool = False):
        self.quiet = quiet
        self.console = Console(file=sys.stderr, highlight=False, soft_wrap=True)

    def info(self, message: str) -> None:
        if not self.quiet:
            self.console.print(message)

    def warn(self, message: str) -> None:
        # Warnings are shown even when quiet: they describe the data.
        self.console.print(f"[yellow]warning:[/yellow] {message}")

    @contextmanager
    def bar(self, description: str, total: int):
        # A bar only on a terminal: elsewhere (a log file, a pipe) rich draws nothing while it
        # runs and leaves an empty line where it stood.
        if self.quiet or total <= 0 or not self.console.is_terminal:
            yield _Silent()
            return
        with Progress(TextColumn("  {task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=self.console, transient=True) as p:
            task = p.add_task(description, total=total)
            yield _Bar(p, task)


class _Silent:
    def update(self, n: int = 1) -> None:
        pass


class _Bar:
    def __init__(self, progress: Progress, task):
        self._p, self._t = progress, task

    def update(self, n: int = 1) -> None:
        self._p.advance(self._t, n)
