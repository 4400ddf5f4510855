"""Assemble the pairs table into the release layout (deterministic Parquet files)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

PAIR_COLUMNS = ("pair_id", "prompt_id", "group_id", "lang", "split", "kind", "category", "attack_style",
                "prompt", "chosen", "rejected", "chosen_origin", "rejected_origin", "chosen_fallback", "origin", "engine",
                "engine_revision", "qe_score", "qe_method", "lid_lang", "lid_score", "source")
EVAL_SPLIT = "eval"
#: Text columns that light rows (refuseu.release.inspect.ReleaseColumns) hold as length and hash.
TEXT_COLUMNS = ("prompt", "chosen", "rejected")
#: Per-row ids that light rows hold as a hash.
ID_COLUMNS = ("pair_id", "prompt_id", "group_id")


def release_tables(pairs: pl.DataFrame, languages: list[str]) -> dict[tuple[str, str], pl.DataFrame]:
    """(config, split) -> rows, in pipeline order (deterministic for the same recipe and inputs).

    ``lang_xx`` configs hold rows with both responses; ``evaluation`` holds every test
    prompt of every language (harmful and benign) and every benign prompt without a pair.
    """
    cols = [c for c in PAIR_COLUMNS if c in pairs.columns]
    pairs = pairs.select(cols)
    has_pair = pl.col("chosen").is_not_null() & pl.col("rejected").is_not_null()
    out: dict[tuple[str, str], pl.DataFrame] = {}
    for lang in languages:
        rows = pairs.filter((pl.col("lang") == lang) & has_pair)
        for split in ("train", "test"):
            out[(f"lang_{lang}", split)] = rows.filter(pl.col("split") == split)
    out[("evaluation", EVAL_SPLIT)] = pairs.filter((pl.col("split") == "test") | ~has_pair)
    return out


def data_files(config: str, split: str, n_rows: int, shard_rows: int) -> list[str]:
    n = max(1, -(-n_rows // shard_rows))
    stem = "eval" if config == "evaluation" else split
    return [f"data/{config}/{stem}-{i:05d}-of-{n:05d}.parquet" for i in range(n)]


def write_parquet(df: pl.DataFrame, path: Path) -> None:
    """Byte-deterministic Parquet: fixed writer options, no timestamps."""
    write_arrow(df.rechunk().to_arrow(), path)


def write_arrow(table, path: Path) -> None:
    """:func:`write_parquet` of an Arrow table (the same bytes for the same rows)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # One chunk: a table read back from the cache and one computed in memory hold the same
    # rows in different chunk layouts, and the file must not depend on that.
    pq.write_table(table.combine_chunks(), path, compression="zstd", compression_level=1,
                   use_dictionary=True, write_statistics=True, version="2.6")


MESSAGE = pl.Struct({"role": pl.String, "content": pl.String})


def conversational(df: pl.DataFrame) -> pl.DataFrame:
    """TRL's conversational preference format: ``prompt`` a one-message user turn, ``chosen``
    and ``rejected`` one-message assistant turns (null stays null)."""
    def turn(col: str, role: str) -> pl.Expr:
        c = pl.col(col)
        msg = pl.struct(role=pl.lit(role, dtype=pl.String), content=c)
        # A null row's list is emptied before it is masked: Parquet refuses a null list entry
        # that still spans values (what masking a one-message list leaves).
        one = pl.concat_list(msg).list.slice(0, pl.when(c.is_null()).then(0).otherwise(1))
        return pl.when(c.is_null()).then(pl.lit(None, dtype=pl.List(MESSAGE))).otherwise(one).alias(col)

    return df.with_columns(turn(c, role) for c, role in (("prompt", "user"), ("chosen", "assistant"),
                                                         ("rejected", "assistant")) if c in df.columns)


def as_text(df: pl.DataFrame) -> pl.DataFrame:
    """The inverse of :func:`conversational`: message lists back to the text of their one message."""
    return df.with_columns(pl.col(c).list.last().struct.field("content").alias(c)
                           for c in ("prompt", "chosen", "rejected")
                           if c in df.columns and isinstance(df.schema[c], pl.List))


