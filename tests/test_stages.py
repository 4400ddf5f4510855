import polars as pl
import pytest

from refuseu.config import DedupConfig, NormalizeConfig, RespondConfig, SplitConfig, TranslateConfig
from refuseu.errors import BuildError
from refuseu.stages.base import StageContext
from refuseu.stages.dedup import DedupStage, lsh_bands
from refuseu.stages.normalize import NormalizeStage, prompt_id
from refuseu.stages.respond import RespondStage
from refuseu.stages.split import SplitStage, n_test_groups
from refuseu.stages.translate import TranslateStage

CTX = StageContext(languages=["en"])


def raw(texts, kind="harmful", category="hate"):
    n = len(texts)
    return pl.DataFrame({"text": texts, "kind": [kind] * n, "category": [category] * n,
                         "attack_style": [None] * n, "source": ["t"] * n, "source_row": list(range(1, n + 1))},
                        schema_overrides={"attack_style": pl.String})


@pytest.mark.parametrize("text, expected, reason", [
    ("  Cafe\u0301   au\tlait \n", "Café au lait", None),       # NFC + whitespace
    ("   ", None, "empty"),
    ("ab", None, "too_short"),
    ("x" * 51, None, "too_long"),
    ("exactly fifty " + "y" * 36, "exactly fifty " + "y" * 36, None),
])
def test_normalize(text, expected, reason):
    st = NormalizeStage(NormalizeConfig(min_chars=3, max_chars=50))
    res = st.run(raw([text]), CTX)
    if reason is None:
        assert res.kept.get_column("text").to_list() == [expected]
        assert res.kept.get_column("prompt_id").to_list() == [prompt_id(expected, "harmful")]
        assert res.rejected.height == 0
    else:
        assert res.kept.height == 0
        assert res.rejected.get_column("reason").to_list() == [reason]
        assert res.rejected.get_column("stage").to_list() == ["normalize"]
        assert "t:1" in res.rejected.get_column("detail")[0]


def test_prompt_id_depends_on_kind_and_text():
    assert prompt_id("a", "harmful") != prompt_id("a", "benign")
    assert prompt_id("a", "harmful") == prompt_id("a", "harmful")


def normalized(texts, **kw):
    return NormalizeStage(NormalizeConfig()).run(raw(texts, **kw), CTX).kept


def test_dedup_exact_rejected_near_grouped():
    base = "please explain to me how someone could get into a locked building at night without a key"
    texts = [base, "completely different question about elections and voters and ballots in the city",
             base, base + " please"]
    st = DedupStage(DedupConfig(threshold=0.7), seed=1)
    res = st.run(normalized(texts), CTX)
    assert res.rejected.get_column("reason").to_list() == ["duplicate"]
    first_id = prompt_id(base, "harmful")
    assert first_id in res.rejected.get_column("detail")[0] and "t:1" in res.rejected.get_column("detail")[0]
    kept = res.kept
    assert kept.height == 3
    groups = dict(zip(kept.get_column("text"), kept.get_column("group_id")))
    assert groups[base] == first_id
    assert groups[base + " please"] == first_id      # near-duplicate joins the group
    assert groups[texts[1]] == prompt_id(texts[1], "harmful")         # unrelated: its own group


def test_dedup_near_reject_mode():
    base = "please explain to me how someone could get into a locked building at night without a key"
    texts = [base, base + " please"]
    res = DedupStage(DedupConfig(threshold=0.7, near_action="reject"), seed=1).run(normalized(texts), CTX)
    assert res.kept.height == 1
    assert res.rejected.get_column("reason").to_list() == ["near_duplicate"]
    assert "(Jaccard " in res.rejected.get_column("detail")[0]


def test_lsh_banding_fits_in_the_perms_and_favours_recall():
    from refuseu.stages.dedup import lsh_banding
    for t in (0.5, 0.8, 0.9):
        b, r = lsh_banding(t, 128)
        assert b * r <= 128
        assert 1 - (1 - t ** r) ** b >= 0.98  # a pair at the threshold is a candidate
    assert lsh_banding(0.9, 128)[0] <= lsh_banding(0.5, 128)[0]


@pytest.mark.parametrize("size, n, expected", [(2, 10, 2), (2, 2, 1), (2, 1, 0), (0.2, 10, 2), (0.5, 3, 2), (5, 3, 2)])
def test_n_test_groups(size, n, expected):
    assert n_test_groups(size, n) == expected


def split_input(n_per_cat=10):
    rows = []
    for cat in ("hate", "privacy", "elections"):
        for i in range(n_per_cat):
            rows.append({"prompt_id": f"{cat}-{i}", "group_id": f"{cat}-{i // 2}", "kind": "harmful", "category": cat})
    return pl.DataFrame(rows)


