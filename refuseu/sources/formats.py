"""Source file formats: JSONL, CSV and Parquet files and Hugging Face datasets read in chunks
of rows (each chunk a polars frame of the file's own columns), with the errors that name the
file and line; and the spec forms a source may take.

:mod:`refuseu.sources.readers` conforms and validates what these read.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Iterator, NoReturn

import polars as pl

from refuseu.errors import BuildError, InputError

if TYPE_CHECKING:
    from refuseu.sources.readers import _Conformer


CSV_DELIMITERS = (",", ";", "\t")
BOM = b"\xef\xbb\xbf"
ALLOWED_SOURCES = "'seed', a .jsonl, .csv or .parquet file, or hf:owner/name[:config][@revision]"
# Values polars turns into text when a JSON column mixes strings with other types.
_COERCED = r"(?s)^(-?\d+(\.\d+)?([eE][+-]?\d+)?|true|false|[\[{].*)$"
# What reading a file with polars may raise: its errors, and a panic (not an Exception).
_POLARS_ERRORS = (Exception, pl.exceptions.PanicException)


def parse_hub_spec(spec: str) -> tuple[str, str, str]:
    """``hf:owner/name[:config][@revision]`` -> (owner/name, config or '', revision or '')."""
    body = spec[3:]
    name, _, revision = body.partition("@")
    name, _, config = name.partition(":")
    if name.count("/") != 1 or not all(name.split("/")) or "@" in revision:
        raise InputError(f"bad Hugging Face dataset spec '{spec}'", field="source",
                         hint="use hf:owner/name[:config][@revision]")
    return name, config, revision


def _open_error(e: OSError, spec: str) -> InputError:
    if isinstance(e, PermissionError):
        return InputError("cannot read the file (permission denied)", file=spec,
                          hint="make the file readable (e.g. chmod a+r) or give another file")
    if isinstance(e, IsADirectoryError):
        return InputError("is a folder, not a file", file=spec, hint=f"give {ALLOWED_SOURCES}")
    if isinstance(e, FileNotFoundError):
        return InputError("source file not found", file=spec, hint=f"give {ALLOWED_SOURCES}")
    return InputError(f"cannot read the file ({e.strerror or e})", file=spec)


def _sniff_delimiter(header: str) -> str:
    """The delimiter (',' ';' or tab) that splits the header line into the most fields."""
    best, width = ",", 1
    for d in CSV_DELIMITERS:
        n = len(next(csv.reader([header], delimiter=d), []))
        if n > width:
            best, width = d, n
    return best


def _open_source(path: Path, spec: str) -> BinaryIO:
    try:
        return open(path, "rb")
    except OSError as e:
        raise _open_error(e, spec) from None


def _physical_lines(f: BinaryIO, spec: str) -> Iterator[bytes]:
    """The file's lines (with their newline), a leading UTF-8 BOM removed; an empty file is
    an input error. Take lines with :func:`_take` (which reports read errors)."""
    try:
        first = f.readline()
    except OSError as e:
        raise _open_error(e, spec) from None
    if not first:
        raise InputError("the file is empty", file=spec, hint="give a file with at least one prompt row")
    if first.startswith(BOM):  # editors write it; it is valid UTF-8 and not part of the data
        first = first[len(BOM):]
    body = first.rstrip(b"\r\n")
    if b"\r" in body and sum(1 for part in body.split(b"\r") if part.strip()) > 1:
        raise InputError("the lines end in a carriage return alone (CR, old Mac style), which is not supported",
                         file=spec, line=1, hint="convert the line endings to LF or CRLF, e.g. "
                                                 "tr '\\r' '\\n' < old > new")
    return itertools.chain([first], f)  # no Python frame per line: millions of lines


def _take(lines: Iterator[bytes], n: int, spec: str) -> list[bytes]:
    try:
        return list(itertools.islice(lines, n))
    except OSError as e:
        raise _open_error(e, spec) from None


def check_utf8(data: bytes, spec: str, first_line: int) -> None:
    """An :class:`InputError` naming the line and byte where ``data`` (whose first line is
    ``first_line`` of ``spec``) stops being UTF-8, if it does."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = first_line + data.count(b"\n", 0, e.start)
        raise InputError(f"not valid UTF-8 ({e.reason} at byte {e.start})", file=spec, line=line,
                         hint="re-save the file as UTF-8") from None


