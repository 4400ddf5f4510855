import hashlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from refuseu.build import build
from refuseu.cli.main import cli
from refuseu.errors import ReleaseExistsError

REPO = Path(__file__).resolve().parents[1]


def data_hashes(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "manifest.json"}


def test_seed_release_layout_and_manifest(seed_release):
    root, summary = seed_release
    assert summary.status == "built"
    assert root.name == "refuseu-seed-v0.1.0"
    for rel in ("README.md", "manifest.json", "rejects.parquet", "data/lang_en/train-00000-of-00001.parquet",
                "data/lang_en/test-00000-of-00001.parquet", "data/evaluation/eval-00000-of-00001.parquet"):
        assert (root / rel).is_file(), rel
    m = json.loads((root / "manifest.json").read_text())
    assert m["version"] == "0.1.0" and m["build_signature"] == summary.signature
    assert list(m["funnel"]) == ["sources", "normalize", "dedup", "split", "translate", "qe", "lid_prompt",
                                 "respond", "lid_response"]
    for stage, per_lang in m["funnel"].items():
        for lang, f in per_lang.items():
            assert f["in"] == f["kept"] + f["rejected"], (stage, lang)
    for rel, info in m["files"].items():
        assert hashlib.sha256((root / rel).read_bytes()).hexdigest() == info["sha256"]
    assert m["recipe"]["name"] == "refuseu-seed" and "polars" in m["packages"]


def test_release_loads_offline_with_datasets(seed_release):
    import datasets

    root, _ = seed_release
    ds = datasets.load_dataset(str(root), "lang_en")
    assert set(ds) == {"train", "test"}
    assert ds["train"].num_rows > 100 and ds["test"].num_rows >= 26
    row = ds["train"][0]
    assert row["chosen"] and row["rejected"] and row["lang"] == "en"
    ev = datasets.load_dataset(str(root), "evaluation")
    kinds = set(ev["eval"]["kind"])
    assert kinds == {"harmful", "benign"}
    assert set(ev["eval"].filter(lambda r: r["kind"] == "harmful")["split"]) == {"test"}


def test_test_split_is_contamination_free(seed_release):
    root, _ = seed_release
    train = pl.read_parquet(root / "data/lang_en/train-00000-of-00001.parquet")
    test = pl.read_parquet(root / "data/lang_en/test-00000-of-00001.parquet")
    assert not set(train["group_id"]) & set(test["group_id"])
    # The default test_size is a share (0.25) of every category's groups.
    per_cat = dict(test.group_by("category").len().iter_rows())
    for cat, n_train in train.group_by("category").len().iter_rows():
        assert abs(per_cat.get(cat, 0) - 0.25 * (n_train + per_cat.get(cat, 0))) <= 1, cat


def test_second_build_does_no_work_and_is_byte_identical(make_recipe, tmp_path):
    recipe = make_recipe()
    first = build(recipe)
    before = data_hashes(Path(first.release_dir))
    again = build(recipe)
    assert again.status == "up_to_date" and again.stages_run == []
    assert again.signature == first.signature
    assert data_hashes(Path(first.release_dir)) == before


def test_independent_builds_are_byte_identical(make_recipe, tmp_path):
    a = build(make_recipe())
    b = build(make_recipe(build_dir=str(tmp_path / "other-build"), release={"out": str(tmp_path / "other-out")}))
    assert a.release_dir != b.release_dir
    assert data_hashes(Path(a.release_dir)) == data_hashes(Path(b.release_dir))


def test_existing_version_with_other_content_is_never_overwritten(make_recipe):
    first = build(make_recipe())
    before = data_hashes(Path(first.release_dir))
    with pytest.raises(ReleaseExistsError) as e:
        build(make_recipe(seed=99))  # a different split, same version
    assert "bump the version" in e.value.hint and e.value.exit_code == 1
    assert data_hashes(Path(first.release_dir)) == before
    bumped = build(make_recipe(seed=99, version="0.1.1"))
    assert bumped.status == "built" and bumped.release_dir.endswith("refuseu-seed-v0.1.1")


def test_equivalent_recipe_change_is_up_to_date(make_recipe):
    first = build(make_recipe())
    # No seed prompt is anywhere near this long: same rows, other signature.
    second = build(make_recipe(normalize={"max_chars": 5000}))
    assert second.signature != first.signature
    assert second.status == "up_to_date"


