"""Read and validate prompt sources.

Every source gets a stable, portable label that goes into the released ``source``
column and the build signature: ``seed``, a local file's name (no folders), or
``hf:owner/name[:config]@revision``. Error messages name the source as the user gave it.
"""

from __future__ import annotations

import csv
import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import polars as pl

from refuseu.config import SourceConfig
from refuseu.errors import InputError
from refuseu.resources import schemas_dir, seed_prompts_path
from refuseu.sources.formats import (ALLOWED_SOURCES, BOM, _csv_chunks, _hub_chunks, _jsonl_chunks, _not_text,
                                     _open_error, _parquet_chunks, _sniff_delimiter, parse_hub_spec,
                                     show_value)
from refuseu.taxonomy import UNCATEGORIZED, Taxonomy, label_key, load_taxonomy

RAW_COLUMNS = ("text", "kind", "category", "attack_style", "hint", "source", "source_row")
FIELDS = ("text", "kind", "category", "attack_style")
KINDS = ("harmful", "benign")
# Optional per-row response hints: a row field ``urgent: true`` (a medical emergency happening
# now: the refusal says to call 112) or ``domain`` (medical | legal | financial: which
# professional a specialized-advice refusal points to). Carried as one column, ``hint``.
DOMAINS = ("medical", "legal", "financial")
FILE_KINDS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "csv",
              ".parquet": "parquet"}
# Column names recognized without a mapping (case-insensitive); two matches are an error.
COLUMN_NAMES = {
    "text": ("text", "prompt", "question", "instruction", "goal", "behavior", "query", "input"),
    "category": ("category", "hazard", "harm_category", "label", "harm", "category_name", "hazard_category",
                 "harm_type", "risk_category", "violated_categories"),
    "kind": ("kind",),
    "attack_style": ("attack_style",),
}


# --- labels and fingerprints ----------------------------------------------------------


def source_label(spec: str) -> str:
    """The portable name of a source: ``seed``, the file name, or ``hf:owner/name[:config]@revision``."""
    if spec == "seed":
        return "seed"
    if spec.startswith("hf:"):
        name, config, revision = parse_hub_spec(spec)
        return f"hf:{name}{':' + config if config else ''}@{revision or 'main'}"
    return Path(spec).name


def fingerprint_source(src: SourceConfig) -> dict:
    """What identifies a source's content, for the build signature and the manifest.

    Holds no local path: ``label``, ``bytes`` (None for Hub datasets), ``sha256`` (None
    for Hub datasets, whose revision is in the label) and the source settings other than
    ``spec``. Cheap (no parsing), but it checks that a local file can be used at all.
    """
    settings = src.model_dump(mode="json", exclude={"spec"})
    # Label settings appear only when used, so that sources without them keep their signature.
    for key in ("category_map", "preset"):
        if not settings.get(key):
            settings.pop(key, None)
    if src.preset:
        settings["preset_definition"] = preset_definition(src.preset)
    spec = src.spec
    if spec == "seed":
        path = seed_prompts_path()
        size, digest, _ = _hash_file(path, "seed")
        return {"label": "seed", "bytes": size, "sha256": digest, **settings}
    # How a user's labels map to categories depends on the alias tables.
    settings["aliases"] = load_taxonomy().alias_digest
    if spec.startswith("hf:"):
        from refuseu.sources.hub import resolve_commit

        name, _, revision = parse_hub_spec(spec)
        # The commit the build reads: a moving branch changes the signature, never the rows under it.
        commit = resolve_commit(name, revision, spec=spec)
        return {"label": source_label(spec), "bytes": None, "sha256": None, "commit": commit, **settings}
    path, fmt = _check_local_file(spec)
    size, digest, blank = _hash_file(path, spec)
    if size == 0:
        raise InputError("the file is empty", file=spec, hint="give a file with at least one prompt row")
    if blank and fmt != "parquet":
        raise InputError("the file has no rows (only blank lines)", file=spec,
                         hint="give a file with at least one prompt row")
    return {"label": path.name, "bytes": size, "sha256": digest, **settings}