def stream_release(chunks, languages: list[str], root: Path, shard_rows: int, *, on_file=None,
                   fmt: str = "standard") -> tuple[dict[str, list[str]], dict]:
    """Write the release's data files from the pipeline's output read chunk by chunk; returns
    config/split -> relative paths, and the :class:`~refuseu.release.summary.TableSummary` of
    every (config, split) for the card, its figures and the counts.

    The files are the bytes the same rows give when written from one table. Each chunk's rows
    of each (config, split) are appended to a spill file (Arrow IPC, in a scratch folder under
    ``root`` removed at the end); then each shard is read back from it and written whole. So
    memory holds one chunk or one shard, whatever the size of the release. (Rows are not kept
    in memory between chunks: a filtered string column keeps its whole chunk alive.)"""
    import shutil
    import tempfile

    import numpy as np
    import pyarrow as pa
    import pyarrow.ipc as ipc

    from refuseu.release.summary import TableSummary

    scratch = Path(tempfile.mkdtemp(prefix=".spill-", dir=root))
    writers: dict[tuple[str, str], ipc.RecordBatchFileWriter] = {}
    batches: dict[tuple[str, str], list[int]] = {}  # rows of each spilled record batch
    summaries: dict[tuple[str, str], TableSummary] = {}
    schema = None
    try:
        for chunk in chunks.select(PAIR_COLUMNS):  # only the released columns are read
            for key, df in release_tables(chunk, languages).items():
                if schema is None:
                    schema = df.schema
                summaries.setdefault(key, TableSummary())
                if not df.height:
                    continue
                table = df.to_arrow()
                if key not in writers:
                    writers[key] = ipc.new_file(scratch / f"{len(writers)}.arrow", table.schema)
                    batches[key] = []
                for batch in table.to_batches():
                    writers[key].write_batch(batch)
                    batches[key].append(batch.num_rows)
                summaries[key].add(df)
        if schema is None:  # no chunk at all: every (config, split) empty
            schema = pl.DataFrame(schema={c: pl.String for c in PAIR_COLUMNS}).schema
            summaries = {key: TableSummary() for key in release_tables(pl.DataFrame(schema=schema), languages)}
        for w in writers.values():
            w.close()
        names = {key: scratch / f"{i}.arrow" for i, key in enumerate(writers)}
        written: dict[str, list[str]] = {}
        for key, summary in summaries.items():
            n = summary.height
            files = data_files(*key, n, shard_rows)
            reader = ipc.open_file(pa.OSFile(str(names[key]))) if key in names else None
            starts = np.concatenate([[0], np.cumsum(batches[key])]) if key in names else None
            for i, rel in enumerate(files):
                lo, hi = i * shard_rows, min(n, (i + 1) * shard_rows)
                if reader is not None:
                    # The record batches that hold rows [lo, hi), read from the file (not mapped).
                    j0 = int(np.searchsorted(starts, lo, side="right")) - 1
                    j1 = int(np.searchsorted(starts, hi, side="left"))
                    part = pa.Table.from_batches([reader.get_batch(j) for j in range(j0, j1)],
                                                 schema=reader.schema).slice(lo - int(starts[j0]), hi - lo)
                else:
                    part = pl.DataFrame(schema=schema).to_arrow()
                if fmt == "conversational":
                    write_parquet(conversational(pl.from_arrow(part)), root / rel)
                else:
                    write_arrow(part, root / rel)
                del part
                if on_file is not None:
                    on_file(rel)
            written[f"{key[0]}/{key[1]}"] = files
    finally:
        for w in writers.values():
            try:
                w.close()
            except Exception:  # noqa: BLE001 - closed already, or failed with the error raised above
                pass
        shutil.rmtree(scratch, ignore_errors=True)
    for key, s in summaries.items():
        if not s.height:  # an empty table still has its columns
            s.add(pl.DataFrame(schema=schema))
    return written, summaries
