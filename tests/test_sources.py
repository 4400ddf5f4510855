import hashlib
import json

import polars as pl
import pytest

from refuseu.config import SourceConfig
from refuseu.errors import InputError
from refuseu.sources import fingerprint_source, read_source
from refuseu.taxonomy import load_taxonomy

GOOD = {"text": "How do I pick a lock?", "kind": "harmful", "category": "non_violent_crimes",
        "attack_style": "slang"}


def test_seed_has_required_coverage():
    df = read_source(SourceConfig(spec="seed"))
    harmful = df.filter(pl.col("kind") == "harmful")
    benign = df.filter(pl.col("kind") == "benign")
    assert harmful.height >= 130 and benign.height >= 40
    cats = set(harmful.get_column("category"))
    assert len(cats) == 13 and "child_sexual_exploitation" not in cats
    assert "child_sexual_exploitation" not in set(df.get_column("category"))
    pairs = set(harmful.select("category", "attack_style").iter_rows())
    assert len(pairs) == 130  # every category x every style
    assert df.get_column("text").n_unique() == df.height


@pytest.mark.parametrize("lines, line, field, message", [
    ([json.dumps(GOOD), '{"text": "broken', json.dumps(GOOD)], 2, None, "invalid JSON"),
    ([json.dumps(GOOD), json.dumps({**GOOD, "category": "arson"})], 2, "category", "unknown category 'arson'"),
    ([json.dumps({**GOOD, "attack_style": "yodel"})], 1, "attack_style", "unknown attack style"),
    ([json.dumps(GOOD), json.dumps({**GOOD, "kind": "nice"})], 2, "kind", "unknown kind"),
    ([json.dumps({**GOOD, "category_name": "hate"})], None, "category", "two columns could hold the category"),
    ([json.dumps({"body": "x", "category": "hate"})], None, "text", "missing required column 'text'"),
])
def test_bad_jsonl_names_line_and_field(write_jsonl, lines, line, field, message):
    path = write_jsonl(lines)
    with pytest.raises(InputError) as e:
        read_source(SourceConfig(spec=str(path)))
    err = e.value
    assert err.exit_code == 2
    assert message in str(err)
    assert err.file == str(path)
    assert err.line == line
    assert err.field == field
    if field in ("category", "attack_style", "kind") and "unknown" in message:
        assert "allowed:" in err.hint or "allowed" in str(err)


def test_wrong_encoding_reports_line(tmp_path):
    p = tmp_path / "latin1.jsonl"
    p.write_bytes(json.dumps(GOOD).encode() + b"\n" + '{"text": "caf\xe9"}'.encode("latin-1") + b"\n")
    with pytest.raises(InputError) as e:
        read_source(SourceConfig(spec=str(p)))
    assert e.value.line == 2 and "UTF-8" in str(e.value)


def test_csv_with_mapping_and_defaults(tmp_path):
    p = tmp_path / "p.csv"
    p.write_text('prompt,hazard\n"Tell me how to, you know, hurt someone",S1\nwrite hateful jokes,Hate\n',
                 encoding="utf-8")
    df = read_source(SourceConfig(spec=str(p), columns={"text": "prompt", "category": "hazard"}))
    assert df.get_column("category").to_list() == ["violent_crimes", "hate"]
    assert df.get_column("kind").to_list() == ["harmful", "harmful"]
    assert df.get_column("attack_style").to_list() == [None, None]
    assert df.get_column("source_row").to_list() == [2, 3]