def check_sources(sources: list[SourceConfig]) -> None:
    """Cheap checks of every source before a build starts (no hashing, no parsing): a Hub
    spec is well formed; a local file exists, is a readable file of a known type and holds
    more than blank lines. Raises :class:`InputError` naming the source as given."""
    for src in sources:
        spec = src.spec
        _check_label_settings(src)
        if spec == "seed":
            continue
        if spec.startswith("hf:"):
            parse_hub_spec(spec)
            continue
        path, fmt = _check_local_file(spec)
        try:
            with open(path, "rb") as f:
                block, blank, first = f.read(1 << 16), True, True
                if not block:
                    raise InputError("the file is empty", file=spec, hint="give a file with at least one prompt row")
                while block and blank:  # stops at the first non-blank byte (the first block, usually)
                    body = block[len(BOM):] if first and block.startswith(BOM) else block
                    blank, first = not body.strip(), False
                    block = f.read(1 << 20) if blank else b""
        except OSError as e:
            raise _open_error(e, spec) from None
        if blank and fmt != "parquet":
            raise InputError("the file has no rows (only blank lines)", file=spec,
                             hint="give a file with at least one prompt row")


def _check_local_file(spec: str) -> tuple[Path, str]:
    if not spec.strip():
        raise InputError("empty source", field="source", hint=f"give {ALLOWED_SOURCES}")
    path = Path(spec)
    if path.is_dir():
        raise InputError("is a folder, not a file", file=spec, hint=f"give {ALLOWED_SOURCES}")
    fmt = FILE_KINDS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"unsupported file type '{path.suffix}'" if path.suffix else "the file has no extension",
                         file=spec, hint=f"give {ALLOWED_SOURCES}")
    if not path.exists():
        raise InputError("source file not found", file=spec, hint=f"give {ALLOWED_SOURCES}")
    if not path.is_file():
        raise InputError("not a regular file", file=spec, hint=f"give {ALLOWED_SOURCES}")
    return path, fmt


def _hash_file(path: Path, spec: str) -> tuple[int, str, bool]:
    """(size, sha256, whether it holds only whitespace and a BOM) in one pass."""
    h, size, blank, first = hashlib.sha256(), 0, True, True
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
                size += len(block)
                if blank:
                    body = block[len(BOM):] if first and block.startswith(BOM) else block
                    blank = not body.strip()
                first = False
    except OSError as e:
        raise _open_error(e, spec) from None
    return size, h.hexdigest(), blank


# --- presets, column names and category labels -----------------------------------------

@lru_cache(maxsize=1)
def load_presets() -> dict:
    """``schemas/presets.yaml``: preset name -> {columns, taxonomy, category_map, kind, ...}."""
    import yaml

    path = schemas_dir() / "presets.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else {}
    return data or {}


def preset_definition(name: str) -> dict:
    presets = load_presets()
    key = name.strip().lower().replace("_", "-")
    if key not in presets:
        raise InputError(f"unknown preset '{name}'", field="preset",
                         hint=f"known presets: {', '.join(sorted(presets))} (schemas/presets.yaml)")
    return presets[key]


def _check_label_settings(src: SourceConfig, taxonomy: Taxonomy | None = None) -> None:
    """A source's preset exists and every category_map target is a category."""
    taxonomy = taxonomy or load_taxonomy()
    if src.preset:
        preset_definition(src.preset)
    extra = _category_map(src, taxonomy)
    if src.category and taxonomy.normalize_category(src.category, extra=extra,
                                                    prefer=_preset_taxonomies(src)) is None:
        closest = taxonomy.closest_labels(src.category)
        near = f"closest known labels: {', '.join(repr(c) for c in closest)}; " if closest else ""
        raise InputError(f"unknown default category '{src.category}'", file=src.spec, field="category",
                         hint=f"{near}allowed category ids: {', '.join(taxonomy.categories)}")


