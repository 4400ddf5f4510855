"""Read and validate prompt sources."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import polars as pl

from refuseu.config import SourceConfig
from refuseu.errors import BuildError, InputError
from refuseu.release.manifest import sha256_file
from refuseu.resources import seed_prompts_path
from refuseu.taxonomy import Taxonomy, load_taxonomy

RAW_COLUMNS = ("text", "kind", "category", "attack_style", "source", "source_row")
FIELDS = ("text", "kind", "category", "attack_style")
KINDS = ("harmful", "benign")
FILE_KINDS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet"}


def fingerprint_source(src: SourceConfig) -> dict:
    """What identifies a source's content, for the build signature (cheap: no parsing)."""
    spec = src.spec
    base = src.model_dump(mode="json")
    if spec == "seed":
        return {**base, "sha256": sha256_file(seed_prompts_path())}
    if spec.startswith("hf:"):
        return base  # revision pinned in the spec ('@rev') makes it reproducible
    path = Path(spec)
    if not path.exists():
        raise InputError("source file not found", file=spec,
                         hint="give an existing .jsonl, .csv or .parquet file, 'seed', or hf:owner/name")
    return {**base, "sha256": sha256_file(path)}


def read_sources(sources: list[SourceConfig], *, taxonomy: Taxonomy | None = None) -> pl.DataFrame:
    frames = [read_source(s, taxonomy=taxonomy) for s in sources]
    return pl.concat(frames, how="vertical") if frames else pl.DataFrame(schema=_raw_schema())


def _raw_schema() -> dict:
    return {"text": pl.String, "kind": pl.String, "category": pl.String, "attack_style": pl.String,
            "source": pl.String, "source_row": pl.Int64}


def read_source(src: SourceConfig, *, taxonomy: Taxonomy | None = None) -> pl.DataFrame:
    """Read one source into the raw-prompt columns; bad input raises :class:`InputError`."""
    taxonomy = taxonomy or load_taxonomy()
    spec = src.spec
    if spec == "seed":
        df, label = _read_jsonl(seed_prompts_path()), "seed"
    elif spec.startswith("hf:"):
        df, label = _read_hub(spec, split=src.split), spec
    else:
        path = Path(spec)
        fmt = FILE_KINDS.get(path.suffix.lower())
        if fmt is None:
            raise InputError(f"unsupported file type '{path.suffix}'", file=spec,
                             hint="use .jsonl, .csv or .parquet")
        if not path.exists():
            raise InputError("source file not found", file=spec)
        reader = {"jsonl": _read_jsonl, "csv": _read_csv, "parquet": _read_parquet}[fmt]
        df, label = reader(path), spec
    return _conform(df, src, label=label, taxonomy=taxonomy)


# --- readers -------------------------------------------------------------------------

def _check_utf8(path: Path) -> bytes:
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise InputError(f"not valid UTF-8 ({e.reason} at byte {e.start})", file=str(path), line=line,
                         hint="re-save the file as UTF-8") from None
    return data


def _read_jsonl(path: Path) -> pl.DataFrame:
    data = _check_utf8(path)
    # Rows are numbered by physical line so that errors point at the line in an editor.
    try:
        df = pl.read_ndjson(io.BytesIO(data), infer_schema_length=None)
    except Exception:
        _find_bad_json_line(path, data)
        raise
    n_lines = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
    if n_lines == df.height:  # no blank lines: record i is on line i
        return df.with_columns(pl.int_range(1, df.height + 1, dtype=pl.Int64).alias("__row"))
    lines = [i + 1 for i, ln in enumerate(data.split(b"\n")) if ln.strip()]
    if len(lines) != df.height:
        lines = list(range(1, df.height + 1))
    return df.with_columns(pl.Series("__row", lines, dtype=pl.Int64))


def _find_bad_json_line(path: Path, data: bytes) -> None:
    for i, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as e:
            raise InputError(f"invalid JSON: {e.msg} (column {e.colno})", file=str(path), line=i,
                             hint="each line must be one JSON object") from None
        if not isinstance(obj, dict):
            raise InputError("each line must be a JSON object", file=str(path), line=i)
    raise InputError("could not read the file as JSON lines", file=str(path))


