"""``inspect``: counts of a release folder per config, split, category, style and origin."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import polars as pl
import pyarrow.parquet as pq

from refuseu.errors import InputError
from refuseu.release.assemble import ID_COLUMNS, TEXT_COLUMNS, as_text
from refuseu.release.verify import require_valid


#: The columns ``inspect`` reads (texts as their lengths and hashes).
INSPECT_COLUMNS = ("pair_id", "lang", "kind", "category", "attack_style", "chosen", "rejected", "origin",
                   "chosen_origin", "rejected_origin")


def load_release_rows(release: str | Path) -> pl.DataFrame:
    root = Path(release)
    if not root.exists():
        raise InputError("not found", file=str(root),
                         hint="give a folder made by 'refuseu build' (releases/<name>-v<version>)")
    if not (root / "data").is_dir():
        raise InputError("not a release folder (no data/ inside)", file=str(root),
                         hint="give a folder made by 'refuseu build' (releases/<name>-v<version>)")
    frames = []
    for f in sorted((root / "data").glob("*/*.parquet")):
        df = as_text(pl.read_parquet(f, glob=False))  # a conversational release reads as text too
        frames.append(df.with_columns(config=pl.lit(f.parent.name), file_split=pl.lit(f.name.split("-")[0])))
    if not frames:
        return pl.DataFrame()
    return pl.concat(frames, how="diagonal_relaxed")


def release_files(release: str | Path, *, include: str = "all") -> list[Path]:
    """The Parquet files of a release folder in a fixed order; ``include``: "all", "pairs" (the
    ``lang_xx`` configs) or "evaluation"."""
    files = sorted((Path(release) / "data").glob("*/*.parquet"))
    if include == "all":
        return files
    return [f for f in files if (f.parent.name == "evaluation") == (include == "evaluation")]


def light_release_rows(release: str | Path, *, columns: list[str] | tuple[str, ...] | None = None,
                       include: str = "all") -> pl.DataFrame:
    """Rows of a release folder as light rows, read one file at a time and only ``columns``
    (every column when None; a column a file lacks is left out): texts become
    ``<col>_chars`` (UInt32, length in characters) and ``<col>_hash`` (UInt64, equal texts give
    equal hashes, null where the text is), the ids ``<id>_hash`` (UInt64, null where the id is), other strings Categorical; ``config`` and
    ``file_split`` (``train``/``test``/``eval``, from the file's name) are added. Row order is
    :func:`load_release_rows`'s. ``include`` as in :func:`release_files`."""
    rows = ReleaseColumns(release, include=include)
    if not rows.files:
        return pl.DataFrame()
    wanted = None if columns is None else set(columns)
    return rows.select(*(c for c in rows.columns
                         if wanted is None or c in ("config", "file_split") or rows._source(c) in wanted))


#: Rows read from a release file at once by :class:`ReleaseColumns`.
_BATCH_ROWS = 65_536


class ReleaseColumns:
    """The rows of a release folder's files (``include`` as in :func:`release_files`), read one
    projection at a time: :meth:`select` reads only the columns asked for, one file at a time, so
    a caller that needs a few columns at once holds those alone, whatever the release's size.

    Column names are those of :func:`light_release_rows`: ``<text>_chars``/``<text>_hash``,
    ``<id>_hash``, ``config``, ``file_split``, and the released columns themselves (strings as
    Categorical)."""

    def __init__(self, release: str | Path, *, include: str = "all") -> None:
        self.files = release_files(release, include=include)
        self._names: dict[Path, list[str]] = {}  # each file's columns, read once
        self.height = 0
        for f in self.files:
            meta = pq.read_metadata(f)
            self._names[f] = meta.schema.to_arrow_schema().names
            self.height += meta.num_rows
        derived = []
        for c in dict.fromkeys(c for names in self._names.values() for c in names):
            if c in ID_COLUMNS:
                derived.append(f"{c}_hash")
            elif c in TEXT_COLUMNS:
                derived += [f"{c}_chars", f"{c}_hash"]
            else:
                derived.append(c)
        self.columns = [*derived, "config", "file_split"]

    @staticmethod
    def _source(col: str) -> str:
        for suffix in ("_chars", "_hash"):
            base = col.removesuffix(suffix)
            if base != col and (base in TEXT_COLUMNS or base in ID_COLUMNS):
                return base
        return col

    def select(self, *cols: str, split: str | None = None) -> pl.DataFrame:
        """Those of ``cols`` the release has, over all its rows in file order (only the files of
        ``split`` -- ``train``, ``test`` or ``eval`` -- when given)."""
        cols = tuple(c for c in cols if c in self.columns)
        frames = [self._derive(df, cols, config, file_split)
                  for config, file_split, df in self.batches([self._source(c) for c in cols], split=split)]
        if not frames:
            return pl.DataFrame(schema={c: pl.String for c in cols})
        return pl.concat(frames, how="diagonal_relaxed")

    def batches(self, columns, *, split: str | None = None) -> Iterator[tuple[str, str, pl.DataFrame]]:
        """(config, file split, rows) of each record batch of the files (of ``split`` when given),
        with those of the released ``columns`` a file has (at least one, for the row count);
        a conversational file's texts read as text. A text column is held a batch at a time,
        not a whole file's."""
        for f in self.files:
            file_split = f.name.split("-")[0]
            if split is not None and file_split != split:
                continue
            names = self._names[f]
            wanted = [c for c in dict.fromkeys(columns) if c in names] or names[:1]
            for batch in pq.ParquetFile(f).iter_batches(batch_size=_BATCH_ROWS, columns=wanted):
                yield f.parent.name, file_split, as_text(pl.from_arrow(batch))

    def _derive(self, df: pl.DataFrame, cols: tuple[str, ...], config: str, split: str) -> pl.DataFrame:
        exprs = []
        for c in cols:
            src = self._source(c)
            if c in ("config", "file_split"):
                exprs.append(pl.repeat(config if c == "config" else split, df.height, dtype=pl.String)
                             .cast(pl.Categorical).alias(c))
            elif src not in df.columns:
                continue
            elif c.endswith("_chars") and src != c:
                exprs.append(pl.col(src).str.len_chars().cast(pl.UInt32).alias(c))
            elif c.endswith("_hash") and src != c:
                exprs.append(pl.when(pl.col(src).is_null()).then(None).otherwise(pl.col(src).hash(seed=0))
                             .cast(pl.UInt64).alias(c))
            elif df.schema[src] == pl.String:
                exprs.append(pl.col(src).cast(pl.Categorical))
            else:
                exprs.append(pl.col(src))
        return df.select(exprs)

    def clear(self) -> pl.DataFrame:
        return pl.DataFrame()


def inspect_release(release: str | Path) -> dict:
    """Counts of a release; it is verified by content first (exit 1 when damaged)."""
    root = Path(release)
    if not (root / "data").is_dir() and not (root / "manifest.json").exists():
        load_release_rows(root)  # the "not a release folder" message
    manifest = require_valid(root, action="inspect it").manifest or {}
    # Read apart (no filtered copies of every row): the pair configs and the evaluation config.
    pairs = light_release_rows(release, columns=INSPECT_COLUMNS, include="pairs")
    ev = light_release_rows(release, columns=INSPECT_COLUMNS, include="evaluation")
    if pairs.height + ev.height == 0:
        return {"release": str(release), "rows": 0, "configs": {}}
    pairs, ev = (pairs if pairs.width else ev.clear()), (ev if ev.width else pairs.clear())

    def counts(*by: str) -> dict:
        out: dict = {}
        keys = ["config", "file_split", *by]
        # Sorted as text (a Categorical sorts by its codes); the two parts share no config.
        per_part = [df.group_by(keys).len().with_columns(pl.col(keys).cast(pl.String)) for df in (pairs, ev)
                    if df.height]
        for r in pl.concat(per_part).sort(keys).iter_rows():
            *key, n = r
            out.setdefault(f"{key[0]}/{key[1]}", {})[" / ".join(str(k) for k in key[2:]) or "rows"] = n
        return out

    if ev.height == 0 or pairs.height == 0:  # (an empty side's columns may have another type)
        eval_only = ev.height
    else:
        eval_only = ev.select((pl.col("pair_id_hash").is_null()
                               | ~pl.col("pair_id_hash").is_in(pairs["pair_id_hash"].drop_nulls().implode()))
                              .sum()).item()
    train, test = ((pairs["file_split"] == split).sum() for split in ("train", "test"))
    totals = {"pairs": pairs.height, "train": train, "test": test, "eval": ev.height,
              "eval_only": eval_only, "distinct": pairs.height + eval_only}
    category_totals = {str(k): n for k, n in pairs.group_by("category").len()
                       .with_columns(pl.col("category").cast(pl.String))
                       .sort("len", "category", descending=[True, False]).iter_rows()}
    return {
        "release": str(release),
        # Each row once: a test pair is also an evaluation row, and is counted once here.
        "rows": totals["distinct"],
        "totals": totals,
        "by_language": language_counts(root, manifest.get("languages")),
        "responses": response_stats(pairs),
        "category_totals": category_totals,
        "configs": counts(),
        "by_category": counts("category"),
        "by_attack_style": counts("attack_style"),
        "by_origin": counts("origin", "chosen_origin", "rejected_origin"),
    }


def response_stats(pairs: pl.DataFrame) -> dict:
    """lang -> benign pairs in train/test, and over the harmful pairs the distinct chosen/rejected
    texts and their mean length in characters: how varied the responses are. ``pairs``: light
    rows (:func:`light_release_rows`)."""
    if pairs.height == 0 or "chosen_hash" not in pairs.columns:
        return {}
    # (chosen/rejected means of a language without harmful pairs are null; equal texts have
    # equal hashes, so the distinct hashes are the distinct texts)
    harmful = pl.col("kind") == "harmful"
    stats = (pairs.group_by("lang", maintain_order=True)
             .agg(benign_train=((pl.col("kind") == "benign") & (pl.col("file_split") == "train")).sum(),
                  benign_test=((pl.col("kind") == "benign") & (pl.col("file_split") == "test")).sum(),
                  distinct_chosen=pl.col("chosen_hash").filter(harmful).n_unique(),
                  distinct_rejected=pl.col("rejected_hash").filter(harmful).n_unique(),
                  chosen_mean_chars=pl.col("chosen_chars").filter(harmful).mean().round(1),
                  rejected_mean_chars=pl.col("rejected_chars").filter(harmful).mean().round(1)))
    return {r.pop("lang"): r for r in stats.iter_rows(named=True)}


def _chars(v) -> str:
    return "-" if v is None else f"{v:.0f}"


def response_table(responses: dict, *, indent: str = "  ") -> list[str]:
    rows = [[lang, r["benign_train"], r["benign_test"], r["distinct_chosen"], r["distinct_rejected"],
             _chars(r["chosen_mean_chars"]), _chars(r["rejected_mean_chars"])] for lang, r in responses.items()]
    return _grid(["lang", "benign train", "benign test", "distinct chosen", "distinct rejected",
                  "chosen chars", "rejected chars"], rows, indent=indent)


def language_counts(release: str | Path, languages: list[str] | None = None) -> dict:
    """lang -> {"train", "test", "eval"}: rows of ``lang_xx`` train/test and of ``evaluation``."""
    files = sorted((Path(release) / "data").glob("*/*.parquet"))
    return _tally(((f.parent.name, f.name.split("-")[0], pl.read_parquet(f, columns=["lang"], glob=False))
                   for f in files), languages)


def table_language_counts(tables: dict, languages: list[str]) -> dict:
    """:func:`language_counts` of release tables still in memory ((config, split) -> rows, or
    their :class:`~refuseu.release.summary.TableSummary`)."""
    from refuseu.release.summary import TableSummary

    return _tally(((config, split, t.counts if isinstance(t, TableSummary) else t)
                   for (config, split), t in tables.items()), languages)


def _tally(parts, languages: list[str] | None) -> dict:
    out: dict = {}
    for config, split, df in parts:
        key = "eval" if config == "evaluation" else split
        per_lang = (df.group_by("lang").agg(pl.col("n").sum()) if "n" in df.columns  # summary counts
                    else df.get_column("lang").value_counts(sort=True))
        for lang, n in per_lang.iter_rows():
            row = out.setdefault(lang, {"train": 0, "test": 0, "eval": 0})
            row[key] = row.get(key, 0) + n
    order = list(languages or []) + sorted(set(out) - set(languages or []))
    return {lang: out.get(lang, {"train": 0, "test": 0, "eval": 0}) for lang in order}


def _grid(headers: list[str], rows: list[list], *, indent: str = "  ") -> list[str]:
    """A plain-text table: number columns right-aligned, text columns left-aligned."""
    cells = [[str(c) for c in r] for r in [headers, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    numeric = [bool(rows) and all(isinstance(r[i], int) for r in rows if r[0] != "total") for i in range(len(headers))]
    lines = []
    for r in cells:
        lines.append(indent + "  ".join(c.rjust(widths[i]) if numeric[i] else c.ljust(widths[i])
                                        for i, c in enumerate(r)).rstrip())
    return lines


def language_table(by_language: dict, *, indent: str = "  ") -> list[str]:
    rows = [[lang, c["train"], c["test"], c["eval"]] for lang, c in by_language.items()]
    if len(rows) > 1:
        rows.append(["total", *(sum(c[k] for c in by_language.values()) for k in ("train", "test", "eval"))])
    return _grid(["lang", "train", "test", "eval"], rows, indent=indent)


def format_inspect(info: dict, *, full: bool = False) -> str:
    t = info.get("totals", {})
    lines = [f"{info['release']}: {t.get('pairs', 0)} pairs (train {t.get('train', 0)}, test {t.get('test', 0)}), "
             f"{t.get('eval', 0)} evaluation rows ({t.get('eval_only', 0)} not in a pair config); "
             f"{t.get('distinct', 0)} distinct rows"]
    if info.get("by_language"):
        lines += ["", *language_table(info["by_language"])]
    if info.get("responses"):
        lines += ["", "responses per language (benign pairs; distinct texts and mean length in characters over harmful pairs):",
                  *response_table(info["responses"])]
    if not full:
        cats = info.get("category_totals", {})
        if cats:
            lines += ["", "pairs per category (all languages, train + test):"]
            lines += _grid(["category", "pairs"], [[k, n] for k, n in cats.items()])
        lines += ["", "(--full: per config and split, by category, attack style and origin)"]
        return "\n".join(lines)
    headers = {"configs": ["rows"], "by_category": ["category"], "by_attack_style": ["attack style"],
               "by_origin": ["origin / chosen origin / rejected origin"]}
    for section, (what,) in headers.items():
        if section not in info:
            continue
        lines += ["", section.replace("_", " ") + ":"]
        rows = []
        for key, counts in info[section].items():
            for k, n in counts.items():
                rows.append([key, k, n] if section != "configs" else [key, n])
        cols = ["config/split", "rows"] if section == "configs" else ["config/split", what, "rows"]
        lines += _grid(cols, rows)
    return "\n".join(lines)
