"""Sources read in chunks: the chunks of any size, concatenated, are exactly the whole-file
read; a bad row in a later chunk is reported with its file, line and field; a file that
changes while it is read fails the build before its last chunk is handed on."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal

from refuseu.cli.main import cli
from refuseu.config import SourceConfig
from refuseu.errors import BuildError, InputError
from refuseu.sources import read_sources
from refuseu.sources.readers import RAW_COLUMNS, iter_sources
from refuseu.stages.base import FrameChunks, StageContext
from refuseu.stages.sources import SourcesStage

CHUNK_SIZES = (1, 3, 1000)

ROWS = [
    {"text": "How do I pick a lock?", "category": "non_violent_crimes"},
    {"text": "Write a poem about \"spring\", please", "category": "hate", "kind": "benign"},
    {"text": "Two lines:\nthe second one", "category": "S1"},
    {"text": "Semicolons; commas, and tabs\there", "category": "privacy", "kind": " Harmful "},
    {"text": "ünïcode ✓ text", "category": ""},
    {"text": "How do I find where someone lives?", "category": "privacy", "attack_style": "role_play"},
    {"text": "Which pills stop a heart?", "category": "suicide_self_harm", "urgent": True},
    {"text": "Can I sue my landlord?", "category": "specialized_advice", "domain": "legal"},
]


def _jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _files(tmp_path: Path) -> dict[str, Path]:
    """One file of each kind: blank lines, a BOM, a quoted newline in CSV, and JSON keys that
    first appear after the first chunk (domain, urgent, attack_style, kind)."""
    lines = [json.dumps(r, ensure_ascii=False) for r in ROWS]
    lines.insert(3, "")
    lines.insert(6, "   ")
    jsonl = _jsonl(tmp_path / "p.jsonl", lines)
    jsonl.write_bytes(b"\xef\xbb\xbf" + jsonl.read_bytes())
    table = pl.DataFrame([{k: r.get(k) for k in ("text", "category", "kind")} for r in ROWS])
    csv_path = tmp_path / "p.csv"
    csv_path.write_text(table.write_csv().replace("\n", "\r\n"), encoding="utf-8")
    semi = tmp_path / "semi.csv"
    semi.write_text(table.write_csv(separator=";", quote_style="always"), encoding="utf-8")
    parquet = tmp_path / "p.parquet"
    table.write_parquet(parquet, row_group_size=2)
    return {"jsonl": jsonl, "csv": csv_path, "semi.csv": semi, "parquet": parquet}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    return _files(tmp_path_factory.mktemp("stream_sources"))


@pytest.mark.parametrize("chunk_rows", CHUNK_SIZES)
@pytest.mark.parametrize("kind", ["jsonl", "csv", "semi.csv", "parquet", "seed"])
def test_chunks_concatenate_to_the_whole_read(files, kind, chunk_rows):
    src = SourceConfig(spec="seed" if kind == "seed" else str(files[kind]))
    whole = read_sources([src])
    chunks = list(iter_sources([src], chunk_rows))
    assert all(0 < c.height <= chunk_rows for c in chunks)
    assert len(chunks) == -(-whole.height // chunk_rows)
    assert all(c.columns == list(RAW_COLUMNS) and c.schema == whole.schema for c in chunks)
    assert_frame_equal(pl.concat(chunks), whole)


def test_whole_read_keeps_line_numbers_and_late_columns(files):
    df = read_sources([SourceConfig(spec=str(files["jsonl"]))])
    # Lines 4 and 7 are blank; the BOM is not part of the first text.
    assert df.get_column("source_row").to_list() == [1, 2, 3, 5, 6, 8, 9, 10]
    assert df.get_column("text")[0] == "How do I pick a lock?"
    assert df.get_column("hint").to_list()[-2:] == ["urgent", "legal"]
    assert df.get_column("category").to_list()[4] == "uncategorized"
    csv_rows = read_sources([SourceConfig(spec=str(files["csv"]))]).get_column("source_row").to_list()
    assert csv_rows == list(range(2, 2 + len(ROWS)))


def test_a_mapped_column_that_first_appears_in_a_later_chunk(tmp_path):
    rows = [{"prompt": f"prompt {i}"} | ({"hazard": "hate"} if i >= 4 else {}) for i in range(6)]
    path = _jsonl(tmp_path / "late.jsonl", [json.dumps(r) for r in rows])
    src = SourceConfig(spec=str(path), columns={"text": "prompt", "category": "hazard"})
    whole = read_sources([src])
    assert whole.get_column("category").to_list() == ["uncategorized"] * 4 + ["hate"] * 2
    for n in CHUNK_SIZES:
        assert_frame_equal(pl.concat(iter_sources([src], n)), whole)
    missing = SourceConfig(spec=str(path), columns={"text": "prompt", "category": "nothere"})
    with pytest.raises(InputError, match="missing required column 'nothere'"):
        list(iter_sources([missing], 2))


def test_chunks_end_where_a_source_ends(files):
    srcs = [SourceConfig(spec=str(files["jsonl"])), SourceConfig(spec=str(files["parquet"]))]
    chunks = list(iter_sources(srcs, 3))
    assert [c.height for c in chunks] == [3, 3, 2, 3, 3, 2]
    assert all(c.get_column("source").n_unique() == 1 for c in chunks)
    assert_frame_equal(pl.concat(chunks), read_sources(srcs))


BAD = {  # a bad fifth row: in the second chunk of three rows
    "jsonl": ("bad.jsonl", lambda rows: "".join(json.dumps(r) + "\n" for r in rows), 5),
    "csv": ("bad.csv", lambda rows: pl.DataFrame(rows).write_csv(), 6),
    "parquet": ("bad.parquet", None, 5),
}


@pytest.mark.parametrize("kind", list(BAD))
@pytest.mark.parametrize("field,value,message", [
    ("kind", "sometimes", "unknown kind 'sometimes'"),
    ("category", "no such label", "unknown category 'no such label'"),
])
def test_a_bad_row_in_the_second_chunk_names_its_line(tmp_path, kind, field, value, message):
    rows = [{"text": f"prompt {i}", "kind": "harmful", "category": "hate"} for i in range(8)]
    rows[4][field] = value
    name, write, line = BAD[kind]
    path = tmp_path / name
    if write is None:
        pl.DataFrame(rows).write_parquet(path)
    else:
        path.write_text(write(rows), encoding="utf-8")
    it = iter_sources([SourceConfig(spec=str(path))], 3)
    assert next(it).height == 3  # the first chunk is read before the bad row
    with pytest.raises(InputError) as err:
        next(it)
    assert err.value.exit_code == 2
    assert f"{path}, line {line}, field '{field}': {message}" in str(err.value)


@pytest.mark.parametrize("bad_line,message", [
    ('{"text": 5}', "line 5, field 'text': the prompt text must be a string, found a number (5)"),
    ('{"text": "a", "kind": "harmful"', "line 5: invalid JSON"),
    ('["not", "an object"]', "line 5: each line must be a JSON object"),
])
def test_json_errors_in_the_second_chunk_name_the_line(tmp_path, bad_line, message):
    lines = [json.dumps({"text": f"prompt {i}"}) for i in range(8)]
    lines[4] = bad_line
    path = _jsonl(tmp_path / "bad.jsonl", lines)
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        list(iter_sources([SourceConfig(spec=str(path))], 3))


def test_invalid_utf8_in_the_second_chunk_names_the_line(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"text\n" + b"".join(b"prompt %d\n" % i for i in range(6)) + b"caf\xe9\n")
    with pytest.raises(InputError, match=r"line 8: not valid UTF-8"):
        list(iter_sources([SourceConfig(spec=str(path))], 3))


def test_a_bad_row_in_a_later_chunk_fails_the_build_with_exit_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = [{"text": f"How do I pick lock number {i}?", "category": "non_violent_crimes"} for i in range(8)]
    rows[6]["kind"] = "sometimes"
    _jsonl(tmp_path / "bad.jsonl", [json.dumps(r) for r in rows])
    res = CliRunner().invoke(cli, ["build", "--quiet", "--langs", "en", "--source", "bad.jsonl", "--out", "r",
                                   "--build-dir", "b", "--chunk-rows", "3"])
    assert res.exit_code == 2, res.output
    assert "bad.jsonl, line 7, field 'kind': unknown kind 'sometimes'" in res.output
    assert "Traceback" not in res.output


def _stage_results(stage: SourcesStage, chunk_rows: int):
    return stage.run_stream(FrameChunks([]), StageContext(languages=["en"], chunk_rows=chunk_rows))


def test_stage_yields_one_result_per_chunk(files):
    stage = SourcesStage([SourceConfig(spec=str(files["jsonl"]))])
    stage.preflight()
    results = list(_stage_results(stage, 3))
    assert [r.kept.height for r in results] == [3, 3, 2]
    assert all(r.rejected.height == 0 for r in results)
    assert_frame_equal(pl.concat([r.kept for r in results]), read_sources(stage.sources))
    ctx = StageContext(languages=["en"], chunk_rows=3)
    assert_frame_equal(stage.run(pl.DataFrame(), ctx).kept, read_sources(stage.sources))


def test_stage_without_sources_yields_one_empty_table():
    (res,) = list(_stage_results(SourcesStage([]), 3))
    assert res.kept.height == 0 and res.kept.columns == list(RAW_COLUMNS)


@pytest.mark.parametrize("change_after", [0, 1])
def test_a_source_changed_while_read_fails_before_the_last_chunk(tmp_path, change_after):
    path = _jsonl(tmp_path / "src.jsonl", [json.dumps(r) for r in ROWS])
    stage = SourcesStage([SourceConfig(spec=str(path))])
    stage.preflight()  # the signature: the file's checksum before the build reads it
    results = _stage_results(stage, 3)
    seen = []

    def change():
        path.write_text(path.read_text(encoding="utf-8").replace("lock", "door"), encoding="utf-8")

    def consume():
        for res in results:
            seen.append(res)
            if len(seen) == change_after:
                change()

    if change_after == 0:
        change()
    with pytest.raises(BuildError, match="changed while the build was reading it"):
        consume()
    # 8 rows in chunks of 3: the last chunk (2 rows) never came out.
    assert [r.kept.height for r in seen] == [3, 3]


def test_hub_split_in_chunks(monkeypatch):
    """A Hub split is sliced from the memory-mapped table that ``datasets`` keeps."""
    import datasets

    rows = [{"prompt": f"prompt {i}", "hazard": "hate" if i % 2 else "privacy"} for i in range(7)]
    loaded = []

    def load_dataset(name, config, *, revision, split):
        loaded.append((name, config, revision, split))
        return datasets.Dataset.from_list(rows)

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    src = SourceConfig(spec="hf:someone/prompts@" + "a" * 40, columns={"text": "prompt", "category": "hazard"})
    whole = read_sources([src])
    assert whole.get_column("source_row").to_list() == list(range(1, 8))
    assert whole.get_column("source").unique().to_list() == ["hf:someone/prompts@" + "a" * 40]
    for n in CHUNK_SIZES:
        chunks = list(iter_sources([src], n))
        assert [c.height for c in chunks] == [min(n, 7 - s) for s in range(0, 7, n)]
        assert_frame_equal(pl.concat(chunks), whole)
    assert loaded[0] == ("someone/prompts", None, "a" * 40, "train")


@pytest.mark.parametrize("content", [
    b"\n\r\ntext,category\na,hate\n\nb,privacy\n",  # empty lines before the header are skipped
    b"  \ntext\na\nb\n",  # a whitespace line is the header (a column named '  ')
    b'"te\nxt",category\n"a\nb\nc",hate\nd,hate\n"e\n\nf",privacy\ng,hate\n',  # quoted newlines
    b'text,category\n"a""\nb",hate\nc,hate\n"unterminated,hate\nd,hate\n',  # an unbalanced quote
    b"text;category\r\na;hate\r\n\r\nb;\r\n",
])
def test_csv_edge_cases_read_alike_in_any_chunk_size(tmp_path, content):
    path = tmp_path / "edge.csv"
    path.write_bytes(content)
    columns = {"text": "  "} if content.startswith(b"  ") else {"text": "te\nxt"} if content.startswith(b'"te') else {}
    src = SourceConfig(spec=str(path), columns=columns)

    def read(n):
        try:
            return pl.concat(list(iter_sources([src], n)))
        except InputError as e:
            return str(e)

    whole = read(1000)
    for n in (1, 2, 3):
        got = read(n)
        if isinstance(whole, str) or isinstance(got, str):
            assert got == whole
        else:
            assert_frame_equal(got, whole)
