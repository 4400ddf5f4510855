"""One-command library functions over a curator's own files (``refuseu langid``, ``judge``,
``score``, ``translate``): each reads a JSONL, runs one engine, writes a JSONL."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from refuseu.errors import BuildError, InputError


def check_output_file(out: str | Path, *, flag: str = "--out", stdout: bool = True) -> None:
    """Fail with an :class:`InputError` (exit 2) unless the file ``out`` can be written: not a
    folder, its folder a folder or creatable (checked as ``build`` checks its ``--out``
    folder) and writable, the file writable if it exists. Writes nothing, so it runs before
    any model is loaded. ``flag`` names the option in the message; ``stdout``: ``-`` means
    standard output."""
    from refuseu.paths import check_folder

    if stdout and str(out) == "-":
        return
    path = Path(out).expanduser()
    where = f"{flag} '{out}'"
    hint = f"give {flag} a file in a writable folder (a missing folder is created)" + \
        (", or '-' for stdout" if stdout else "")
    if path.is_dir():
        raise InputError(f"{where}: is a folder, not a file", hint=hint)
    try:
        check_folder(str(path.parent), f"{where}: its folder")
    except InputError as e:
        raise InputError(e.message, hint=hint) from None
    if path.exists() and not os.access(path, os.W_OK):
        raise InputError(f"{where}: the file exists and is not writable", hint=hint)


def check_row_lang(value: object, *, file: str | Path, line: int) -> None:
    """A row's ``lang``: a known ISO 639-1 code, or an :class:`InputError` naming file, line and field."""
    from refuseu.languages import LANGUAGES

    if not isinstance(value, str):
        raise InputError(f"a language code is a string (got {type(value).__name__} {value!r})", file=str(file),
                         line=line, field="lang")
    if value not in LANGUAGES:
        raise InputError(f"unknown language code {value!r}", file=str(file), line=line, field="lang",
                         hint=f"use an ISO 639-1 code from: {', '.join(sorted(LANGUAGES))}")


@contextmanager
def output_sink(out: str | Path) -> Iterator[TextIO]:
    """The open output (``-``: stdout); a missing folder on the way is created."""
    if str(out) == "-":
        yield sys.stdout
        return
    path = Path(out).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        sink = open(path, "w", encoding="utf-8")
    except OSError as e:
        raise InputError(f"cannot write the output file: {e.strerror or e}", file=str(out),
                         hint="give --out a file in a writable folder, or '-' for stdout") from None
    try:
        with sink:
            yield sink
    except OSError as e:   # e.g. the disk is full
        raise BuildError(f"{out}: writing the output failed: {e.strerror or e}") from None
