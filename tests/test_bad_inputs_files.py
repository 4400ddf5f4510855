"""Source files and translation-memory files: a good file reads whatever its path or the
length of its lines; a bad one ends in one line that names the file, the line and the field
(exit 2), never a traceback or polars' own advice."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from refuseu.cli.main import cli
from refuseu.config import SourceConfig
from refuseu.engines.translators.tm import TranslationMemory, seed_memory_dir
from refuseu.errors import InputError
from refuseu.sources import read_source
from refuseu.sources.readers import describe_columns, source_columns

# Requests only; no operational content.
PROMPTS = [f"How do I get into the locked shed number {i} without the key?" for i in range(6)]
ROWS = [{"text": p, "category": "non_violent_crimes"} for p in PROMPTS]


def jsonl(rows) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)


def build(tmp_path: Path, *args: str):
    (tmp_path / "r.yaml").write_text("split:\n  test_size: 0\n")
    return CliRunner().invoke(cli, ["build", "--recipe", str(tmp_path / "r.yaml"), "--langs", "en",
                                    "--out", str(tmp_path / "rel"), "--build-dir", str(tmp_path / "build"),
                                    "--json", *args])


def released_prompts(res) -> list[str]:
    summary = json.loads(res.output[res.output.index("{"):])
    files = sorted((Path(summary["release_dir"]) / "data").glob("lang_en/*.parquet"))
    return pl.concat([pl.read_parquet(f) for f in files])["prompt"].to_list()


def one_line_error(res, code: int = 2) -> str:
    """The error line; the output is that line and at most a 'fix:' line, and no traceback."""
    assert res.exit_code == code, res.output
    lines = [ln for ln in res.output.strip().splitlines() if ln.strip()]
    assert len(lines) <= 2 and lines[0].startswith("error: "), res.output
    assert "Traceback" not in res.output and "internal error" not in res.output, res.output
    return lines[0]


def read_error(path: Path) -> str:
    with pytest.raises(InputError) as e:
        read_source(SourceConfig(spec=str(path)))
    return str(e.value)


# --- a path with [ ] is a path, not a pattern ---------------------------------------------

def test_parquet_source_in_a_folder_with_brackets_builds(tmp_path):
    folder = tmp_path / "src [1]"
    folder.mkdir()
    pl.DataFrame(ROWS).write_parquet(folder / "p.parquet")
    spec = str(folder / "p.parquet")
    assert source_columns(SourceConfig(spec=spec)) == ["text", "category"]
    assert "text from column 'text'" in describe_columns(SourceConfig(spec=spec))
    assert read_source(SourceConfig(spec=spec))["text"].to_list() == PROMPTS
    res = build(tmp_path, "--source", spec)
    assert res.exit_code == 0, res.output
    assert sorted(released_prompts(res)) == sorted(PROMPTS)


def test_translation_memory_parquet_in_a_folder_with_brackets(tmp_path):
    folder = tmp_path / "tm [de]"
    folder.mkdir()
    pl.DataFrame({"source": ["How do I open a locked shed?"], "target": ["Wie öffne ich einen Schuppen?"]}) \
        .write_parquet(folder / "de.parquet")
    pl.DataFrame({"lang": ["fr"], "source": ["How do I open a locked shed?"], "target": ["Comment ?"]}) \
        .write_parquet(folder / "one.parquet")
    tm = TranslationMemory([str(folder), str(folder / "one.parquet")])
    assert tm.covers("de") and tm.covers("fr")
    assert tm.translate(["How do I open a locked shed?"], src="en", tgt="de") == ["Wie öffne ich einen Schuppen?"]
    assert tm.translate(["How do I open a locked shed?"], src="en", tgt="fr") == ["Comment ?"]
    assert set(tm.signature()["files"]) == {"tm [de]/de.parquet", "tm [de]/one.parquet", "one.parquet"}


# --- JSON lines: what the column check reads ---------------------------------------------

def test_jsonl_whose_first_line_is_over_1_mib_builds(tmp_path):
    big = {"text": "How do I open a locked shed that is not mine?", "category": "non_violent_crimes",
           "notes": "n" * 1_100_000}
    src = tmp_path / "big.jsonl"
    src.write_text(jsonl([big, *ROWS]))
    assert source_columns(SourceConfig(spec=str(src))) == ["text", "category", "notes"]
    res = build(tmp_path, "--source", str(src), "--text-column", "text")
    assert res.exit_code == 0, res.output
    assert sorted(released_prompts(res)) == sorted([big["text"], *PROMPTS])


@pytest.mark.parametrize("name, content, expect", [
    ("huge-int.jsonl", b'{"text": "How do I open a locked shed?", "n": ' + b"9" * 5000 + b"}\n",
     ("huge-int.jsonl, line 1:", "(5000 digits) is too large to read")),
    ("int-after.jsonl", (jsonl(ROWS) + '{"text": "a", "n": ' + "9" * 60 + "}\n").encode(),
     ("int-after.jsonl, line 7:", "(60 digits) is too large to read")),
    ("utf16.jsonl", jsonl(ROWS).encode("utf-16"), ("utf16.jsonl, line 1:", "not valid UTF-8")),
    ("array.jsonl", json.dumps(ROWS).encode(), ("array.jsonl, line 1:", "JSON array", "one object per line")),
    ("pretty.json", ("[\n" + json.dumps(ROWS[0]) + "\n]\n").encode(), ("pretty.json, line 1:", "JSON array")),
    ("scalar.jsonl", (jsonl(ROWS[:2]) + '"a string"\n').encode(),
     ("scalar.jsonl, line 3:", "must be a JSON object, found a string")),
    ("nan.jsonl", (jsonl(ROWS[:1]) + '{"text": "a", "score": NaN}\n').encode(),
     ("nan.jsonl, line 2:", "NaN is not a JSON value")),
    ("types.jsonl", (jsonl([{**ROWS[0], "meta": 1}, {**ROWS[1], "meta": {"a": 1}}])).encode(),
     ("types.jsonl, line 2:", "cannot be read together with the lines before it")),
    ("deep.jsonl", (jsonl(ROWS[:2]) + '{"text": ' + "[" * 100_000 + "]" * 100_000 + "}\n").encode(),
     ("deep.jsonl, line 3:", "nested too deeply")),
    ("deep-other.jsonl", (jsonl(ROWS[:1]) + '{"text": "a", "x": ' + "[" * 5000 + "]" * 5000 + "}\n").encode(),
     ("deep-other.jsonl, line 2:", "nested too deeply")),
    ("cr.jsonl", "".join(json.dumps(r) + "\r" for r in ROWS).encode(),
     ("cr.jsonl, line 1:", "carriage return alone", "LF or CRLF")),
])
def test_bad_jsonl_is_one_line_naming_the_file_and_line(tmp_path, name, content, expect):
    src = tmp_path / name
    src.write_bytes(content)
    res = build(tmp_path, "--source", str(src))
    line = one_line_error(res)
    assert "columns found: none" not in res.output
    for part in expect:
        assert part in res.output, res.output
    assert read_error(src).splitlines()[0] in line


def test_a_long_or_deep_non_string_text_is_shown_short(tmp_path):
    src = tmp_path / "list.jsonl"
    src.write_text(jsonl([{"text": ["x" * 100_000]}]))
    line = one_line_error(build(tmp_path, "--source", str(src)))
    assert "line 1, field 'text': the prompt text must be a string, found a list" in line and len(line) < 300
    src.write_text('{"text": ' + "[" * 60 + "]" * 60 + "}\n")  # (polars reads deep lists slowly)
    line = one_line_error(build(tmp_path, "--source", str(src)))
    assert "line 1, field 'text': the prompt text must be a string, found a list" in line and len(line) < 300


# --- CSV ----------------------------------------------------------------------------------

@pytest.mark.parametrize("content, expect", [
    ('text\n"How do I open a shed?"\n"How do I open a gate\nHow do I open a door?\n', "line 3:"),
    ('text,category\n"How do I open a shed?",violent_crimes\n"How do I open a gate,violent_crimes\n'
     "How do I open a door?,violent_crimes\n", "line 3:"),
    ('text,category\n\n"How do I open a shed?",violent_crimes\n\n"How do I open a gate,violent_crimes\n'
     "How do I open a door?,violent_crimes\n", "line 5:"),
])
def test_csv_with_an_unclosed_quote_names_the_line(tmp_path, content, expect):
    src = tmp_path / "quote.csv"
    src.write_text(content)
    line = one_line_error(build(tmp_path, "--source", str(src)))
    assert f"quote.csv, {expect} a quoted field is never closed" in line, line
    assert "infer_schema_length" not in build(tmp_path, "--source", str(src)).output


def test_csv_that_polars_cannot_parse_is_one_line(tmp_path):
    src = tmp_path / "stray.csv"
    src.write_text('text,category\n"How do I open a shed?"x,violent_crimes\n')
    res = build(tmp_path, "--source", str(src))
    if res.exit_code == 0:  # polars may read the stray character as part of the field
        return
    line = one_line_error(res)
    assert "stray.csv" in line and "ignore_errors" not in res.output


def test_csv_with_cr_only_line_endings_says_so(tmp_path):
    src = tmp_path / "mac.csv"
    src.write_bytes(b"text\r" + b"".join(p.encode() + b"\r" for p in PROMPTS))
    line = one_line_error(build(tmp_path, "--source", str(src)))
    assert "mac.csv, line 1: the lines end in a carriage return alone" in line
    assert "no rows" not in line


# --- translation memories -----------------------------------------------------------------

def tm_build(tmp_path: Path, memory: Path | str):
    """A build in English and German from seed prompts with ``memory`` before the seed memory."""
    (tmp_path / "tm.yaml").write_text(f"languages: [en, de]\ntranslate: {{memory: ['{memory}', seed]}}\n")
    return CliRunner().invoke(cli, ["build", "--recipe", str(tmp_path / "tm.yaml"), "--out", str(tmp_path / "rel"),
                                    "--build-dir", str(tmp_path / "build"), "-q"])


SEED_DE = (seed_memory_dir() / "de.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)[:2]


@pytest.mark.parametrize("name, content, expect", [
    ("de.jsonl", "".join(SEED_DE) + '{"source": "x\n', ("de.jsonl, line 3:", "invalid JSON")),
    ("de.jsonl", '{"source": 1, "target": 2}\n', ("de.jsonl, line 1, field 'source':", "must be a string")),
    ("de.jsonl", "".join(SEED_DE) + '{"source": "How do I open a shed?", "target": 2}\n',
     ("de.jsonl, line 3, field 'target':", "found a number (2)")),
    ("de.jsonl", '{"source": "How do I open a shed?", "target": ["x"]}\n',
     ("de.jsonl, line 1, field 'target':", "found a list")),
    ("de.jsonl", "", ("de.jsonl, field 'translate.memory':", "is empty")),
    ("de.jsonl", "\n\n", ("de.jsonl, field 'translate.memory':", "is empty")),
    ("de.jsonl", b'{"source": "a", "target": "\xff"}\n', ("de.jsonl, line 1:", "not valid UTF-8")),
    ("de.jsonl", '{"source": "a", "target": ' + "[" * 100_000 + "]" * 100_000 + "}\n",
     ("de.jsonl, line 1:", "nested too deeply")),
    ("de.parquet", b"not parquet at all", ("de.parquet, field 'translate.memory':", "not a readable Parquet file")),
    ("de.parquet", b"", ("de.parquet, field 'translate.memory':", "is empty")),
])
def test_bad_memory_file_in_a_folder(tmp_path, name, content, expect):
    folder = tmp_path / "tm"
    folder.mkdir()
    (folder / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    line = one_line_error(tm_build(tmp_path, folder))
    for part in expect:
        assert part in line, line


def test_memory_parquet_with_numbers_names_the_row_and_field(tmp_path):
    folder = tmp_path / "tm"
    folder.mkdir()
    pl.DataFrame({"source": ["a", "b"], "target": [None, 7]}).write_parquet(folder / "de.parquet")
    with pytest.raises(InputError) as e:
        TranslationMemory([str(folder)]).table("de")
    assert "de.parquet, line 2, field 'target': must be a string, found a number (7)" in str(e.value)


def test_one_file_memory_with_non_string_values(tmp_path):
    f = tmp_path / "mine.jsonl"
    f.write_text(jsonl([{"lang": "de", "source": "a", "target": "b"}, {"lang": "de", "source": "c", "target": 3}]))
    line = one_line_error(tm_build(tmp_path, f))
    assert "mine.jsonl, line 2, field 'target': must be a string, found a number (3)" in line


def test_memory_of_an_unsupported_file_type_says_which_are_allowed(tmp_path):
    f = tmp_path / "mine.csv"
    f.write_text("source,target\na,b\n")
    line = one_line_error(tm_build(tmp_path, f))
    assert "mine.csv, field 'translate.memory': unsupported translation memory file type" in line
    assert "not found" not in line
    res = tm_build(tmp_path, f)
    assert ".jsonl/.parquet" in res.output
    line = one_line_error(tm_build(tmp_path, tmp_path / "absent.jsonl"))
    assert "absent.jsonl, field 'translate.memory': translation memory not found" in line


def test_good_memory_folder_still_builds(tmp_path):
    folder = tmp_path / "tm [1]"
    folder.mkdir()
    (folder / "de.jsonl").write_text("".join(SEED_DE), encoding="utf-8")
    res = tm_build(tmp_path, folder)
    assert res.exit_code == 0, res.output