def _only_blank_lines(spec: str) -> InputError:
    return InputError("the file has no rows (only blank lines)", file=spec,
                      hint="give a file with at least one prompt row")


def _jsonl_chunks(path: Path, spec: str, chunk_rows: int, conformer: _Conformer) -> Iterator[pl.DataFrame]:
    """JSON lines, ``chunk_rows`` physical lines at a time. ``__row`` is the physical line
    so that errors point at the line in an editor."""
    with _open_source(path, spec) as f:
        lines_iter = _physical_lines(f, spec)
        first_line, any_rows = 1, False
        while True:
            lines = _take(lines_iter, chunk_rows, spec)
            if not lines:
                break
            start, n_lines = first_line, len(lines)
            first_line += n_lines
            data = b"".join(lines)
            del lines  # the chunk's bytes are held once; lines are split again only when needed
            check_utf8(data, spec, start)
            if data.isspace():
                continue
            any_rows = True
            df = read_json_lines(data, spec, start, n_lines)
            text_column = conformer.mapping(df.columns)["text"]
            _check_json_text_type(df, data, start, spec, text_column)
            yield df
            del df, data  # not held while the next chunk is read
        if not any_rows:
            raise _only_blank_lines(spec)


def read_json_lines(data: bytes, spec: str, first_line: int = 1, n_lines: int | None = None) -> pl.DataFrame:
    """Whole JSON lines (valid UTF-8, not only whitespace) as a frame of their fields and
    ``__row``, the physical line of each record (``first_line`` is the line of the first
    one). A line that cannot be read raises :class:`InputError` naming it."""
    try:
        df = pl.read_ndjson(data, infer_schema_length=None)
    except _POLARS_ERRORS:
        _find_bad_json_line(spec, data, first_line)
    if n_lines is None:
        n_lines = data.count(b"\n") + (not data.endswith(b"\n"))
    if df.height == n_lines:  # no blank lines: record i is on line first_line + i
        return df.with_columns(pl.int_range(first_line, first_line + df.height, dtype=pl.Int64).alias("__row"))
    rows = [first_line + i for i, ln in enumerate(data.split(b"\n")[:n_lines]) if ln.strip()]
    if len(rows) != df.height:
        rows = list(range(first_line, first_line + df.height))
    return df.with_columns(pl.Series("__row", rows, dtype=pl.Int64))


def first_non_string(df: pl.DataFrame, data: bytes, first_line: int, column: str) -> tuple[int, object] | None:
    """(line, value) of the first JSON value of ``column`` that is not a string, in lines
    read by :func:`read_json_lines`. polars reads a column that mixes strings and numbers as
    text ("text": 5 -> "5"), so the JSON of the few rows whose value could be such a
    conversion is looked at; a column of numbers, lists or objects is found by its type."""
    if column not in df.columns or df.schema[column] == pl.Null:
        return None
    if df.schema[column] != pl.String:
        nonnull = df.filter(pl.col(column).is_not_null())
        return nonnull.select("__row", column).row(0) if nonnull.height else None
    suspects = df.filter(pl.col(column).str.contains(_COERCED)).get_column("__row").to_list()
    if not suspects:
        return None
    lines = data.split(b"\n")
    for row in suspects:
        try:
            value = json.loads(lines[row - first_line]).get(column)
        except (IndexError, ValueError, AttributeError, RecursionError):
            continue  # row numbers are approximate here; the check is best effort
        if value is not None and not isinstance(value, str):
            return row, value
    return None


