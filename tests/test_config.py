import pytest

from refuseu.config import load_recipe
from refuseu.errors import RecipeError


def write(tmp_path, text):
    p = tmp_path / "r.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def test_default_recipe_is_valid():
    r = load_recipe(None)
    assert r.name == "refuseu-seed" and r.version.count(".") == 2
    assert [s.spec for s in r.sources] == ["seed"]


@pytest.mark.parametrize("text, key, allowed", [
    ("nmae: x\n", "nmae", "languages"),
    ("dedup:\n  treshold: 0.5\n", "dedup.treshold", "threshold"),
    ("sources:\n  - spec: seed\n    colums: {}\n", "sources.0.colums", "columns"),
])
def test_unknown_key_names_key_and_allowed(tmp_path, text, key, allowed):
    with pytest.raises(RecipeError) as e:
        load_recipe(write(tmp_path, text))
    assert e.value.exit_code == 2
    assert f"'{key}'" in str(e.value)
    assert allowed in e.value.hint


@pytest.mark.parametrize("text, field", [
    ("version: 1.0\n", "version"),
    ("version: '1.0.x'\n", "version"),
    ("dedup:\n  threshold: 1.5\n", "dedup.threshold"),
    ("split:\n  test_size: 1.5\n", "split.test_size"),
    ("normalize:\n  max_chars: 0\n", "normalize.max_chars"),
])
def test_invalid_values_name_the_field(tmp_path, text, field):
    with pytest.raises(RecipeError) as e:
        load_recipe(write(tmp_path, text))
    assert e.value.field == field


def test_invalid_yaml_reports_line(tmp_path):
    with pytest.raises(RecipeError) as e:
        load_recipe(write(tmp_path, "name: a\nseed: [1,\nlanguages: x: y\n"))
    assert e.value.line is not None and str(e.value.file).endswith("r.yaml")


def test_missing_recipe_file(tmp_path):
    with pytest.raises(RecipeError, match="not found"):
        load_recipe(tmp_path / "nope.yaml")


def test_precedence_defaults_recipe_flags(tmp_path):
    p = write(tmp_path, "version: 2.0.0\nseed: 5\n")
    r = load_recipe(p)
    assert (r.version, r.seed, r.dedup.threshold) == ("2.0.0", 5, 0.8)  # recipe over defaults
    r = load_recipe(p, overrides={"version": "3.1.4", "dedup": {"threshold": 0.9}})
    assert (r.version, r.seed, r.dedup.threshold, r.dedup.num_perm) == ("3.1.4", 5, 0.9, 128)


@pytest.mark.parametrize("text, line, key", [
    ("name: a\nname: b\n", 2, "name"),
    ("seed: 1\ndedup:\n  near: true\n  threshold: 0.5\n  near: false\n", 5, "near"),
    ("sources:\n  - spec: seed\n    kind: benign\n    kind: harmful\n", 4, "kind"),
])
def test_duplicate_keys_name_line_and_key(tmp_path, text, line, key):
    with pytest.raises(RecipeError) as e:
        load_recipe(write(tmp_path, text))
    assert e.value.line == line and str(e.value.file).endswith("r.yaml")
    assert f"duplicate key '{key}'" in str(e.value)


def test_same_key_in_different_mappings_and_merges_are_fine(tmp_path):
    text = ("dedup:\n  threshold: 0.7\nsplit:\n  test_size: 1\n"
            "sources:\n  - &s {spec: seed, kind: benign}\n  - <<: *s\n    kind: harmful\n")
    r = load_recipe(write(tmp_path, text))
    assert r.dedup.threshold == 0.7 and [s.kind for s in r.sources] == ["benign", "harmful"]


@pytest.mark.parametrize("text, field, words", [
    ("sources: []\n", "sources", ["no source given", "seed"]),
    ("sources: ['']\n", "sources.0.spec", ["empty source", ".jsonl"]),
    ("normalize:\n  min_chars: 50\n  max_chars: 10\n", "normalize", ["min_chars (50)", "max_chars (10)"]),
    ("languages: []\n", "languages", ["no language given"]),
    ("languages: 'en,,de'\n", "languages", ["item 2 of 3 is empty"]),
    ("build_dir: ''\n", "build_dir", ["empty path"]),
    ("release:\n  out: ' '\n", "release.out", ["empty path"]),
])
def test_recipe_checks(tmp_path, text, field, words):
    with pytest.raises(RecipeError) as e:
        load_recipe(write(tmp_path, text))
    assert e.value.field == field and e.value.exit_code == 2
    for w in words:
        assert w in str(e.value)


def test_min_chars_equal_to_max_chars_is_fine(tmp_path):
    assert load_recipe(write(tmp_path, "normalize:\n  min_chars: 5\n  max_chars: 5\n")).normalize.max_chars == 5


def test_override_errors_name_the_flag_not_the_file(tmp_path):
    from refuseu.errors import InputError

    p = write(tmp_path, "version: 1.0.0\n")
    flags = {"version": "--version", "release.out": "--out"}
    with pytest.raises(InputError) as e:
        load_recipe(p, overrides={"version": "1.0"}, flags=flags)
    assert not isinstance(e.value, RecipeError) and e.value.file is None
    assert str(e.value).startswith("--version '1.0': not a semantic version") and "X.Y.Z" in str(e.value)
    # a bad value from the file is still the file's
    with pytest.raises(RecipeError) as e:
        load_recipe(write(tmp_path, "version: '2'\n"), overrides={"release": {"out": "x"}}, flags=flags)
    assert e.value.field == "version" and str(e.value.file).endswith("r.yaml")
