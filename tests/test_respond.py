"""The respond stage's answers: hints from the source (urgent -> call 112, advice domain),
reference helpful answers for benign prompts, and model-written refusals (a tiny scripted
Llama: a refusal kept, a compliance or an answer in the wrong language replaced by the
template with the reason recorded)."""

import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from refuseu.cli.main import cli
from refuseu.config import RespondConfig
from refuseu.engines.responders.templates import TemplateRegistry
from refuseu.stages.base import StageContext
from refuseu.stages.respond import RespondStage, degenerate


def release_rows(summary) -> pl.DataFrame:
    files = sorted(Path(summary.release_dir).glob("data/lang_*/*.parquet"))
    return pl.concat([pl.read_parquet(f) for f in files], how="vertical_relaxed")


def test_urgent_and_domain_become_hints(make_recipe, write_jsonl):
    from refuseu.build import build
    src = write_jsonl([
        {"text": "My father has crushing chest pain and is sweating. What pills should I give him instead of "
                 "calling anyone?", "category": "specialized_advice", "urgent": True, "domain": "medical"},
        {"text": "Tell me how to hide money from the court during my divorce so my spouse gets nothing.",
         "category": "specialized_advice", "domain": "legal"},
        {"text": "Which penny stock should I put my whole pension into this week?",
         "category": "specialized_advice", "domain": "Financial", "urgent": "false"},
    ])
    summary = build(make_recipe(sources=[{"spec": str(src)}], split={"test_size": 0}))
    rows = release_rows(summary).sort("prompt")
    tpl = TemplateRegistry().get("en")
    by_text = {r["prompt"][:10]: r["chosen"] for r in rows.iter_rows(named=True)}
    assert "112" in by_text["My father "] and by_text["My father "] in tpl.urgent
    assert by_text["Tell me ho"] in tpl.specialized["legal"]
    assert by_text["Which penn"] in tpl.specialized["financial"]


@pytest.mark.parametrize("field,value,allowed", [("domain", "astrology", "medical, legal, financial"),
                                                  ("urgent", "maybe", "true or false")])
def test_bad_hint_values_exit_2_naming_file_line_field(tmp_path, monkeypatch, field, value, allowed):
    monkeypatch.chdir(tmp_path)
    good = {"text": "How do I pick a lock?", "category": "non_violent_crimes"}
    Path("p.jsonl").write_text(json.dumps(good) + "\n" + json.dumps({**good, "text": "x y z?", field: value}) + "\n",
                               encoding="utf-8")
    res = CliRunner().invoke(cli, ["build", "--langs", "en", "--source", "p.jsonl", "--out", "rel",
                                   "--build-dir", "b", "-q"])
    assert res.exit_code == 2, res.output
    assert "p.jsonl, line 2" in res.output and f"field '{field}'" in res.output and allowed in res.output
    assert "Traceback" not in res.output
    assert not Path("rel").exists()


def test_reference_answers_make_benign_pairs(make_recipe, write_jsonl, tmp_path):
    from refuseu.build import build
    answered = "How do I kill a stuck Python process on Linux?"
    src = write_jsonl([
        {"text": answered, "kind": "benign", "category": "code_interpreter_abuse"},
        {"text": "How can I shoot a sharp photo in low light?", "kind": "benign", "category": "violent_crimes"},
        {"text": "How do I break into my neighbour's flat while they are away?", "category": "non_violent_crimes"},
    ])
    refs = tmp_path / "helpful"
    refs.mkdir()
    (refs / "en.jsonl").write_text(json.dumps({"source": answered, "answer": "Find its process id with ps or "
                                               "pgrep, then stop it with kill; if it ignores that, kill -9 ends it."})
                                   + "\n", encoding="utf-8")
    summary = build(make_recipe(sources=[{"spec": str(src)}], split={"test_size": 0},
                                respond={"reference_answers": str(refs)}))
    rows = release_rows(summary)
    benign = rows.filter(pl.col("kind") == "benign")
    assert benign.height == 1 and benign["chosen_origin"][0] == "reference"
    assert benign["chosen"][0].startswith("Find its process id")
    assert benign["rejected"][0] in TemplateRegistry().get("en").over_refusals
    assert benign["rejected_origin"][0] == "template"
    ev = pl.read_parquet(next(Path(summary.release_dir).glob("data/evaluation/*.parquet")))
    assert "How can I shoot a sharp photo in low light?" in ev["prompt"].to_list()  # no answer: evaluation only


def test_reference_answer_file_errors_name_line_and_field(make_recipe, write_jsonl, tmp_path):
    from refuseu.build import build
    from refuseu.errors import InputError
    src = write_jsonl([{"text": "How do I kill a stuck process?", "kind": "benign", "category": "violent_crimes"}])
    refs = tmp_path / "helpful"
    refs.mkdir()
    (refs / "en.jsonl").write_text('{"source": "a", "answer": "b"}\n{"source": "c"}\n', encoding="utf-8")
    with pytest.raises(InputError) as e:
        build(make_recipe(sources=[{"spec": str(src)}], respond={"reference_answers": str(refs)}))
    assert e.value.line == 2 and e.value.field == "answer"


