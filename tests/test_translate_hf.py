"""The hf engine on tiny random-weight NLLB, M2M100 and Marian models built locally."""

from pathlib import Path

import polars as pl
import pytest

from refuseu.config import TranslateConfig
from refuseu.engines.cache import CachedTranslator, ItemCache
from refuseu.engines.translators.hf import HFTranslator, split_sentences, token_batches
from refuseu.stages.base import StageContext
from refuseu.stages.translate import TranslateStage

TEXTS = ["How do I get into the building?", "Tell me a story.", "Short.",
         "This is a considerably longer sentence that has many more words in it than the others do.",
         "How do I get into the building?"]


def engine(path, **kw):
    return HFTranslator(TranslateConfig(engine="hf", model=str(path), device="cpu", max_new_tokens=6, **kw))


@pytest.mark.parametrize("budget, sizes", [(100, [[3], [1, 0], [2]]), (1000, [[3, 1, 0, 2]])])
def test_token_batches_sorted_and_within_budget(budget, sizes):
    lengths = [10, 20, 5, 40]
    batches = token_batches(lengths, budget=budget, max_size=10)
    assert sorted(i for b in batches for i in b) == [0, 1, 2, 3]
    for b in batches:
        assert max(lengths[i] for i in b) * len(b) <= max(budget, max(lengths))
    assert batches[0][0] == 3  # longest first


def test_split_sentences():
    assert split_sentences("One. Two! Three? Four") == ["One.", "Two!", "Three?", "Four"]
    assert split_sentences("no end") == ["no end"]


@pytest.mark.parametrize("family", ["nllb", "m2m100", "marian"])
def test_batched_equals_one_by_one_and_order_is_kept(tiny_models, family):
    e = engine(tiny_models[family])
    batched = e.translate(TEXTS, src="en", tgt="de")
    single = [e.translate([t], src="en", tgt="de")[0] for t in TEXTS]
    assert batched == single
    assert batched[0] == batched[4]
    assert all(isinstance(t, str) for t in batched)
    assert e.load(str(tiny_models[family])).family == family


@pytest.mark.parametrize("family", ["nllb", "m2m100"])
def test_target_language_token_routing(tiny_models, family, monkeypatch):
    e = engine(tiny_models[family])
    loaded = e.load(str(tiny_models[family]))
    tok = loaded.tokenizer
    expected = {"de": tok.convert_tokens_to_ids("deu_Latn") if family == "nllb" else tok.get_lang_id("de"),
                "sl": tok.convert_tokens_to_ids("slv_Latn") if family == "nllb" else tok.get_lang_id("sl")}
    seen = []
    model = loaded.model
    orig = model.generate

    def spy(*a, **kw):
        seen.append(kw.get("forced_bos_token_id"))
        out = orig(*a, **kw)
        assert (out[:, 1] == kw["forced_bos_token_id"]).all()  # first generated token is the target tag
        return out

    monkeypatch.setattr(model, "generate", spy)
    e.translate(["Hello"], src="en", tgt="de")
    e.translate(["Hello"], src="en", tgt="sl")
    assert seen == [expected["de"], expected["sl"]] and expected["de"] != expected["sl"]
    assert tok.unk_token_id not in seen


def test_long_inputs_are_split_into_sentences(tiny_models):
    e = engine(tiny_models["nllb"], max_source_tokens=8)
    calls = []
    orig = e._generate
    monkey = lambda loaded, ids, tgt: calls.append(len(ids)) or orig(loaded, ids, tgt)  # noqa: E731
    e._generate = monkey
    out = e.translate(["First sentence here. Second one follows! And a third?"], src="en", tgt="de")
    assert calls == [3] and len(out) == 1


def prompts(texts):
    n = len(texts)
    return pl.DataFrame({"prompt_id": [f"{i:016x}" for i in range(n)], "text": texts, "kind": ["harmful"] * n,
                         "category": ["hate"] * n, "split": ["train"] * n})


def test_stage_cache_hits_duplicates_once_and_resume(tiny_models, tmp_path):
    cfg = TranslateConfig(engine="hf", model=str(tiny_models["nllb"]), device="cpu", max_new_tokens=5,
                          memory=[str(tmp_path)])  # empty memory: everything through MT
    langs = ["en", "de", "sl"]
    st = TranslateStage(cfg, languages=langs, cache_dir=tmp_path / "b")
    st.preflight()
    res = st.run(prompts(TEXTS), StageContext(languages=langs))
    de = res.kept.filter(pl.col("lang") == "de")
    assert de.height == len(TEXTS) and set(de["origin"]) == {"mt"}
    # The released engine label names the model folder, never its local path.
    assert de["engine"][0] == f"hf:{Path(tiny_models['nllb']).name}" and de["engine_revision"][0].startswith("local-")
    assert st.engine.computed == 2 * 4  # 4 unique texts x 2 languages: the duplicate once
    st2 = TranslateStage(cfg, languages=langs, cache_dir=tmp_path / "b")
    res2 = st2.run(prompts(TEXTS), StageContext(languages=langs))
    assert st2.engine.computed == 0  # all from the item cache
    assert res2.kept.equals(res.kept)