def _read_csv(path: Path) -> pl.DataFrame:
    data = _check_utf8(path)
    try:
        df = pl.read_csv(io.BytesIO(data), infer_schema=False, has_header=True)
    except Exception as e:  # locate the bad record with the csv module for the message
        reader = csv.reader(io.StringIO(data.decode("utf-8")))
        width = None
        for rec in reader:
            width = width or len(rec)
            if len(rec) != width:
                raise InputError(f"expected {width} fields, found {len(rec)}", file=str(path),
                                 line=reader.line_num) from None
        raise InputError(f"could not parse CSV: {e}", file=str(path)) from None
    # Header is line 1; quoted fields with newlines make this approximate, which is fine
    # for error messages.
    return df.with_columns(pl.int_range(2, df.height + 2, dtype=pl.Int64).alias("__row"))


def _read_parquet(path: Path) -> pl.DataFrame:
    try:
        df = pl.read_parquet(path)
    except Exception as e:
        raise InputError(f"not a readable Parquet file ({e})", file=str(path)) from None
    return df.with_columns(pl.int_range(1, df.height + 1, dtype=pl.Int64).alias("__row"))


def _read_hub(spec: str, *, split: str) -> pl.DataFrame:
    body = spec[3:]
    name, _, revision = body.partition("@")
    name, _, config = name.partition(":")
    if name.count("/") != 1:
        raise InputError(f"bad Hugging Face dataset spec '{spec}'", field="source",
                         hint="use hf:owner/name[:config][@revision]")
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
    df = pl.from_arrow(ds.data.table)
    return df.with_columns(pl.int_range(1, df.height + 1, dtype=pl.Int64).alias("__row"))


# --- conform and validate --------------------------------------------------------------

def _conform(df: pl.DataFrame, src: SourceConfig, *, label: str, taxonomy: Taxonomy) -> pl.DataFrame:
    mapping = {f: src.columns.get(f, f) for f in FIELDS}
    unknown = set(src.columns) - set(FIELDS)
    if unknown:
        raise InputError(f"unknown field(s) in column mapping: {sorted(unknown)}", file=label,
                         field="columns", hint=f"map any of: {', '.join(FIELDS)}")
    defaults = {"kind": src.kind, "category": src.category, "attack_style": src.attack_style}
    cols = {}
    for field in FIELDS:
        col = mapping[field]
        if col in df.columns:
            cols[field] = pl.col(col).cast(pl.String)
        elif field == "text" or (field == "category" and src.category is None):
            raise InputError(f"missing required column '{col}'", file=label, field=field,
                             hint=f"columns found: {', '.join(c for c in df.columns if c != '__row')}; "
                                  f"map yours with sources[].columns or set a default ({field}: ...)")
        else:
            default = defaults.get(field) or ("harmful" if field == "kind" else None)
            cols[field] = pl.lit(default, dtype=pl.String)
    out = df.select(**cols, source=pl.lit(label), source_row=pl.col("__row"))
    return _validate_values(out, label=label, taxonomy=taxonomy)


def _validate_values(df: pl.DataFrame, *, label: str, taxonomy: Taxonomy) -> pl.DataFrame:
    def first_bad(mask: pl.Expr, field: str, allowed: tuple[str, ...], what: str):
        bad = df.filter(mask)
        if bad.height:
            row = bad.row(0, named=True)
            raise InputError(f"unknown {what} {row[field]!r}", file=label,
                             line=row["source_row"], field=field,
                             hint=f"allowed: {', '.join(allowed)}")

    df = df.with_columns(pl.col("kind").str.strip_chars().str.to_lowercase())
    first_bad(pl.col("kind").is_null() | ~pl.col("kind").is_in(KINDS), "kind", KINDS, "kind")
    # Map display names and Llama Guard codes to ids (only over the distinct values).
    for field, norm, allowed, what in (
        ("category", taxonomy.normalize_category, taxonomy.categories, "category"),
        ("attack_style", taxonomy.normalize_style, taxonomy.attack_styles, "attack style"),
    ):
        values = df.get_column(field).drop_nulls().unique().to_list()
        table = {v: norm(v) for v in values}
        bad = [v for v, m in table.items() if m is None]
        if bad:
            first_bad(pl.col(field).is_in(bad), field, allowed, what)
        if any(k != v for k, v in table.items()):
            df = df.with_columns(pl.col(field).replace_strict(table, default=None, return_dtype=pl.String))
    first_bad(pl.col("category").is_null(), "category", taxonomy.categories, "category")
    return df