def _category_map(src: SourceConfig, taxonomy: Taxonomy) -> dict[str, str]:
    """The preset's and then the source's category_map, targets as category ids."""
    merged = {}
    if src.preset:
        merged.update({str(k): str(v) for k, v in (preset_definition(src.preset).get("category_map") or {}).items()})
    merged.update(src.category_map)
    out = {}
    for label, target in merged.items():
        cat = taxonomy._lookup(target, taxonomy.categories)  # an id, display name or S-code
        if cat is None:
            raise InputError(f"category_map: '{label}' maps to unknown category '{target}'", field="category_map",
                             hint=f"allowed: {', '.join(taxonomy.categories)}")
        out[label] = cat
    return out


def _preset_taxonomies(src: SourceConfig) -> tuple[str, ...]:
    if not src.preset:
        return ()
    names = preset_definition(src.preset).get("taxonomy") or ()
    return tuple([names] if isinstance(names, str) else names)


def _column_mapping(src: SourceConfig) -> dict[str, str]:
    """The preset's columns, then the source's own (which win)."""
    cols = {}
    if src.preset:
        cols.update(preset_definition(src.preset).get("columns") or {})
    cols.update(src.columns)
    return cols


def resolve_columns(columns: list[str], src: SourceConfig, display: str, *,
                    pending: bool = False) -> dict[str, str | None]:
    """Which column holds each field: the mapped one (exact name, else the only one that
    matches case-insensitively), else the only column whose name is one of
    :data:`COLUMN_NAMES` (case-insensitive); None: the file has no such column.

    Two candidate columns for one field, or a mapped column that is not there, are input
    errors naming the file and the candidates. ``pending``: more columns may come (JSON
    lines read in chunks), so a mapped column other than the text's that is not there yet
    resolves to None."""
    mapping = _column_mapping(src)
    unknown = set(mapping) - set(FIELDS)
    if unknown:
        raise InputError(f"unknown field(s) in column mapping: {sorted(unknown)}", file=display,
                         field="columns", hint=f"map any of: {', '.join(FIELDS)}")
    columns = [c for c in columns if c != "__row"]
    found = ", ".join(columns) or "none"
    flags = {"text": "--text-column", "category": "--category-column"}
    out: dict[str, str | None] = {}
    for field in FIELDS:
        how = f"{flags[field]} NAME or " if field in flags else ""
        if field in mapping:
            want = mapping[field]
            if want in columns:
                out[field] = want
                continue
            folded = [c for c in columns if c.lower() == want.lower()]
            if len(folded) == 1:
                out[field] = folded[0]
                continue
            if pending and field != "text" and not folded:
                out[field] = None
                continue
            what = f" (preset {src.preset})" if src.preset and field not in src.columns else ""
            raise InputError(f"missing required column '{want}'{what}", file=display, field=field,
                             hint=f"columns found: {found}; map yours with {how}sources[].columns "
                                  f"({field}: <column>)")
        hits = [c for c in columns if c.strip().lower() in COLUMN_NAMES[field]]
        if len(hits) > 1:
            listed = " and ".join(f"'{c}'" for c in hits)
            what = "the prompt text" if field == "text" else f"the {field}"
            raise InputError(f"two columns could hold {what}: {listed}", file=display, field=field,
                             hint=f"choose one with {how}sources[].columns ({field}: {hits[0]})")
        out[field] = hits[0] if hits else None
    if out["text"] is None:
        raise InputError("missing required column 'text'", file=display, field="text",
                         hint=f"columns found: {found}; recognized names: {', '.join(COLUMN_NAMES['text'])}; "
                              f"map yours with --text-column NAME or sources[].columns (text: <column>)")
    return out