def _check_json_text_type(df: pl.DataFrame, data: bytes, first_line: int, spec: str, column: str) -> None:
    if column not in df.columns or df.schema[column] != pl.String:
        return  # a column without any string is reported by _conform
    found = first_non_string(df, data, first_line, column)
    if found is not None:
        raise _not_text(found[1], spec, found[0], column)


def show_value(value) -> str:
    """``repr(value)``, cut to about 80 characters (a value may be a megabyte of text)."""
    try:
        text = repr(value)
    except RecursionError:
        return "a deeply nested value"
    return text if len(text) <= 80 else f"{text[:60]}...{text[-12:]}"


def value_kind(value) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", list: "a list", dict: "an object",
            str: "a string", type(None): "null"}.get(
        type(value), f"a {type(value).__name__}")


def _not_text(value, spec: str, row: int | None, column: str) -> InputError:
    return InputError(f"the prompt text must be a string, found {value_kind(value)} ({show_value(value)})",
                      file=spec, line=row, field=column,
                      hint="quote the value, or map another column with sources[].columns")


# polars cannot read these JSON values (json.loads can): found by the hooks below.
class _Unreadable(Exception):
    pass


def _int_polars_reads(s: str) -> int:
    digits = len(s.lstrip("-"))
    if digits > 39 or not -(1 << 127) <= int(s) < (1 << 127):
        shown = s if len(s) <= 24 else f"{s[:10]}...{s[-4:]}"
        raise _Unreadable(f"the number {shown} ({digits} digits) is too large to read")
    return int(s)


def _float_polars_reads(s: str) -> float:
    value = float(s)
    if math.isinf(value):
        shown = s if len(s) <= 24 else f"{s[:10]}...{s[-4:]}"
        raise _Unreadable(f"the number {shown} is too large to read")
    return value


def _no_constant(s: str):
    raise _Unreadable(f"{s} is not a JSON value")