def test_crash_mid_run_loses_only_the_batch_in_flight(tiny_models, tmp_path):
    e = engine(tiny_models["marian"])
    cache = ItemCache(tmp_path / "items.sqlite")
    texts = [f"Sentence number {i} about a topic." for i in range(10)]
    calls = {"n": 0}
    orig = e.translate

    def flaky(batch, *, src, tgt):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # killed during the third chunk
        return orig(batch, src=src, tgt=tgt)

    e.translate = flaky
    ct = CachedTranslator(e, cache, chunk=3)
    with pytest.raises(KeyboardInterrupt):
        ct.translate(texts, src="en", tgt="de")
    assert cache.count() == 6  # two finished chunks kept
    e.translate = orig
    ct2 = CachedTranslator(e, cache, chunk=3)
    out = ct2.translate(texts, src="en", tgt="de")
    assert ct2.computed == 4 and len(out) == 10
    assert out == orig(texts, src="en", tgt="de")


@pytest.mark.parametrize("family", ["nllb", "marian"])
def test_ctranslate2_engine_matches_transformers(tiny_models, family, tmp_path):
    from refuseu.engines.translators.ct2 import CT2Translator

    cfg = dict(engine="ctranslate2", model=str(tiny_models[family]), device="cpu", max_new_tokens=6,
               ct2_cache=str(tmp_path / "ct2"), ct2_quantization="float32")
    ct = CT2Translator(TranslateConfig(**cfg))
    out = ct.translate(TEXTS, src="en", tgt="de")
    assert out[0] == out[4] and len(out) == len(TEXTS)
    # float32 CTranslate2 decodes the same greedy tokens as transformers
    assert out == engine(tiny_models[family]).translate(TEXTS, src="en", tgt="de")
    converted = list((tmp_path / "ct2").iterdir())
    assert len(converted) == 1 and (converted[0] / "model.bin").exists()
    CT2Translator(TranslateConfig(**cfg)).translate(["Again"], src="en", tgt="sl")  # reuses the conversion
    assert list((tmp_path / "ct2").iterdir()) == converted


def test_ctranslate2_through_stage_int8(tiny_models, tmp_path):
    cfg = TranslateConfig(engine="ctranslate2", model=str(tiny_models["nllb"]), device="cpu", max_new_tokens=5,
                          memory=[str(tmp_path)], ct2_cache=str(tmp_path / "ct2"))
    langs = ["en", "de", "lv"]
    st = TranslateStage(cfg, languages=langs, cache_dir=tmp_path / "b")
    st.preflight()
    res = st.run(prompts(TEXTS), StageContext(languages=langs))
    lv = res.kept.filter(pl.col("lang") == "lv")
    assert lv.height == len(TEXTS) and lv["engine"][0].startswith("ctranslate2:")
    assert lv["prompt"][0] == lv["prompt"][4]


def test_ctranslate2_m2m100_conversion_failure_is_clear(tiny_models, tmp_path):
    """CTranslate2 4.x's converter rejects M2M100 vocabularies from this transformers version
    (its vocabulary omits the language tokens): the engine says so and names the fix."""
    from refuseu.engines.translators.ct2 import CT2Translator
    from refuseu.errors import BuildError

    ct = CT2Translator(TranslateConfig(engine="ctranslate2", model=str(tiny_models["m2m100"]), device="cpu",
                                       ct2_cache=str(tmp_path / "ct2")))
    with pytest.raises(BuildError) as e:
        ct.translate(["Hello"], src="en", tgt="de")
    assert "could not convert" in e.value.message and "hf engine" in e.value.hint
    assert not list((tmp_path / "ct2").glob("*")) or not list((tmp_path / "ct2").glob("*/model.bin"))


def test_back_translation_round_trip_is_cached(tiny_models, tmp_path):
    from refuseu.engines.translators.back import back_translate

    ct = CachedTranslator(engine(tiny_models["nllb"]), ItemCache(tmp_path / "i.sqlite"))
    de = ct.translate(TEXTS, src="en", tgt="de")
    back = back_translate(ct, de, lang="de")
    assert len(back) == len(TEXTS) and all(isinstance(b, str) for b in back)
    seen = []
    model = ct.engine.load(str(tiny_models["nllb"])).model
    orig = model.generate
    model.generate = lambda *a, **kw: seen.append(kw["forced_bos_token_id"]) or orig(*a, **kw)
    ct2 = CachedTranslator(engine(tiny_models["nllb"]), ItemCache(tmp_path / "i.sqlite"))
    ct2.engine._loaded = ct.engine._loaded
    assert back_translate(ct2, de, lang="de") == back and ct2.computed == 0  # from the cache
    ct3 = CachedTranslator(ct.engine, None)
    back_translate(ct3, ["Ein neuer Satz."], lang="de")
    tok = ct.engine.load(str(tiny_models["nllb"])).tokenizer
    assert seen == [tok.convert_tokens_to_ids("eng_Latn")]  # routed to English
    assert tok.src_lang == "deu_Latn"
    assert back_translate(ct3, ["Hello"], lang="en") == ["Hello"]