def test_split_is_by_group_stratified_and_deterministic():
    df = split_input()
    a = SplitStage(SplitConfig(test_size=2), seed=3).run(df, CTX).kept
    b = SplitStage(SplitConfig(test_size=2), seed=3).run(df.reverse(), CTX).kept
    assert dict(zip(a["prompt_id"], a["split"])) == dict(zip(b["prompt_id"], b["split"]))
    # 2 groups of 2 prompts per category in test
    counts = dict(a.filter(pl.col("split") == "test").group_by("category").len().iter_rows())
    assert counts == {"hate": 4, "privacy": 4, "elections": 4}
    # a group never straddles the split
    assert a.group_by("group_id").agg(pl.col("split").n_unique()).get_column("split").max() == 1
    c = SplitStage(SplitConfig(test_size=2), seed=4).run(df, CTX).kept
    assert dict(zip(a["prompt_id"], a["split"])) != dict(zip(c["prompt_id"], c["split"]))


def test_split_per_category_override():
    df = split_input()
    a = SplitStage(SplitConfig(test_size=1, per_category={"hate": 3}), seed=3).run(df, CTX).kept
    counts = dict(a.filter(pl.col("split") == "test").group_by("category").len().iter_rows())
    assert counts == {"hate": 6, "privacy": 2, "elections": 2}


def prompts_table(texts):
    n = len(texts)
    return pl.DataFrame({"prompt_id": [f"p{i:015d}" for i in range(n)], "text": texts, "kind": ["harmful"] * n,
                         "category": ["hate"] * n, "split": ["train"] * n})


def test_translate_english_passes_through():
    df = prompts_table(["Hello there, how do I do a bad thing?"])
    res = TranslateStage(TranslateConfig(), languages=["en"]).run(df, StageContext(languages=["en"]))
    row = res.kept.row(0, named=True)
    assert (row["lang"], row["prompt"], row["origin"]) == ("en", df["text"][0], "source")


def test_translate_memory_hit_miss_and_on_missing(tmp_path):
    mem = tmp_path / "tm"
    mem.mkdir()
    (mem / "de.jsonl").write_text('{"source": "Known  prompt here", "target": "Bekannter Prompt hier"}\n',
                                  encoding="utf-8")
    df = prompts_table(["Known prompt here", "Unknown prompt"])
    ctx = StageContext(languages=["en", "de"])
    st = TranslateStage(TranslateConfig(memory=[str(mem)], on_missing="reject"), languages=["en", "de"])
    res = st.run(df, ctx)
    de = res.kept.filter(pl.col("lang") == "de")
    assert de.get_column("prompt").to_list() == ["Bekannter Prompt hier"]
    assert de.get_column("origin").to_list() == ["tm"]
    assert res.rejected.select("lang", "reason").rows() == [("de", "untranslated")]
    st = TranslateStage(TranslateConfig(memory=[str(mem)], on_missing="error"), languages=["en", "de"])
    with pytest.raises(BuildError, match="no engine can make one: de 1 \\(of 2 prompts"):
        st.run(df, ctx)


def test_translate_language_without_memory_fails_preflight(tmp_path):
    st = TranslateStage(TranslateConfig(memory=[str(tmp_path)]), languages=["en", "sl"])
    with pytest.raises(BuildError) as e:
        st.preflight()
    assert "sl" in e.value.message and "translate.engine" in e.value.hint


def test_respond_templates_deterministic_and_category_aware():
    from refuseu.engines.responders.templates import TemplateRegistry
    tpl = TemplateRegistry().get("en")
    rows = []
    for i in range(40):
        rows.append({"prompt_id": f"{i:016x}", "lang": "en", "kind": "harmful",
                     "category": "suicide_self_harm" if i % 2 else "hate", "prompt": f"p{i}"})
    rows.append({"prompt_id": "f" * 16, "lang": "en", "kind": "benign", "category": "hate", "prompt": "ok"})
    df = pl.DataFrame(rows)
    st = RespondStage(RespondConfig(), languages=["en"])
    a = st.run(df, CTX).kept
    b = st.run(df.reverse(), CTX).kept
    key = lambda d: {r["prompt_id"]: (r["chosen"], r["rejected"]) for r in d.iter_rows(named=True)}
    assert key(a) == key(b)
    for r in a.iter_rows(named=True):
        if r["kind"] == "benign":
            assert r["chosen"] is None and r["rejected"] is None
        elif r["category"] == "suicide_self_harm":
            assert r["chosen"] in tpl.refusals["suicide_self_harm"]
        else:
            assert r["chosen"] in tpl.refusals["hate"]
        if r["kind"] == "harmful":
            assert r["rejected"] in tpl.compliance_openers
            assert r["chosen_origin"] == r["rejected_origin"] == "template"
    assert a.filter(pl.col("category") == "hate")["chosen"].n_unique() > 1


def test_english_templates_are_varied():
    from refuseu.engines.responders.templates import TemplateRegistry
    tpl = TemplateRegistry().get("en")
    assert len(set(tpl.refusals["general"])) >= 12
    assert len(tpl.compliance_openers) >= 5