def source_columns(src: SourceConfig) -> list[str] | None:
    """The column names of a local source, read cheaply (CSV header, the keys of the first
    JSON lines, Parquet schema); None for the seed, Hub datasets and files that cannot be
    read this way (the build reports those)."""
    spec = src.spec
    if spec == "seed" or spec.startswith("hf:"):
        return None
    try:
        path, fmt = _check_local_file(spec)
        if fmt == "parquet":
            with open(path, "rb") as f:  # an open file: polars would read a path with [ ] as a pattern
                return list(pl.read_parquet_schema(f))
        if fmt == "csv":
            with open(path, "rb") as f:
                head = f.read(1 << 20)
            if head.startswith(BOM):
                head = head[len(BOM):]
            text = head.decode("utf-8", errors="replace")
            first = next((ln for ln in text.splitlines() if ln.strip()), "")
            return next(csv.reader([first], delimiter=_sniff_delimiter(first)), [])
        # The keys of the first JSON lines: whole lines (a first line may be longer than the
        # budget), up to 1000 lines or 1 MiB. A line that is not one JSON object: unknown.
        keys: dict[str, None] = {}
        budget, seen = 1 << 20, 0
        with open(path, "rb") as f:
            for n, raw in enumerate(f):
                if n == 0 and raw.startswith(BOM):
                    raw = raw[len(BOM):]
                if raw.strip():
                    obj = json.loads(raw.decode("utf-8"))
                    if not isinstance(obj, dict):
                        return None
                    keys.update(dict.fromkeys(obj))
                seen += len(raw)
                if n >= 999 or seen >= budget:
                    break
        return list(keys)
    except (Exception, RecursionError, pl.exceptions.PanicException):  # noqa: BLE001 - reading reports it
        return None


def describe_columns(src: SourceConfig) -> str | None:
    """One line for the build output: which columns a local source's fields come from.
    Raises the same InputError as reading would for ambiguous or missing columns."""
    columns = source_columns(src)
    if columns is None:
        return None
    cols = resolve_columns(columns, src, src.spec)
    parts = [f"text from column '{cols['text']}'"]
    if cols["category"]:
        parts.append(f"category from '{cols['category']}'")
    elif src.category:
        parts.append(f"no category column (every row: {src.category})")
    else:
        parts.append(f"no category column (rows count as {UNCATEGORIZED})")
    parts += [f"{f} from '{cols[f]}'" for f in ("kind", "attack_style") if cols[f]]
    if src.preset:
        parts.append(f"preset {src.preset}")
    return f"source {source_label(src.spec)}: " + ", ".join(parts)


# --- reading ---------------------------------------------------------------------------
# Sources are read in chunks of at most ``chunk_rows`` rows, so that memory follows the
# chunk and not the file. Every chunk is read, conformed and validated on its own; the
# chunks of a source, concatenated, are exactly the rows a whole-file read gives.

#: Rows per chunk when a caller reads whole tables (read_sources, read_source).
READ_CHUNK_ROWS = 100_000


def iter_sources(sources: list[SourceConfig], chunk_rows: int = READ_CHUNK_ROWS, *,
                 taxonomy: Taxonomy | None = None) -> Iterator[pl.DataFrame]:
    """The rows of every source, in order, as tables of at most ``chunk_rows`` rows with the
    raw-prompt columns (a chunk ends where a source ends, so it may be shorter). Bad input
    raises :class:`InputError` naming the file, line and field when the chunk holding it is
    read (rows of earlier chunks have been yielded by then)."""
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    taxonomy = taxonomy or load_taxonomy()
    for src in sources:
        yield from iter_source(src, chunk_rows, taxonomy=taxonomy)


def read_sources(sources: list[SourceConfig], *, taxonomy: Taxonomy | None = None) -> pl.DataFrame:
    """Every source as one table (the chunks of :func:`iter_sources`, concatenated)."""
    return _concat(list(iter_sources(sources, taxonomy=taxonomy)))


def read_source(src: SourceConfig, *, taxonomy: Taxonomy | None = None) -> pl.DataFrame:
    """Read one source into the raw-prompt columns; bad input raises :class:`InputError`."""
    return _concat(list(iter_source(src, READ_CHUNK_ROWS, taxonomy=taxonomy)))


def _concat(frames: list[pl.DataFrame]) -> pl.DataFrame:
    # One chunk: polars 2.1 panics in pl.format over a filtered multi-chunk string column.
    return pl.concat(frames, how="vertical", rechunk=True) if frames else pl.DataFrame(schema=_raw_schema())


def _raw_schema() -> dict:
    return {"text": pl.String, "kind": pl.String, "category": pl.String, "attack_style": pl.String,
            "hint": pl.String, "source": pl.String, "source_row": pl.Int64}


