"""The shipped reference helpful answers: one per benign seed prompt in each of the 12
languages, keyed by the seed's exact text, identified as their language by LID (100%), and
the default release's benign pairs use them in every language."""

import json
from pathlib import Path

import polars as pl
import pytest

from refuseu.config import LidConfig
from refuseu.engines.responders.reference import ReferenceAnswers
from refuseu.languages import ALL12
from refuseu.resources import data_dir, seed_prompts_path
from refuseu.text import normalize_text

LANGS = list(ALL12)


def benign_seed() -> list[str]:
    rows = [json.loads(line) for line in seed_prompts_path().read_text("utf-8").splitlines() if line.strip()]
    return [normalize_text(r["text"]) for r in rows if r["kind"] == "benign"]


@pytest.mark.parametrize("lang", LANGS)
def test_one_answer_per_benign_seed_prompt(lang):
    path = data_dir() / "helpful" / f"{lang}.jsonl"
    assert path.exists(), f"no reference answers for {lang}"
    keys = [normalize_text(json.loads(line)["source"]) for line in path.read_text("utf-8").splitlines() if line.strip()]
    assert len(keys) == len(set(keys)), "a prompt answered twice"
    assert sorted(keys) == sorted(benign_seed())
    answers = ReferenceAnswers().answers(lang)
    assert all(len(a) >= 80 for a in answers.values())


def test_every_reference_answer_passes_lid():
    from refuseu.engines.lid.combined import CombinedLid
    lid, cfg, failures = CombinedLid(LANGS), LidConfig(), []
    for lang in LANGS:
        if lang == "en":
            continue
        texts = list(ReferenceAnswers().answers(lang).values())
        for text, p in zip(texts, lid.predict(texts, [lang] * len(texts))):
            if p.lang != lang or p.score < cfg.threshold_for(lang):
                failures.append((lang, p.lang, round(p.score, 3), text[:70]))
    assert failures == []


def test_default_release_has_benign_pairs_in_every_language(tmp_path):
    from refuseu.build import build
    from refuseu.config import load_recipe
    recipe = load_recipe(None, overrides={"languages": LANGS, "build_dir": str(tmp_path / "b"),
                                          "release": {"out": str(tmp_path / "r")}})
    summary = build(recipe)
    n_benign = len(benign_seed())
    from refuseu.release.inspect import inspect_release
    info = inspect_release(summary.release_dir)
    for lang in LANGS:
        train = pl.read_parquet(next((Path(summary.release_dir) / "data" / f"lang_{lang}").glob("train-*.parquet")))
        benign = train.filter(pl.col("kind") == "benign")
        assert benign.height > 0 and set(benign["chosen_origin"]) == {"reference"}, lang
        r = info["responses"][lang]
        assert r["benign_train"] + r["benign_test"] == n_benign, lang
        assert r["distinct_chosen"] >= 60 and r["distinct_rejected"] >= 30, (lang, r)
