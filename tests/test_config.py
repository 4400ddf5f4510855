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