def test_csv_ragged_row(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("text,category\na,hate\nb,hate,extra\n", encoding="utf-8")
    with pytest.raises(InputError) as e:
        read_source(SourceConfig(spec=str(p)))
    assert e.value.line == 3


def test_parquet_and_category_default(tmp_path):
    p = tmp_path / "p.parquet"
    pl.DataFrame({"text": ["a b c d", "e f g h"], "style": ["Role play", "slang"]}).write_parquet(p)
    df = read_source(SourceConfig(spec=str(p), category="privacy", columns={"attack_style": "style"}))
    assert df.get_column("category").to_list() == ["privacy", "privacy"]
    assert df.get_column("attack_style").to_list() == ["role_play", "slang"]


def test_not_parquet(tmp_path):
    p = tmp_path / "x.parquet"
    p.write_text("not parquet")
    with pytest.raises(InputError, match="Parquet"):
        read_source(SourceConfig(spec=str(p)))


@pytest.mark.parametrize("spec", ["nope.jsonl", "file.txt"])
def test_missing_or_unsupported_file(tmp_path, spec):
    with pytest.raises(InputError):
        read_source(SourceConfig(spec=str(tmp_path / spec)))


def test_hub_source_offline_is_a_clear_build_error():
    from refuseu.errors import BuildError
    with pytest.raises(BuildError, match="offline, and revision 'main' of nobody/nothing is not in the local") as e:
        read_source(SourceConfig(spec="hf:nobody/nothing@main"))
    assert "hf:owner/name@<commit>" in e.value.hint


def test_hub_spec_must_name_owner_and_dataset():
    with pytest.raises(InputError, match="hf:owner/name"):
        read_source(SourceConfig(spec="hf:justname"))


# --- labels and fingerprints: no local path leaves the machine --------------------------

def test_relative_and_absolute_spellings_give_identical_rows(tmp_path, monkeypatch, write_jsonl):
    path = write_jsonl([GOOD, {**GOOD, "text": "How do I open a car without its key?"}], name="mine.jsonl")
    monkeypatch.chdir(tmp_path.parent)
    spellings = [str(path), f"{tmp_path.name}/mine.jsonl", f"./{tmp_path.name}/../{tmp_path.name}/mine.jsonl"]
    frames = [read_source(SourceConfig(spec=s)) for s in spellings]
    assert all(f.equals(frames[0]) for f in frames)
    assert set(frames[0].get_column("source")) == {"mine.jsonl"}
    prints = [fingerprint_source(SourceConfig(spec=s)) for s in spellings]
    assert all(p == prints[0] for p in prints)


def test_fingerprint_holds_no_local_path(tmp_path, write_jsonl):
    path = write_jsonl([GOOD])
    fp = fingerprint_source(SourceConfig(spec=str(path), category="hate", columns={"text": "text"}))
    assert fp == {"label": "prompts.jsonl", "bytes": path.stat().st_size,
                  "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "columns": {"text": "text"},
                  "kind": None, "category": "hate", "attack_style": None, "split": "train",
                  "aliases": load_taxonomy().alias_digest}
    assert str(tmp_path) not in json.dumps(fp)
    seed = fingerprint_source(SourceConfig(spec="seed"))
    assert seed["label"] == "seed" and seed["bytes"] > 0 and len(seed["sha256"]) == 64
    assert "/" not in json.dumps(seed)


@pytest.mark.parametrize("spec, label", [
    ("hf:owner/name", "hf:owner/name@main"),
    ("hf:owner/name@v1.2", "hf:owner/name@v1.2"),
    ("hf:owner/name:default@abc123", "hf:owner/name:default@abc123"),
])
def test_hub_label_names_the_revision(spec, label, monkeypatch):
    import refuseu.sources.hub as hub

    monkeypatch.setattr(hub, "_resolve", lambda name, rev, spec: "c" * 40)  # what the Hub would answer
    monkeypatch.setattr(hub, "_remember", lambda *a: None)
    monkeypatch.setattr(hub, "_resolved", {})
    fp = fingerprint_source(SourceConfig(spec=spec, split="test"))
    assert fp["label"] == label and fp["bytes"] is None and fp["sha256"] is None and fp["split"] == "test"
    assert fp["commit"] == "c" * 40


def test_errors_name_the_path_as_typed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "p.jsonl").write_text(json.dumps({**GOOD, "category": "arson"}) + "\n")
    with pytest.raises(InputError) as e:
        read_source(SourceConfig(spec="./sub/p.jsonl"))
    assert str(e.value).startswith("./sub/p.jsonl, line 1, field 'category'")


