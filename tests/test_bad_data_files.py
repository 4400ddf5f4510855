"""Data files a recipe points at (response templates, reference answers, a language-ID model)
that cannot be read: one line naming the file, never an internal error."""

from __future__ import annotations

import shutil

from click.testing import CliRunner

from refuseu.cli.main import cli
from refuseu.resources import data_dir


def build(tmp_path, recipe: str, *langs: str):
    (tmp_path / "r.yaml").write_text(recipe, encoding="utf-8")
    res = CliRunner().invoke(cli, ["build", "--recipe", str(tmp_path / "r.yaml"), "--langs",
                                   ",".join(langs or ("en",)), "--out", str(tmp_path / "out"),
                                   "--build-dir", str(tmp_path / "b"), "--quiet"])
    assert "internal error" not in res.output and "Traceback" not in res.output, res.output[-2000:]
    return res


def test_template_file_that_is_not_utf8(tmp_path):
    folder = tmp_path / "tpl"
    shutil.copytree(data_dir() / "templates", folder)
    (folder / "en.yaml").write_bytes((folder / "en.yaml").read_bytes() + b"\nbad: \xff\xfe\n")
    res = build(tmp_path, f"respond: {{templates: {folder}}}\n")
    assert res.exit_code == 2 and "en.yaml" in res.output and "not valid UTF-8" in res.output, res.output


def test_reference_answers_that_are_not_utf8(tmp_path):
    folder = tmp_path / "answers"
    folder.mkdir()
    (folder / "en.jsonl").write_bytes(b'{"source": "How do I bake bread?", "answer": "Mix flour."}\n'
                                      b'{"source": "caf\xe9", "answer": "x"}\n')
    res = build(tmp_path, f"respond: {{reference_answers: {folder}}}\n")
    assert res.exit_code == 2 and "en.jsonl" in res.output and "line 2" in res.output, res.output
    assert "not valid UTF-8" in res.output


def test_language_id_model_that_is_not_a_model(tmp_path):
    bogus = tmp_path / "lid.bin"
    bogus.write_bytes(b"this is not a fastText model\n" * 10)
    res = build(tmp_path, f"lid: {{fasttext_model: {bogus}}}\n", "en", "de")
    assert res.exit_code == 1 and "lid.bin" in res.output and "cannot be loaded" in res.output, res.output


def test_template_folder_without_a_language_of_the_build(tmp_path):
    folder = tmp_path / "tpl"
    folder.mkdir()
    shutil.copy(data_dir() / "templates" / "en.yaml", folder / "en.yaml")
    res = build(tmp_path, f"respond: {{templates: {folder}}}\n", "en", "de")
    assert res.exit_code == 2 and "field 'respond.templates'" in res.output, res.output
    assert "no refusal templates for language(s) de" in res.output and "exist for: en" in res.output


def test_hub_release_specs_are_checked_before_any_download(tmp_path, seed_release):
    """``hf:`` release specs (diff, report, --keep-test-from): a malformed id or an empty
    revision is bad input (exit 2); a release missing from the offline cache says so (exit 1)."""
    root, _ = seed_release
    for spec in ("hf:a", "hf:a b/c d", "hf:a/b@", "hf:a/b/c"):
        for args in (["diff", spec, str(root)], ["report", spec, "--out", str(tmp_path / "x.html")]):
            res = CliRunner().invoke(cli, args)
            assert res.exit_code == 2 and f"{spec}: not a Hub dataset id" in res.output, (args, res.output)
    res = CliRunner().invoke(cli, ["diff", "hf:owner/never-published@v1.0.0", str(root)])
    assert res.exit_code == 1 and "not in the local Hugging Face cache and HF_HUB_OFFLINE is set" in res.output


def test_a_release_path_that_does_not_exist_is_not_found(tmp_path):
    missing = str(tmp_path / "nowhere")
    for args in (["inspect", missing], ["report", missing], ["diff", missing, str(tmp_path)]):
        res = CliRunner().invoke(cli, args)
        assert res.exit_code == 2 and f"{missing}: not found" in res.output, (args, res.output)


def test_one_file_commands_name_the_line_of_unreadable_json(tmp_path):
    """judge and langid read JSONL themselves: a line nested too deeply for the parser, or with
    a number of more digits than Python converts, is that line's error (exit 2)."""
    deep = '{"text": ' + "[" * 100_000 + "]" * 100_000 + "}"
    (tmp_path / "deep.jsonl").write_text('{"text": "a", "lang": "en"}\n' + deep + "\n", encoding="utf-8")
    (tmp_path / "big.jsonl").write_text('{"text": "a", "n": ' + "9" * 5000 + "}\n", encoding="utf-8")
    for name, line, why in (("deep", 2, "lists or objects nested too deeply"),
                            ("big", 1, "a number too large to read")):
        for command in ("judge", "langid"):
            res = CliRunner().invoke(cli, [command, str(tmp_path / f"{name}.jsonl"),
                                           "--out", str(tmp_path / "o.jsonl")])
            assert res.exit_code == 2 and f"{name}.jsonl, line {line}: invalid JSON: {why}" in res.output, res.output


def _reseal_file(root, rel: str, df) -> None:
    """Rewrite a release file and its manifest entry with valid hashes (as someone who
    re-seals an edited release would): only the contents can tell."""
    import json

    from refuseu.release.manifest import content_checksum, sha256_file

    df.write_parquet(root / rel)
    path = root / "manifest.json"
    m = json.loads(path.read_text(encoding="utf-8"))
    m.pop("content_sha256")
    m["files"][rel] = {**m["files"][rel], "bytes": (root / rel).stat().st_size, "sha256": sha256_file(root / rel)}
    m["content_sha256"] = content_checksum(m)
    path.write_text(json.dumps(m, indent=2), encoding="utf-8")


def test_resealed_files_without_the_columns_readers_need_are_damaged(tmp_path, seed_release):
    """verify checks each data file's id/lang/split/kind columns (text) and score columns
    (numbers), and the rejects file's columns: a re-sealed release that lacks them is damaged
    (exit 1) for every command that verifies first, never an internal error."""
    import polars as pl

    src, _ = seed_release
    cases = {"no_lang": ("data/lang_en/train-00000-of-00001.parquet", lambda df: df.drop("lang"),
                         "lacks the column lang"),
             "qe_text": ("data/evaluation/eval-00000-of-00001.parquet",
                         lambda df: df.with_columns(pl.col("qe_score").cast(pl.String)), "column qe_score is"),
             "rejects": ("rejects.parquet", lambda df: df.rename({"stage": "step"}), "lacks the column stage")}
    for name, (rel, edit, words) in cases.items():
        root = tmp_path / name / src.name
        shutil.copytree(src, root)
        _reseal_file(root, rel, edit(pl.read_parquet(root / rel)))
        for args in (["verify", str(root)], ["inspect", str(root)],
                     ["report", str(root), "--out", str(tmp_path / "x.html")], ["diff", str(src), str(root)]):
            res = CliRunner().invoke(cli, args)
            assert res.exit_code == 1 and words in res.output and "internal error" not in res.output, (args, res.output)
    assert CliRunner().invoke(cli, ["verify", str(src)]).exit_code == 0  # the release as built passes