def test_build_with_missing_mt_model_stops_before_work(tmp_path, write_jsonl):
    from click.testing import CliRunner

    from refuseu.cli.main import cli

    src = write_jsonl([{"text": "A prompt that is not in any translation memory.", "category": "hate"}])
    res = CliRunner().invoke(cli, ["build", "--source", str(src), "--langs", "de", "--translator", "hf",
                                   "--translator-model", "nobody/missing-mt-model", "--build-dir",
                                   str(tmp_path / "b"), "--out", str(tmp_path / "r")])
    assert res.exit_code == 1, res.output
    assert "model 'nobody/missing-mt-model' (stage translate) is not available locally" in res.output
    assert "refuseu models pull" in res.output and "--translator-model" in res.output
    assert not (tmp_path / "b" / "stages").exists() and not (tmp_path / "r").exists()
    res = CliRunner().invoke(cli, ["models", "check", "--langs", "de", "--translator", "hf",
                                   "--translator-model", "nobody/missing-mt-model"])
    assert res.exit_code == 1 and "missing" in res.output and "nobody/missing-mt-model" in res.output


def test_build_and_translate_cli_with_tiny_model(tiny_models, tmp_path, write_jsonl):
    import json

    from click.testing import CliRunner

    from refuseu.cli.main import cli

    src = write_jsonl([{"text": "A brand new prompt about breaking into a car.", "category": "non_violent_crimes"},
                       {"text": "Tell me something hateful about my neighbours.", "category": "hate"}])
    args = ["--translator", "hf", "--translator-model", str(tiny_models["marian"]), "--build-dir", str(tmp_path / "b")]
    res = CliRunner().invoke(cli, ["models", "check", "--langs", "de", *args[:4]])
    lines = {ln.split()[1] + "/" + ln.split()[2]: ln.split()[0] for ln in res.output.splitlines()
             if ln.split() and ln.split()[0] in ("ok", "missing", "bundled")}
    # The MT model is there; the default QE model (COMET, from the Hub) is not: exit 1 naming it.
    assert lines["translate/hf"] == "ok" and lines["qe/comet"] == "missing"
    assert res.exit_code == 1 and "Unbabel/wmt20-comet-qe-da" in res.output
    out = tmp_path / "t.jsonl"
    res = CliRunner().invoke(cli, ["translate", str(src), "--to", "de,sl", "--out", str(out), *args])
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [(r["lang"], r["origin"]) for r in rows] == [("de", "mt"), ("sl", "mt")] * 2
    res = CliRunner().invoke(cli, ["translate", str(src), "--to", "de,sl", "--out", str(out), *args])
    assert "0 new" in res.output  # all from the item cache
    res = CliRunner().invoke(cli, ["build", "--source", str(src), "--langs", "en,de", "--out", str(tmp_path / "r"),
                                   "--qe", "none", "--json", *args], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output[res.output.index("{"):])
    assert summary["status"] == "built"
    rejects = pl.read_parquet(f"{summary['release_dir']}/rejects.parquet")
    # Random-weight output is no German: language ID rejects what it cannot confirm.
    assert set(rejects.filter(pl.col("lang") == "de")["stage"]) <= {"qe", "lid_prompt"}
    kept = summary["counts"]["lang_de/train"] + summary["counts"]["lang_de/test"]
    assert kept + rejects.filter(pl.col("lang") == "de").height == 2


def test_t5_madlad_style_target_tag(tmp_path):
    from refuseu.devtools.tiny_models import build_t5

    path = build_t5(tmp_path / "t5")
    e = engine(path)
    loaded = e.load(str(path))
    assert loaded.family == "t5"
    seen = []
    model = loaded.model
    orig = model.generate
    model.generate = lambda *a, **kw: seen.append(kw["input_ids"][0].tolist()) or orig(*a, **kw)
    out = e.translate(["How do I get into the building?"], src="en", tgt="lv")
    tag = loaded.tokenizer.convert_tokens_to_ids("<2lv>")
    assert tag != loaded.tokenizer.unk_token_id and tag in seen[0][:2]  # the target tag leads the source
    assert len(out) == 1 and isinstance(out[0], str)