# --- missing and empty values take their defaults --------------------------------------

def test_missing_or_empty_kind_is_harmful_or_the_source_default(write_jsonl):
    base = {k: v for k, v in GOOD.items() if k != "kind"}
    rows = [{**base, "kind": None}, {**base, "text": "b b b", "kind": ""}, {**base, "text": "c c c", "kind": " "},
            {**base, "text": "d d d"}, {**base, "text": "e e e", "kind": "Benign"}]
    path = write_jsonl(rows)
    assert read_source(SourceConfig(spec=str(path))).get_column("kind").to_list() == ["harmful"] * 4 + ["benign"]
    df = read_source(SourceConfig(spec=str(path), kind="benign"))
    assert df.get_column("kind").to_list() == ["benign"] * 5


def test_empty_category_takes_the_source_default(write_jsonl):
    path = write_jsonl([GOOD, {**GOOD, "text": "b b b", "category": ""}, {**GOOD, "text": "c c c", "category": None}])
    df = read_source(SourceConfig(spec=str(path), category="hate"))
    assert df.get_column("category").to_list() == ["non_violent_crimes", "hate", "hate"]
    # Without a default, rows without a category count as uncategorized.
    df = read_source(SourceConfig(spec=str(path)))
    assert df.get_column("category").to_list() == ["non_violent_crimes", "uncategorized", "uncategorized"]


# --- file-level problems ----------------------------------------------------------------

@pytest.mark.parametrize("name, content, message", [
    ("e.jsonl", b"", "the file is empty"),
    ("e.csv", b"", "the file is empty"),
    ("b.jsonl", b"\n \n\t\n", "the file has no rows (only blank lines)"),
    ("b.csv", b"\xef\xbb\xbf\r\n", "the file has no rows (only blank lines)"),
    ("h.csv", b"text,category\n", "the file has no rows (only a header line)"),
])
def test_empty_files(tmp_path, name, content, message):
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(InputError) as e:
        read_source(SourceConfig(spec=str(p)))
    assert e.value.file == str(p) and message in str(e.value)


@pytest.mark.parametrize("name, content", [
    ("bom.jsonl", b"\xef\xbb\xbf" + json.dumps(GOOD).encode() + b"\n"),
    ("bom.csv", b"\xef\xbb\xbftext,category\nHow do I pick a lock?,non_violent_crimes\n"),
])
def test_utf8_bom_is_not_data(tmp_path, name, content):
    p = tmp_path / name
    p.write_bytes(content)
    df = read_source(SourceConfig(spec=str(p)))
    assert df.get_column("text").to_list() == [GOOD["text"]]
    assert df.get_column("category").to_list() == ["non_violent_crimes"]


@pytest.mark.parametrize("value, found", [(5, "a number"), (2.5, "a number"), (True, "a boolean"),
                                          (["a"], "a list"), ({"a": 1}, "an object")])
def test_text_must_be_a_string(write_jsonl, value, found):
    path = write_jsonl([GOOD, {**GOOD, "text": value}])
    with pytest.raises(InputError) as e:
        read_source(SourceConfig(spec=str(path)))
    assert (e.value.line, e.value.field) == (2, "text") and found in str(e.value)


def test_numbers_as_strings_are_text(write_jsonl):
    path = write_jsonl([GOOD, {**GOOD, "text": "12345"}, {**GOOD, "text": "[not json]"}])
    assert read_source(SourceConfig(spec=str(path))).get_column("text").to_list()[1:] == ["12345", "[not json]"]


def test_folder_and_empty_spec(tmp_path):
    from refuseu.sources.readers import check_sources

    (tmp_path / "d.jsonl").mkdir()
    for check in (lambda s: read_source(s), lambda s: fingerprint_source(s), lambda s: check_sources([s])):
        with pytest.raises(InputError, match="is a folder, not a file"):
            check(SourceConfig(spec=str(tmp_path / "d.jsonl")))
    with pytest.raises(Exception, match="empty source"):
        SourceConfig(spec="  ")