def empty_raw() -> pl.DataFrame:
    """A table with the raw-prompt columns and no rows."""
    return pl.DataFrame(schema=_raw_schema())


def iter_source(src: SourceConfig, chunk_rows: int = READ_CHUNK_ROWS, *,
                taxonomy: Taxonomy | None = None) -> Iterator[pl.DataFrame]:
    """One source's rows in chunks of at most ``chunk_rows`` (see :func:`iter_sources`)."""
    taxonomy = taxonomy or load_taxonomy()
    spec = src.spec
    conformer = _Conformer(src, label=source_label(spec), display=spec, taxonomy=taxonomy,
                           columns_known=False)
    fmt = "jsonl"
    if spec == "seed":
        raw = _jsonl_chunks(seed_prompts_path(), "seed", chunk_rows, conformer)
    elif spec.startswith("hf:"):
        fmt = "hub"
        raw = _hub_chunks(spec, split=src.split, chunk_rows=chunk_rows)
    else:
        path, fmt = _check_local_file(spec)
        if fmt == "jsonl":
            raw = _jsonl_chunks(path, spec, chunk_rows, conformer)
        elif fmt == "csv":
            raw = _csv_chunks(path, spec, chunk_rows)
        else:
            raw = _parquet_chunks(path, spec, chunk_rows)
    # Only JSON lines can gain a column after the first chunk; other formats name every
    # column up front, so a mapped column that is not there is reported at once.
    conformer.columns_known = fmt != "jsonl"
    rows = 0
    for out in _exact_chunks(map(conformer, raw), chunk_rows):
        rows += out.height
        yield out
        del out  # not held while the next chunk is read
    if rows == 0 and fmt != "hub":  # the Hub reader reports an empty split itself
        what = " (only a header line)" if fmt == "csv" else ""
        raise InputError(f"the file has no rows{what}", file=spec, hint="give a file with at least one prompt row")
    conformer.finish()


def _exact_chunks(frames: Iterator[pl.DataFrame], size: int) -> Iterator[pl.DataFrame]:
    """``frames`` re-cut into tables of exactly ``size`` rows, the last one shorter (blank
    lines and multi-line CSV records make a file's line chunks hold fewer rows)."""
    buf: list[pl.DataFrame] = []
    held = 0
    for df in frames:
        if not buf and df.height == size:  # the usual case: nothing to cut or join
            yield df.rechunk()
            continue
        buf.append(df)
        held += df.height
        del df
        while held >= size:
            joined = pl.concat(buf, how="vertical") if len(buf) > 1 else buf[0]
            rest = joined.slice(size)
            buf, held = ([rest] if rest.height else []), rest.height
            yield joined.slice(0, size).rechunk()
            del joined
    if held:
        yield (pl.concat(buf, how="vertical") if len(buf) > 1 else buf[0]).rechunk()


class _Conformer:
    """Conforms the chunks of one source. Fields are resolved against every column seen so
    far (a JSON line may bring a column no earlier line had), so that a chunk resolves as
    the whole file would: a column missing from a chunk reads as null there."""

    def __init__(self, src: SourceConfig, *, label: str, display: str, taxonomy: Taxonomy,
                 columns_known: bool):
        self.src, self.label, self.display, self.taxonomy = src, label, display, taxonomy
        self.columns_known = columns_known
        self.columns: dict[str, None] = {}

    def mapping(self, columns: list[str]) -> dict[str, str | None]:
        self.columns.update(dict.fromkeys(c for c in columns if c != "__row"))
        return resolve_columns(list(self.columns), self.src, self.display, pending=not self.columns_known)

    def __call__(self, df: pl.DataFrame) -> pl.DataFrame:
        mapping = self.mapping(df.columns)
        absent = [c for c in self.columns if c not in df.columns]
        if absent:
            df = df.with_columns(pl.lit(None).alias(c) for c in absent)
        return _conform(df, self.src, label=self.label, display=self.display, taxonomy=self.taxonomy,
                        mapping=mapping)

    def finish(self) -> None:
        """A mapped column that no row of the source had is an error (as for a whole file)."""
        resolve_columns(list(self.columns), self.src, self.display)