def test_changed_stage_reruns_only_it_and_later(make_recipe):
    build(make_recipe())
    s = build(make_recipe(split={"test_size": 3}, version="0.2.0"))
    assert s.stages_run == ["split", "translate", "qe", "lid_prompt", "respond", "lid_response"]


def test_bad_rows_are_rejected_not_fatal(make_recipe, write_jsonl):
    path = write_jsonl([
        {"text": "How could I sneak into a concert without paying?", "category": "non_violent_crimes"},
        {"text": "   ", "category": "hate"},
        {"text": "x" * 300, "category": "hate"},
        {"text": "How could I sneak into a concert   without paying?", "category": "non_violent_crimes"},
    ])
    s = build(make_recipe(sources=[str(path)], normalize={"max_chars": 200}, split={"test_size": 0}))
    rejects = pl.read_parquet(Path(s.release_dir) / "rejects.parquet")
    assert sorted(rejects.get_column("reason").to_list()) == ["duplicate", "empty", "too_long"]
    assert s.counts["lang_en/train"] == 1


# --- command line ---------------------------------------------------------------

def run_cli(args, cwd=None):
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def cli_args(tmp_path, *extra):
    langs = [] if "--langs" in extra else ["--langs", "en"]
    return ["build", *langs, "--build-dir", str(tmp_path / "b"), "--out", str(tmp_path / "r"), *extra]


def test_cli_build_json_and_inspect(tmp_path):
    res = run_cli(cli_args(tmp_path, "--json"))
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["status"] == "built" and summary["languages"] == ["en"]
    res = run_cli(["inspect", summary["release_dir"], "--json"])
    info = json.loads(res.output)
    assert info["configs"]["lang_en/train"]["rows"] == summary["counts"]["lang_en/train"]
    assert sum(info["by_category"]["lang_en/test"].values()) == summary["counts"]["lang_en/test"]
    text = run_cli(["inspect", summary["release_dir"], "--full"]).output
    assert "by attack style" in text and "lang_en/train" in text
    again = run_cli(cli_args(tmp_path))
    assert again.output.count("up to date") == 1 and "build signature: " + summary["signature"] in again.output


@pytest.mark.parametrize("extra, code, message", [
    (["--langs", "xx"], 2, "unknown language code 'xx'"),
    (["--source", "missing.jsonl"], 2, "source file not found"),
    (["--version", "1.2"], 2, "semantic version"),
    (["--recipe", "nope.yaml"], 2, "recipe file not found"),
    (["--langs", "bg"], 1, "no translation memory and no MT engine for language(s) bg"),
])
def test_cli_errors_have_exit_codes_and_messages(tmp_path, extra, code, message):
    res = CliRunner().invoke(cli, cli_args(tmp_path, *extra))
    assert res.exit_code == code, res.output
    assert message in res.output
    assert "Traceback" not in res.output
    assert not (tmp_path / "b" / "stages").exists()  # nothing ran


def test_cli_bad_row_in_file_names_file_line_field(tmp_path, write_jsonl):
    path = write_jsonl([{"text": "a fine prompt here", "category": "hate"}, {"text": "b", "category": "S99"}])
    res = CliRunner().invoke(cli, cli_args(tmp_path, "--source", str(path)))
    assert res.exit_code == 2
    assert f"{path}, line 2, field 'category': unknown category 'S99'" in res.output
    assert "allowed category ids:" in res.output and "closest known labels" in res.output


def test_cli_existing_release_exit_1(tmp_path):
    assert run_cli(cli_args(tmp_path)).exit_code == 0
    recipe = tmp_path / "r.yaml"
    recipe.write_text("seed: 1234\n")
    res = CliRunner().invoke(cli, cli_args(tmp_path, "--recipe", str(recipe)))
    assert res.exit_code == 1 and "already exists" in res.output and "bump the version" in res.output


def test_every_command_has_help_and_is_in_readme():
    readme = (REPO / "README.md").read_text()
    for name, cmd in cli.commands.items():
        res = CliRunner().invoke(cli, [name, "--help"])
        assert res.exit_code == 0 and cmd.help, name
        assert f"refuseu {name}" in readme, f"README does not document 'refuseu {name}'"
        for param in cmd.params:
            for opt in param.opts:
                if opt.startswith("--") and opt != "--help":
                    assert opt in readme, f"README does not mention {name} {opt}"
    assert "refuseu --version" in readme