def parse_json_line(raw: bytes, spec: str, line: int):
    """One JSON line as Python values; what neither json nor polars can read is an
    :class:`InputError` naming the line."""
    try:
        return json.loads(raw, parse_int=_int_polars_reads, parse_float=_float_polars_reads,
                          parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise InputError(f"invalid JSON: {e.msg} (column {e.colno})", file=spec, line=line,
                         hint="each line must be one JSON object") from None
    except RecursionError:
        raise InputError("invalid JSON: lists or objects nested too deeply to read", file=spec, line=line,
                         hint="each line must be one JSON object with fewer levels of nesting") from None
    except _Unreadable as e:
        raise InputError(str(e), file=spec, line=line,
                         hint="quote the value (a string), write null, or leave the field out") from None
    except ValueError as e:
        raise InputError(f"invalid JSON: {e}", file=spec, line=line,
                         hint="each line must be one JSON object") from None


def _find_bad_json_line(spec: str, data: bytes, first_line: int) -> NoReturn:
    """Raise the InputError for the first line of ``data`` that polars could not read."""
    lines = data.split(b"\n")
    for i, raw in enumerate(lines, start=first_line):
        if not raw.strip():
            continue
        if i == 1 and raw.lstrip().startswith(b"["):
            raise InputError("each line must be a JSON object, and this file is a JSON array", file=spec, line=i,
                             hint="write one object per line (JSON lines), e.g. with jq -c '.[]' in.json > out.jsonl")
        obj = parse_json_line(raw, spec, i)
        if not isinstance(obj, dict):
            raise InputError(f"each line must be a JSON object, found {value_kind(obj)}", file=spec, line=i,
                             hint='e.g. {"text": "...", "category": "..."}')
    # Every line reads alone: the first line that cannot be read with the lines before it.
    def error(n: int) -> BaseException | None:
        block = b"\n".join(lines[:n])
        if not block.strip():
            return None
        try:
            pl.read_ndjson(block, infer_schema_length=None)
        except _POLARS_ERRORS as e:
            return e
        return None

    lo, hi = 0, len(lines)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if error(mid) is None:
            lo = mid
        else:
            hi = mid
    reason = str(error(hi) or "").strip().splitlines()
    reason = f" ({reason[0][:160]})" if reason else ""
    raise InputError(f"this line cannot be read together with the lines before it{reason}", file=spec,
                     line=first_line + hi - 1,
                     hint="each line must be one JSON object, with the same type for a field on every line")


def _csv_chunks(path: Path, spec: str, chunk_rows: int) -> Iterator[pl.DataFrame]:
    """CSV records, about ``chunk_rows`` physical lines at a time, each chunk parsed by
    polars after the file's header lines (so every chunk parses as it would in the whole
    file). A chunk ends only where the count of '"' is even: a quoted field may span lines.
    ``__row`` is the record number + 1 (the header is line 1); quoted fields with newlines
    make it approximate, which is fine for error messages."""
    with _open_source(path, spec) as f:
        lines_iter = _physical_lines(f, spec)
        header: list[bytes] = []
        ahead: list[bytes] = []
        while not header or not header[-1].rstrip(b"\r\n"):  # polars skips empty lines before the header
            ln = _take(lines_iter, 1, spec)
            if not ln:
                break
            header += ln
        if not header[-1].strip():  # only whitespace so far: is there anything but whitespace?
            while not (ahead and ahead[-1].strip()):
                ln = _take(lines_iter, 1, spec)
                if not ln:
                    check_utf8(b"".join(header + ahead), spec, 1)
                    raise _only_blank_lines(spec)
                ahead += ln
            lines_iter = itertools.chain(ahead, lines_iter)
        header += _to_even_quotes(lines_iter, b"".join(header), spec, step=1)  # a quoted name with a newline
        head = b"".join(header)
        check_utf8(head, spec, 1)
        # ',' ';' or tab: whichever splits the header line into the most fields.
        sniffed = b"".join(header + ahead)[:1 << 16].decode("utf-8", errors="replace")
        sep = _sniff_delimiter(next((ln for ln in sniffed.splitlines() if ln.strip()), ""))
        first_line, record = 1 + len(header), 0
        while True:
            lines = _take(lines_iter, chunk_rows, spec)
            if not lines:
                break
            data = b"".join(lines)
            more = _to_even_quotes(lines_iter, data, spec)  # ends inside a quoted field: read to its end
            if more:
                lines += more
                data = b"".join(lines)
            n_lines = len(lines)
            del lines
            start, first_line = first_line, first_line + n_lines
            check_utf8(data, spec, start)
            try:
                df = pl.read_csv(head + data, infer_schema=False, has_header=True, separator=sep)
            except _POLARS_ERRORS as e:
                raise _csv_error(path, spec, sep, e) from None
            df = df.with_columns(pl.int_range(record + 2, record + 2 + df.height, dtype=pl.Int64).alias("__row"))
            record += df.height
            yield df
            del df, data  # not held while the next chunk is read


def _to_even_quotes(lines: Iterator[bytes], data: bytes, spec: str, *, step: int = 64) -> list[bytes]:
    """The lines after ``data`` up to where its count of '"' is even (none when it is):
    ``step`` lines at a time, so the count may turn even before the last one."""
    out: list[bytes] = []
    odd = data.count(b'"') % 2
    while odd:
        more = _take(lines, step, spec)
        if not more:
            break
        out += more
        odd ^= b"".join(more).count(b'"') % 2
    return out


def _csv_error(path: Path, spec: str, sep: str, error: BaseException) -> InputError:
    """Locate the bad record with the csv module (read from the start, line by line)."""
    start = 1
    try:
        with open(path, encoding="utf-8-sig", newline="\n") as f:
            reader = csv.reader(f, delimiter=sep, strict=True)
            width = None
            try:
                for rec in reader:
                    if not rec:  # a blank line (polars skips it too)
                        start = reader.line_num + 1
                        continue
                    width = width or len(rec)
                    if len(rec) != width:
                        return InputError(f"expected {width} fields, found {len(rec)}", file=spec, line=start,
                                          hint="quote a field that holds the delimiter ('{}')".format(
                                              "tab" if sep == "\t" else sep))
                    start = reader.line_num + 1
            except csv.Error as e:
                if "unexpected end of data" in str(e):
                    return InputError("a quoted field is never closed (no closing '\"')", file=spec, line=start,
                                      hint='close the quote; a quote inside a quoted field is written twice ("")')
                return InputError(f"bad CSV ({e})", file=spec, line=reader.line_num,
                                  hint='a quoted field ends with \'"\' before the delimiter; a quote inside it '
                                       'is written twice ("")')
    except (OSError, UnicodeDecodeError):
        pass
    reason = str(error).strip().splitlines()
    return InputError(f"could not parse CSV ({reason[0][:160] if reason else type(error).__name__})", file=spec,
                      hint='each record needs the header\'s number of fields; quote fields that hold the '
                           'delimiter, a quote or a newline')


def _parquet_chunks(path: Path, spec: str, chunk_rows: int) -> Iterator[pl.DataFrame]:
    """Parquet rows ``chunk_rows`` at a time (polars reads only the pages a slice needs)."""
    with _open_source(path, spec) as f:  # readable at all? (polars' own errors do not say)
        try:
            empty = not f.read(1)
        except OSError as e:
            raise _open_error(e, spec) from None
    if empty:
        raise InputError("the file is empty", file=spec, hint="give a Parquet file with at least one row")
    try:
        scan = pl.scan_parquet(path, glob=False)  # a name with [ ] * ? is a name, not a pattern
        total = scan.select(pl.len()).collect().item()
    except _POLARS_ERRORS as e:
        raise parquet_error(e, spec) from None
    for start in range(0, total, chunk_rows):
        try:
            df = scan.slice(start, chunk_rows).collect()
        except _POLARS_ERRORS as e:
            raise parquet_error(e, spec) from None
        yield df.with_columns(pl.int_range(start + 1, start + df.height + 1, dtype=pl.Int64).alias("__row"))


def parquet_error(error: BaseException, spec: str, *, field: str | None = None) -> InputError:
    reason = str(error).strip().splitlines()
    reason = reason[0][:160] if reason else type(error).__name__
    return InputError(f"not a readable Parquet file ({reason})", file=spec, field=field,
                      hint="the file may be damaged or not Parquet: write it again with polars, pandas or pyarrow")


def _hub_chunks(spec: str, *, split: str, chunk_rows: int, commit: str | None = None) -> Iterator[pl.DataFrame]:
    """A Hub dataset split ``chunk_rows`` rows at a time. ``datasets`` keeps the split as
    memory-mapped Arrow files in its cache, so a slice costs only the rows in it."""
    name, config, revision = parse_hub_spec(spec)
    if commit is None:
        from refuseu.sources.hub import resolve_commit
        commit = resolve_commit(name, revision, spec=spec)
    revision = commit
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is a core dependency
        raise BuildError("reading a Hub dataset needs the 'datasets' package") from None
    try:
        ds = datasets.load_dataset(name, config or None, revision=revision or None, split=split)
    except Exception as e:
        raise BuildError(f"could not load Hugging Face dataset '{name}' (split '{split}'): "
                         f"{type(e).__name__}: {e}",
                         hint="check the name and your network/HF_TOKEN, or download it once and run "
                              "with HF_DATASETS_OFFLINE=1 from the cache") from None
    table = ds.data.table
    if table.num_rows == 0:
        raise InputError(f"the dataset split '{split}' has no rows", file=spec,
                         hint="choose another split with sources[].split")
    for start in range(0, table.num_rows, chunk_rows):
        df = pl.from_arrow(table.slice(start, chunk_rows))
        yield df.with_columns(pl.int_range(start + 1, start + df.height + 1, dtype=pl.Int64).alias("__row"))