# --- conform and validate --------------------------------------------------------------

def _text_expr(df: pl.DataFrame, col: str, field: str, display: str) -> pl.Expr:
    """``col`` as a string expression; a column of lists, objects or bytes is an input error."""
    dtype = df.schema[col]
    if dtype.is_nested() or dtype in (pl.Binary, pl.Object):
        nonnull = df.filter(pl.col(col).is_not_null())
        value, row = nonnull.select(col, "__row").row(0) if nonnull.height else (None, None)
        if field == "text":
            raise _not_text(value, display, row, col)
        raise InputError(f"the value must be a string, found {show_value(value)}", file=display, line=row, field=field,
                         hint="give a single string per row")
    return pl.col(col).cast(pl.String)


def _conform(df: pl.DataFrame, src: SourceConfig, *, label: str, display: str,
             taxonomy: Taxonomy, mapping: dict[str, str | None] | None = None) -> pl.DataFrame:
    if mapping is None:  # fields -> columns (text always found)
        mapping = resolve_columns(df.columns, src, display)
    text_col = mapping["text"]
    dtype = df.schema[text_col]
    if dtype != pl.Null and not (dtype == pl.String or dtype == pl.Categorical or dtype == pl.Enum):
        nonnull = df.filter(pl.col(text_col).is_not_null())
        value, row = nonnull.select(text_col, "__row").row(0)
        raise _not_text(value, display, row, text_col)
    text = _text_expr(df, text_col, "text", display)
    missing = df.filter(text.is_null())
    if missing.height:
        raise InputError("the row has no text", file=display, line=missing.get_column("__row")[0], field=text_col,
                         hint="every row needs the prompt as a string; fill it in or remove the row")
    cols = {"text": text}
    preset_kind = preset_definition(src.preset).get("kind") if src.preset else None
    defaults = {"kind": src.kind or preset_kind or "harmful", "category": src.category,
                "attack_style": src.attack_style}
    for field, default in defaults.items():
        col = mapping[field]
        if col is not None:
            value = _text_expr(df, col, field, display).str.strip_chars()
            # A missing or empty value takes the source's default (kind: harmful; category:
            # uncategorized, set in _validate_values).
            cols[field] = (pl.when(value == "").then(None).otherwise(value)
                           .fill_null(pl.lit(default, dtype=pl.String)))
        else:
            cols[field] = pl.lit(default, dtype=pl.String)
    cols["hint"] = _hint_expr(df, display)
    out = df.select(**cols, source=pl.lit(label, dtype=pl.String), source_row=pl.col("__row"))
    return _validate_values(out, display=display, taxonomy=taxonomy, src=src,
                            category_column=mapping["category"] or "category")


def _hint_expr(df: pl.DataFrame, display: str) -> pl.Expr:
    """``urgent`` (true/false) and ``domain`` (medical | legal | financial) columns, when the
    source has them, as one ``hint`` column: "urgent", a domain, or null."""
    hint = pl.lit(None, dtype=pl.String)
    if "domain" in df.columns:
        domain = _text_expr(df, "domain", "domain", display).str.strip_chars().str.to_lowercase()
        bad = df.filter(domain.is_not_null() & (domain != "") & ~domain.is_in(DOMAINS))
        if bad.height:
            row = bad.row(0, named=True)
            raise InputError(f"unknown domain {show_value(row['domain'])}", file=display, line=row["__row"],
                             field="domain",
                             hint=f"allowed: {', '.join(DOMAINS)} (or leave it out)")
        hint = pl.when(domain.is_in(DOMAINS)).then(domain).otherwise(None)
    if "urgent" in df.columns:
        dtype = df.schema["urgent"]
        if dtype == pl.Boolean:
            urgent = pl.col("urgent").fill_null(False)
        elif dtype == pl.Null:
            urgent = pl.lit(False)
        else:
            value = pl.col("urgent").cast(pl.String).str.strip_chars().str.to_lowercase()
            allowed = ("true", "false", "1", "0", "yes", "no", "")
            bad = df.filter(value.is_not_null() & ~value.is_in(allowed))
            if bad.height:
                row = bad.row(0, named=True)
                raise InputError(f"'urgent' must be true or false, found {show_value(row['urgent'])}", file=display,
                                 line=row["__row"], field="urgent", hint="use true or false (or leave it out)")
            urgent = value.is_in(("true", "1", "yes")).fill_null(False)
        hint = pl.when(urgent).then(pl.lit("urgent")).otherwise(hint)
    return hint