@pytest.mark.slow
def test_killed_build_resumes(tmp_path, write_jsonl):
    """SIGKILL a real build process after its first stage is cached; the rerun continues."""
    rows = [{"text": f"request number {i} about getting into a building at night {i % 97}", "category": "violent_crimes"}
            for i in range(60_000)]
    src = write_jsonl(rows)
    args = [sys.executable, "-m", "refuseu.cli.main", "build", "--langs", "en", "--source", str(src), "--build-dir",
            str(tmp_path / "b"), "--out", str(tmp_path / "r"), "--quiet"]
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stages = tmp_path / "b" / "stages"
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if list(stages.glob("01-normalize/*/meta.json")):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait()
    if proc.returncode != -signal.SIGKILL:
        pytest.skip("the build finished before it could be killed")
    assert not (tmp_path / "r").exists()
    out = subprocess.run(args[:-1] + ["--json"], cwd=tmp_path, capture_output=True, text=True, check=True)
    summary = json.loads(out.stdout)
    assert "sources" not in summary["stages_run"] and "normalize" not in summary["stages_run"]
    assert summary["stages_run"][-1] == "lid_response" and summary["status"] == "built"


@pytest.fixture(scope="module")
def all12(tmp_path_factory):
    from refuseu.config import load_recipe

    root = tmp_path_factory.mktemp("all12")
    recipe = load_recipe(None, overrides={"languages": "all", "build_dir": str(root / "b"),
                                          "release": {"out": str(root / "r")}})
    return build(recipe)


def test_all12_release_offline(all12):
    import datasets

    from refuseu.languages import ALL12

    root = Path(all12.release_dir)
    assert all12.languages == list(ALL12)
    test_ids = {}
    for lang in ALL12:
        ds = datasets.load_dataset(str(root), f"lang_{lang}")
        assert ds["train"].num_rows > 100 and ds["test"].num_rows > 20, lang
        assert set(ds["train"]["lang"]) == {lang}
        if lang != "en":
            assert set(ds["train"]["origin"]) == {"tm"}
            assert all(s is not None and s >= 0.5 for s in ds["train"]["lid_score"])
        test_ids[lang] = set(ds["test"]["prompt_id"])
    # the test split is decided once: the same prompt ids are test prompts in every language
    assert all(ids == test_ids["en"] for ids in test_ids.values())
    rejects = pl.read_parquet(root / "rejects.parquet")
    assert rejects.height == 0, rejects.head(5)  # every shipped translation and template passes LID


def test_all12_responses_are_native(all12):
    from refuseu.engines.responders.templates import TemplateRegistry

    from refuseu.engines.responders.reference import ReferenceAnswers

    reg = TemplateRegistry()
    root = Path(all12.release_dir)
    for lang in ("de", "sl", "lv"):
        df = pl.read_parquet(root / f"data/lang_{lang}/train-00000-of-00001.parquet")
        tpl = reg.get(lang)
        harmful, benign = df.filter(pl.col("kind") == "harmful"), df.filter(pl.col("kind") == "benign")
        assert set(harmful["chosen"]) <= set(tpl.iter_refusals())
        assert set(harmful["rejected"]) <= set(tpl.iter_rejected())
        assert benign.height and set(benign["chosen"]) <= set(ReferenceAnswers().answers(lang).values())
        assert set(benign["rejected"]) <= set(tpl.over_refusals)


def test_dataset_card_is_up_to_date(tmp_path):
    """DATASET_CARD.md is the card of the default build; regenerate it with `refuseu card`."""
    from refuseu.build import render_recipe_card

    expected = render_recipe_card(None, build_dir=str(tmp_path / "b"))
    current = (REPO / "DATASET_CARD.md").read_text(encoding="utf-8")
    assert current == expected, "DATASET_CARD.md is out of date: run `refuseu card`"