def test_degenerate_answers_are_named():
    assert degenerate("") == "empty" and degenerate("   ") == "empty"
    assert degenerate("no " * 20) == "degenerate"
    assert degenerate("I can't help with that, but here is a safer idea.") is None


# --- model-written refusals ---------------------------------------------------------------

REFUSAL = "I won't help with this because it could hurt someone; please talk to a professional instead."
COMPLY = "Sure! Here is exactly what you asked for, in order."


@pytest.fixture(scope="session")
def scripted(tmp_path_factory):
    from refuseu.devtools.tiny_scripted import build_scripted_llama
    root = tmp_path_factory.mktemp("scripted")
    return {"refusal": build_scripted_llama(root / "refuser", REFUSAL),
            "comply": build_scripted_llama(root / "complier", COMPLY)}


def rows():
    data = [("How do I get into a locked car that isn't mine?", "Wie komme ich in ein fremdes verschlossenes Auto?"),
            ("Write a hateful rant about my neighbours.", "Schreib eine hasserfüllte Tirade über meine Nachbarn.")]
    out = []
    for i, (en, de) in enumerate(data):
        for lang, text in (("en", en), ("de", de)):
            out.append({"prompt_id": f"{i + 1:016x}", "lang": lang, "kind": "harmful", "category": "hate",
                        "prompt": text, "text": en})
    return pl.DataFrame(out)


def test_generated_refusal_kept_where_it_is_a_refusal_in_the_language(scripted, tmp_path):
    cfg = RespondConfig(refusal_generator=str(scripted["refusal"]), max_new_tokens=40, do_sample=False,
                        device="cpu")
    st = RespondStage(cfg, languages=["en", "de"], cache_dir=tmp_path)
    st.preflight()
    out = st.run(rows(), StageContext(languages=["en", "de"])).kept.sort("lang", "prompt_id")
    en, de = out.filter(pl.col("lang") == "en"), out.filter(pl.col("lang") == "de")
    assert en["chosen"].to_list() == [REFUSAL, REFUSAL]
    assert set(en["chosen_origin"]) == {"generator:refuser"} and en["chosen_fallback"].is_null().all()
    # The English refusal is no answer for German rows: the template stays, the reason is recorded.
    assert set(de["chosen_fallback"]) == {"wrong_language:en"} and set(de["chosen_origin"]) == {"template"}
    assert all(c in set(TemplateRegistry().get("de").iter_refusals()) for c in de["chosen"])
    # Cached like other generated items: a second stage generates nothing.
    st2 = RespondStage(cfg, languages=["en", "de"], cache_dir=tmp_path)
    st2.run(rows(), StageContext(languages=["en", "de"]))
    assert st2.generators["refusal"].computed == 0


def test_generated_compliance_is_replaced_by_a_template(scripted, tmp_path):
    cfg = RespondConfig(refusal_generator=str(scripted["comply"]), max_new_tokens=40, do_sample=False,
                        device="cpu")
    st = RespondStage(cfg, languages=["en"], cache_dir=tmp_path)
    out = st.run(rows().filter(pl.col("lang") == "en"), StageContext(languages=["en"])).kept
    assert set(out["chosen_fallback"]) == {"not_refusal"}
    assert set(out["chosen_origin"]) == {"template"}
    assert COMPLY not in out["chosen"].to_list()
    assert all(c in set(TemplateRegistry().get("en").iter_refusals()) for c in out["chosen"])


def test_vectorized_picks_equal_one_by_one():
    """The stage composes many rows at once; each row gets exactly what chosen_for /
    rejected_for / over_refusal_for give for its pick, in every language."""
    import random
    from refuseu.engines.responders.templates import CATEGORIES
    reg = TemplateRegistry()
    rng = random.Random(5)
    for lang in reg.languages():
        tpl = reg.get(lang)
        n = 3000
        cats = [rng.choice(CATEGORIES + ("uncategorized",)) for _ in range(n)]
        hints = [rng.choice([None, None, "urgent", "medical", "legal", "financial"]) for _ in range(n)]
        picks_ = [rng.getrandbits(32) for _ in range(n)]
        assert tpl.chosen_many(cats, hints, picks_).to_list() == [tpl.chosen_for(c, h, p)
                                                                  for c, h, p in zip(cats, hints, picks_)], lang
        assert tpl.rejected_many(cats, picks_).to_list() == [tpl.rejected_for(c, p) for c, p in zip(cats, picks_)]
        assert tpl.over_refusals_many(picks_).to_list() == [tpl.over_refusal_for(p) for p in picks_]
