"""Recipe numbers out of range, ``validate`` options refused before any training, ``verify``
on something that is not a release, and a re-sealed manifest with values of the wrong type:
each ends in one line naming what is wrong and what is allowed, never a traceback.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from refuseu.cli.main import cli
from refuseu.config import SEED_MAX, load_recipe
from refuseu.errors import RecipeError


def run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_line_error(res, code: int) -> str:
    assert res.exit_code == code, res.output
    assert "internal error" not in res.output and "Traceback" not in res.output, res.output
    return res.output


# --- 1. recipe numbers -----------------------------------------------------------------------

RANGE_CASES = [
    # (recipe YAML, field named, words of what is allowed)
    ("seed: -5\n", "seed", f"from 0 to {SEED_MAX}"),
    ("seed: 99999999999999999999999999999\n", "seed", f"from 0 to {SEED_MAX}"),
    (f"seed: {SEED_MAX + 1}\n", "seed", f"from 0 to {SEED_MAX}"),
    ("translate: {seed: -1}\n", "translate.seed", f"from 0 to {SEED_MAX}"),
    ("respond: {seed: -1}\n", "respond.seed", f"from 0 to {SEED_MAX}"),
    ("judge: {seed: 4294967296}\n", "judge.seed", f"from 0 to {SEED_MAX}"),
    ("split: {test_size: .nan}\n", "split.test_size", "int >= 0 or a float in [0, 1)"),
    ("split: {test_size: .inf}\n", "split.test_size", "int >= 0 or a float in [0, 1)"),
    ("split: {test_size: true}\n", "split.test_size", "true/false is not a number"),
    ("split: {per_category: {violent_crimes: .nan}}\n", "split.per_category.violent_crimes",
     "int >= 0 or a float in [0, 1)"),
    ("split: {per_category: {violent_crimes: -3}}\n", "split.per_category.violent_crimes",
     "int >= 0 or a float in [0, 1)"),
    ("split: {per_category: {violent_crimes: -0.5}}\n", "split.per_category.violent_crimes",
     "int >= 0 or a float in [0, 1)"),
    ("split: {per_category: {violent_crimes: 7.5}}\n", "split.per_category.violent_crimes",
     "int >= 0 or a float in [0, 1)"),
    ("split: {per_category: {violent_crimes: false}}\n", "split.per_category", "true/false is not a number"),
    ("split: {per_category: {nonexistent_cat: 1}}\n", "split.per_category",
     "unknown category 'nonexistent_cat'; allowed: child_sexual_exploitation"),
    ("lid: {thresholds: {de: 7}}\n", "lid.thresholds.de", "a number from 0 to 1"),
    ("lid: {thresholds: {de: -7}}\n", "lid.thresholds.de", "a number from 0 to 1"),
    ("lid: {thresholds: {de: .nan}}\n", "lid.thresholds.de", "a number from 0 to 1"),
    ("lid: {thresholds: {xx: 0.5}}\n", "lid.thresholds", "unknown language code 'xx'; allowed: bg, cs"),
    ("lid: {threshold: .nan}\n", "lid.threshold", "finite number"),
    ("qe: {thresholds: {de: .nan}}\n", "qe.thresholds.de", "finite number"),
    ("qe: {thresholds: {xx: 0.5}}\n", "qe.thresholds", "unknown language code 'xx'"),
    ("qe: {percentiles: {de: 300}}\n", "qe.percentiles.de", "above 0 and at most 100"),
    ("qe: {percentiles: {de: 0}}\n", "qe.percentiles.de", "above 0 and at most 100"),
    ("respond: {modes: {xx: native}}\n", "respond.modes", "unknown language code 'xx'"),
    ("translate: {models: {xx: some/model}}\n", "translate.models", "unknown language code 'xx'"),
    ("normalize: {max_chars: false}\n", "normalize.max_chars", "true/false is not a number"),
]


@pytest.mark.parametrize("text,field,allowed", RANGE_CASES, ids=[c[0].strip() for c in RANGE_CASES])
def test_recipe_number_out_of_range(tmp_path, text, field, allowed):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(text, encoding="utf-8")
    with pytest.raises(RecipeError) as e:
        load_recipe(recipe)
    assert e.value.field == field
    assert allowed in e.value.message


@pytest.mark.parametrize("text", ["seed: -5\n", "split: {test_size: .nan}\n", "lid: {thresholds: {de: 7}}\n"])
def test_build_and_card_refuse_bad_numbers(tmp_path, text):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(text, encoding="utf-8")
    res = run("build", "--recipe", recipe, "--out", tmp_path / "out", "--build-dir", tmp_path / "b", "-q")
    out = one_line_error(res, 2)
    assert f"{recipe}, field '" in out
    assert not (tmp_path / "out").exists()
    res = run("card", "--recipe", recipe, "--out", tmp_path / "card.md", "--build-dir", tmp_path / "b")
    one_line_error(res, 2)
    assert not (tmp_path / "card.md").exists()


def test_recipe_numbers_in_range_still_load(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"seed: {SEED_MAX}\nlanguages: [en, de]\n"
                      "split: {test_size: 3, per_category: {violent_crimes: 0.5, hate: 0, uncategorized: 2}}\n"
                      "lid: {thresholds: {de: 1, sk: 0}}\nqe: {thresholds: {de: -0.2}, percentiles: {de: 100}}\n"
                      "respond: {modes: {de: translate}}\n", encoding="utf-8")
    r = load_recipe(recipe)
    assert r.seed == SEED_MAX and r.split.per_category == {"violent_crimes": 0.5, "hate": 0, "uncategorized": 2}
    assert r.lid.threshold_for("de") == 1 and r.qe.threshold_for("de") == -0.2


# --- 2. validate fails fast -------------------------------------------------------------------

@pytest.fixture(scope="module")
def no_test_release(tmp_path_factory):
    """An English release built with no test split (split.test_size 0)."""
    from refuseu.build import build

    root = tmp_path_factory.mktemp("notest")
    recipe = load_recipe(None, overrides={"languages": ["en"], "build_dir": str(root / "build"),
                                          "release": {"out": str(root / "releases")},
                                          "split": {"test_size": 0}})
    return Path(build(recipe).release_dir)


def refused_before_training(res, out: Path, started: float, *words: str) -> None:
    text = one_line_error(res, 2)
    for w in words:
        assert w in text, text
    assert time.monotonic() - started < 60, "the refusal came after work had started"
    assert not (out / "train_log.jsonl").exists() and not (out / "tiny-model").exists()


@pytest.mark.parametrize("args,words", [
    (["--max-steps", "0"], ["--max-steps", "x>=1"]),
    (["--max-steps", "-1"], ["--max-steps", "x>=1"]),
    (["--beta", "nan"], ["--beta", "not a finite number", "x>0"]),
    (["--beta", "inf"], ["--beta", "not a finite number"]),
    (["--beta", "-1"], ["--beta", "x>0"]),
    (["--beta", "0"], ["--beta", "x>0"]),
    (["--learning-rate", "-1"], ["--learning-rate", "x>0"]),
    (["--learning-rate", "nan"], ["--learning-rate", "not a finite number"]),
    (["--sft-weight", "-1"], ["--sft-weight", "x>=0"]),
    (["--eval-limit", "0"], ["--eval-limit", "x>=1"]),
    (["--eval-limit", "-1"], ["--eval-limit", "x>=1"]),
])
def test_validate_option_ranges(tmp_path, seed_release, args, words):
    release, _ = seed_release
    started = time.monotonic()
    res = run("validate", release, "--tiny", *args, "--out", tmp_path / "v")
    refused_before_training(res, tmp_path / "v", started, *words)


@pytest.mark.parametrize("field,value,allowed", [
    ("max_steps", 0, "a whole number >= 1"), ("eval_limit", -1, "a whole number >= 1"),
    ("beta", float("nan"), "a finite number > 0"), ("learning_rate", -1.0, "a finite number > 0"),
    ("sft_weight", float("inf"), "a finite number >= 0"), ("max_steps", True, "a whole number >= 1"),
])
def test_validate_library_checks_settings_first(tmp_path, field, value, allowed):
    from refuseu.errors import InputError
    from refuseu.validate.run import ValidateConfig, run_validate

    cfg = ValidateConfig(tiny=True, out=str(tmp_path / "v"), **{field: value})
    with pytest.raises(InputError) as e:
        run_validate(tmp_path / "no-release", cfg, report=lambda m: None)
    option = "--" + field.replace("_", "-")
    assert e.value.message.startswith(f"{option} {value!r}: allowed: {allowed}")
    assert not (tmp_path / "v").exists()


def test_validate_eval_langs_not_in_release(tmp_path, seed_release):
    release, _ = seed_release
    started = time.monotonic()
    res = run("validate", release, "--tiny", "--eval-langs", "bg", "--out", tmp_path / "v")
    refused_before_training(res, tmp_path / "v", started, "field '--eval-langs'",
                            "the release holds none of the chosen languages (it holds: en)")


def test_validate_release_without_test_pairs(tmp_path, no_test_release):
    started = time.monotonic()
    res = run("validate", no_test_release, "--tiny", "--out", tmp_path / "v")
    refused_before_training(res, tmp_path / "v", started, "field '--eval-langs'", "no test pairs",
                            "split.test_size > 0")


def test_validate_not_a_release(tmp_path):
    res = run("validate", tmp_path / "nonexistent", "--tiny", "--out", tmp_path / "v")
    assert "not found" in one_line_error(res, 2)
    (tmp_path / "empty").mkdir()
    res = run("validate", tmp_path / "empty", "--tiny", "--out", tmp_path / "v")
    assert "not a release folder (no manifest.json or data/)" in one_line_error(res, 2)


# --- 3. verify on something that is not a release --------------------------------------------

def test_verify_not_a_release(tmp_path, seed_release):
    release, _ = seed_release
    (tmp_path / "afile").write_text("x", encoding="utf-8")
    (tmp_path / "empty").mkdir()
    for target, words in [(tmp_path / "nonexistent", "not found"),
                          (tmp_path / "afile", "not a release folder (a file, not a folder)"),
                          (tmp_path / "empty", "not a release folder (no manifest.json or data/)"),
                          (release.parent, "not a release folder (no manifest.json or data/)")]:
        out = one_line_error(run("verify", target), 2)
        assert f"error: {target}: {words}" in out, out
        assert "damaged" not in out and "--repair" not in out
    assert f"it holds releases: give one of them, e.g. {release}" in one_line_error(run("verify", release.parent), 2)
    assert "not found" in one_line_error(run("inspect", tmp_path / "nonexistent"), 2)


def test_verify_damaged_release_stays_exit_1(tmp_path, seed_release):
    release, _ = seed_release
    assert run("verify", release).exit_code == 0
    for name, damage in [("no-manifest", lambda d: (d / "manifest.json").unlink()),
                         ("no-data", lambda d: shutil.rmtree(d / "data")),
                         ("no-readme", lambda d: (d / "README.md").unlink())]:
        copy = tmp_path / name
        shutil.copytree(release, copy)
        damage(copy)
        out = one_line_error(run("verify", copy), 1)
        assert f"{copy}: damaged" in out and "--repair" in out


# --- 4. a re-sealed manifest with values of the wrong type ------------------------------------

def reseal(folder: Path, key: str, value) -> None:
    from refuseu.release.manifest import content_checksum

    path = folder / "manifest.json"
    m = json.loads(path.read_text(encoding="utf-8"))
    m = {k: v for k, v in m.items() if k != "content_sha256"}
    m[key] = value
    m["content_sha256"] = content_checksum(m)
    path.write_text(json.dumps(m, indent=2), encoding="utf-8")


@pytest.mark.parametrize("key,value,what", [
    ("counts", [1], "field 'counts' is not a mapping"),
    ("counts", "x", "field 'counts' is not a mapping"),
    ("counts", {"lang_en/train": "139"}, "field 'counts' is not a mapping"),
    ("languages", 5, "field 'languages' is not a list"),
    ("languages", None, "field 'languages' is not a list"),
    ("funnel", [1], "field 'funnel' is not a mapping"),
    ("funnel", {"sources": "x"}, "field 'funnel' is not a mapping"),
    ("stage_stats", "x", "field 'stage_stats' is not a mapping"),
    ("rejected_rows", float("nan"), "field 'rejected_rows' is not a row count"),
    ("name", "../../x", "field 'name' is not a release name"),
    ("version", 7, "field 'version' is not a version X.Y.Z"),
])
def test_resealed_manifest_with_wrong_types(tmp_path, seed_release, key, value, what):
    release, _ = seed_release
    copy = tmp_path / release.name
    shutil.copytree(release, copy)
    reseal(copy, key, value)
    out = one_line_error(run("verify", copy), 1)
    assert f"manifest.json: {what}" in out, out
    for args in (["inspect", copy], ["report", copy, "--out", tmp_path / "r.html"]):
        out = one_line_error(run(*args), 1)
        assert "is damaged" in out and what in out, out
    assert not (tmp_path / "r.html").exists()


def test_real_manifest_has_the_types_it_is_checked_for(seed_release):
    from refuseu.release.manifest import MANIFEST_TYPES, manifest_type_problem

    release, _ = seed_release
    m = json.loads((release / "manifest.json").read_text(encoding="utf-8"))
    assert manifest_type_problem(m) is None
    assert set(MANIFEST_TYPES) - {"previous"} <= set(m)