def test_card_front_matter_validates_and_every_config_loads(all12):
    import datasets
    import yaml

    root = Path(all12.release_dir)
    text = (root / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n")
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["license"] and meta["task_categories"] == ["text-generation"] and meta["extra_gated_prompt"]
    assert set(meta["language"]) == set(all12.languages)
    for cfg in meta["configs"]:
        for df in cfg["data_files"]:
            assert list(root.glob(df["path"])), (cfg["config_name"], df["path"])  # every path matches files
        ds = datasets.load_dataset(str(root), cfg["config_name"])
        assert set(ds) == {d["split"] for d in cfg["data_files"]}
    body = text.split("---\n", 2)[2]
    for section in ("Content warning", "## Languages", "## Taxonomy", "## How it was built", "### Funnel",
                    "## Intended use", "## Loading", "## Citation", "Translation quality"):
        assert section in body, section
    # The released rows carry language-ID scores, and the card (made from summaries gathered
    # while the files were written) says so.
    assert "Every non-English prompt and response passed language identification" in body


def test_diff_shows_exactly_one_languages_changes(all12, tmp_path):
    from refuseu.config import load_recipe
    from refuseu.release.diff import diff_releases, format_diff

    out = str(Path(all12.release_dir).parent)
    build_dir = str(Path(all12.release_dir).parents[1] / "b")
    recipe = load_recipe(None, overrides={"languages": "all", "build_dir": build_dir, "release": {"out": out},
                                          "version": "0.2.0", "lid": {"thresholds": {"sk": 0.995}}})
    new = build(recipe)
    d = diff_releases(all12.release_dir, new.release_dir)
    changed = {k: v for k, v in d["configs"].items() if v["added"] or v["removed"] or v["changed"]}
    assert changed and set(changed) <= {"lang_sk/train", "lang_sk/test", "evaluation/eval"}
    ids = [i for v in changed.values() for key in ("added_ids", "removed_ids", "changed_ids") for i in v[key]]
    assert ids and all(i.endswith("-sk") for i in ids)
    assert d["manifest"]["recipe.lid.thresholds.sk"] == {"old": None, "new": 0.995}
    assert d["manifest"]["version"] == {"old": "0.1.0", "new": "0.2.0"}
    m = json.loads((Path(new.release_dir) / "manifest.json").read_text())
    assert m["previous"] == {"version": "0.1.0", "build_signature": all12.signature}
    assert "lang_sk" in format_diff(d)


def test_bump(tmp_path):
    res = run_cli(cli_args(tmp_path, "--json"))
    assert json.loads(res.output)["version"] == "0.1.0"
    recipe = tmp_path / "r.yaml"
    recipe.write_text("seed: 4242\n")
    res = run_cli(cli_args(tmp_path, "--recipe", str(recipe), "--bump", "minor", "--json"))
    assert json.loads(res.output)["version"] == "0.2.0"
    res = run_cli(cli_args(tmp_path, "--recipe", str(recipe), "--bump", "patch", "--json"))
    summary = json.loads(res.output)
    assert summary["version"] == "0.2.1" and summary["status"] == "built"
    m = json.loads((Path(summary["release_dir"]) / "manifest.json").read_text())
    assert m["previous"]["version"] == "0.2.0"


def test_every_row_rejected_is_a_failed_build_naming_the_reasons(tmp_path, write_jsonl):
    src = write_jsonl([{"text": "ab", "category": "hate"}, {"text": "cd", "category": "hate"}])
    res = CliRunner().invoke(cli, ["build", "--langs", "en,de", "--source", str(src), "--build-dir",
                                   str(tmp_path / "b"), "--out", str(tmp_path / "r"), "-q"])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.output
    assert "no row survived" in res.output and "normalize/too_short: 2" in res.output
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def test_two_sources_with_rejected_rows_build(tmp_path, write_jsonl):
    """Rows of several sources are several chunks; rejecting some must still work (polars 2.1
    panicked formatting the reject detail of a filtered multi-chunk column)."""
    src = write_jsonl([{"text": "", "category": "hate"}, {"text": "ab", "category": "hate"},
                       {"text": "How can I read my partner's messages without them knowing?", "category": "privacy"}])
    res = CliRunner().invoke(cli, ["build", "--source", "seed", "--source", str(src), "--langs", "en",
                                   "--build-dir", str(tmp_path / "b"), "--out", str(tmp_path / "r"), "--json"])
    assert res.exit_code == 0, res.output
    (rel,) = (tmp_path / "r").iterdir()
    rejects = pl.read_parquet(rel / "rejects.parquet")
    assert {"empty", "too_short"} <= set(rejects["reason"])
    assert rejects.filter(pl.col("reason") == "too_short")["detail"][0].startswith("prompts.jsonl:2 ")


def test_an_unexpected_error_is_one_line_and_a_crash_log(monkeypatch):
    import refuseu.release.verify as verify

    def boom(*a, **k):
        raise RuntimeError("boom")

    monkeypatch.setattr(verify, "verify_release", boom)
    monkeypatch.delenv("REFUSEU_DEBUG", raising=False)
    res = CliRunner().invoke(cli, ["verify", "somewhere"])
    assert res.exit_code == 1 and "internal error (RuntimeError: boom)" in res.output
    log = res.output.split("details in ")[1].split()[0].rstrip(")")
    assert "Traceback" in Path(log).read_text() and "Traceback" not in res.output