def _validate_values(df: pl.DataFrame, *, display: str, taxonomy: Taxonomy, src: SourceConfig | None = None,
                     category_column: str = "category") -> pl.DataFrame:
    def first_bad(mask: pl.Expr, field: str, allowed: tuple[str, ...], what: str):
        bad = df.filter(mask)
        if bad.height:
            row = bad.row(0, named=True)
            raise InputError(f"unknown {what} {show_value(row[field])}", file=display,
                             line=row["source_row"], field=field,
                             hint=f"allowed: {', '.join(allowed)}")

    df = df.with_columns(pl.col("kind").str.to_lowercase())
    first_bad(~pl.col("kind").is_in(KINDS), "kind", KINDS, "kind")
    df = _map_categories(df, display=display, taxonomy=taxonomy, src=src or SourceConfig(spec=display),
                         column=category_column)
    # Map attack style display names to ids (only over the distinct values).
    for field, norm, allowed, what in (
        ("attack_style", taxonomy.normalize_style, taxonomy.attack_styles, "attack style"),
    ):
        values = df.get_column(field).drop_nulls().unique().to_list()
        table = {v: norm(v) for v in values}
        bad = [v for v, m in table.items() if m is None]
        if bad:
            first_bad(pl.col(field).is_in(bad), field, allowed, what)
        if any(k != v for k, v in table.items()):
            df = df.with_columns(pl.col(field).replace_strict(table, default=None, return_dtype=pl.String))
    return df


def _map_categories(df: pl.DataFrame, *, display: str, taxonomy: Taxonomy, src: SourceConfig,
                    column: str) -> pl.DataFrame:
    """Category labels -> ids: the source's category_map (and its preset's), the preset's
    alias table, refuseu's ids, names and S-codes, then every table in schemas/aliases/.
    A label that maps to nothing takes the source's default category when it has one, else
    is an error naming the label, its row and the closest known labels. Rows without a
    category are ``uncategorized``."""
    extra = _category_map(src, taxonomy)
    prefer = _preset_taxonomies(src)
    values = df.get_column("category").drop_nulls().unique().to_list()
    table = {v: taxonomy.normalize_category(v, extra=extra, prefer=prefer) for v in values}
    bad = [v for v, m in table.items() if m is None]
    if bad:
        fallback = taxonomy.normalize_category(src.category, extra=extra, prefer=prefer) if src.category else None
        if fallback is None:
            row = df.filter(pl.col("category").is_in(bad)).sort("source_row").row(0, named=True)
            label = row["category"]
            closest = taxonomy.closest_labels(label)
            near = f"closest known labels: {', '.join(repr(c) for c in closest)}; " if closest else ""
            clash = taxonomy.ambiguous.get(label_key(label))
            if clash:
                near = ("the label means different categories in " +
                        ", ".join(f"{t} ({c})" for t, c in sorted(clash.items())) + "; pick one with --preset; ")
            raise InputError(f"unknown category {show_value(label)}", file=display, line=row["source_row"],
                             field=column,
                             hint=f"{near}map it with sources[].category_map ({label}: <category id>) or give a "
                                  f"fallback with --category / sources[].category; allowed category ids: "
                                  f"{', '.join(taxonomy.categories)}")
        table.update({v: fallback for v in bad})
    if values:
        df = df.with_columns(pl.col("category").replace_strict(table, default=None, return_dtype=pl.String))
    return df.with_columns(pl.col("category").fill_null(UNCATEGORIZED))
