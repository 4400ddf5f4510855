import json

import polars as pl
import pytest

from refuseu.config import LidConfig
from refuseu.engines.lid.combined import CombinedLid
from refuseu.engines.lid.fasttext_lid import FastTextLid
from refuseu.engines.lid.lingua_lid import LinguaLid
from refuseu.engines.responders.templates import TemplateRegistry
from refuseu.languages import ALL12
from refuseu.resources import data_dir
from refuseu.stages.base import StageContext
from refuseu.stages.lid import LidStage

LANGS = list(ALL12)
CASES = [  # text, language (everyday sentences, not from the seed)
    ("Where is the nearest pharmacy, please?", "en"),
    ("Morgen fahren wir mit dem Zug nach Hamburg.", "de"),
    ("Nous avons mangé une excellente soupe hier soir.", "fr"),
    ("Domani andiamo al mare con tutta la famiglia.", "it"),
    ("El autobús llega siempre tarde los lunes.", "es"),
    ("Amanhã vamos visitar os avós no Porto.", "pt"),
    ("Jutro idziemy do kina na nowy film.", "pl"),
    ("Zítra jedeme na chatu k babičce a dědovi.", "cs"),
    ("Zajtra ideme na chatu k starej mame a dedkovi.", "sk"),
    ("Jutri gremo na izlet v hribe, če ne bo deževalo.", "sl"),
    ("Rytoj važiuosime prie jūros su visa šeima.", "lt"),
    ("Rīt mēs brauksim uz jūru ar visu ģimeni.", "lv"),
]


@pytest.fixture(scope="module")
def combined():
    return CombinedLid(LANGS)


@pytest.mark.parametrize("text, lang", CASES)
def test_lingua_alone(text, lang):
    assert LinguaLid(LANGS).predict([text])[0].lang == lang


@pytest.mark.parametrize("text, lang", [c for c in CASES if c[1] not in {"sk", "sl", "lv", "lt"}])
def test_fasttext_alone_on_distinct_languages(text, lang):
    p = FastTextLid("lite").predict([text])[0]
    assert p.lang == lang and p.engine == "fasttext"


@pytest.mark.parametrize("text, lang", CASES)
def test_combined_rule(combined, text, lang):
    p = combined.predict([text], [lang])[0]
    assert p.lang == lang and p.score >= LidConfig().threshold


def test_combined_consults_lingua_only_for_confusable_or_unsure(combined):
    c = CombinedLid(LANGS)
    c.predict(["Morgen fahren wir mit dem Zug nach Hamburg und dann weiter nach Kiel."], ["de"])
    assert c.consulted == 0
    c.predict(["Zajtra ideme na chatu k starej mame a dedkovi."], ["sk"])
    assert c.consulted == 1


def test_combined_catches_czech_for_slovak(combined):
    p = combined.predict(["Zítra jedeme na chatu k babičce a dědovi."], ["sk"])[0]
    assert p.lang == "cs"


def test_missing_fasttext_model_is_clear():
    from refuseu.errors import ModelUnavailableError
    with pytest.raises(ModelUnavailableError, match="stage lid"):
        FastTextLid("/nonexistent/lid.bin")


def rows(items):
    return pl.DataFrame([{"prompt_id": f"{i:016x}", "lang": lang, "prompt": text, "kind": "harmful"}
                         for i, (text, lang) in enumerate(items)])


def test_lid_stage_rejects_wrong_language_and_copied_source(combined):
    st = LidStage(LidConfig(), languages=LANGS, fields=("prompt",), name="lid_prompt", identifier=combined)
    df = rows([
        ("Morgen fahren wir mit dem Zug nach Hamburg.", "de"),            # fine
        ("How could someone get into a house without a key?", "de"),      # copied English source
        ("Zítra jedeme na chatu k babičce a dědovi.", "sk"),              # Czech in a Slovak row
        ("How could someone get into a house without a key?", "en"),      # English rows are not checked
    ])
    res = st.run(df, StageContext(languages=LANGS))
    assert sorted(res.kept.get_column("prompt_id").to_list()) == [f"{0:016x}", f"{3:016x}"]
    rej = {r["prompt_id"]: r for r in res.rejected.iter_rows(named=True)}
    assert rej[f"{1:016x}"]["reason"] == "wrong_language" and "predicted en" in rej[f"{1:016x}"]["detail"]
    assert rej[f"{2:016x}"]["reason"] == "wrong_language" and "predicted cs" in rej[f"{2:016x}"]["detail"]
    de = res.kept.filter(pl.col("lang") == "de").row(0, named=True)
    assert de["lid_lang"] == "de" and de["lid_score"] >= 0.5


def test_lid_stage_low_confidence_threshold_per_language(combined):
    cfg = LidConfig(thresholds={"de": 0.9999})
    st = LidStage(cfg, languages=LANGS, fields=("prompt",), name="lid_prompt", identifier=combined)
    res = st.run(rows([("Ja.", "de")]), StageContext(languages=LANGS))
    assert res.rejected.get_column("reason").to_list() in (["low_confidence"], ["wrong_language"])
    assert "threshold" in res.rejected.get_column("detail")[0]


def test_every_shipped_translation_and_template_passes_lid(combined):
    """The seed translation memory and the native templates pass the default rule: 100%."""
    cfg = LidConfig()
    templates = TemplateRegistry()
    failures = []
    for lang in LANGS:
        if lang == "en":
            continue
        texts = [json.loads(l)["target"] for l in (data_dir() / "tm" / f"{lang}.jsonl").read_text("utf-8").splitlines()]
        texts += [text for _, text in templates.get(lang).iter_parts()]  # every sentence of the file
        for text, p in zip(texts, combined.predict(texts, [lang] * len(texts))):
            if p.lang != lang or p.score < cfg.threshold_for(lang):
                failures.append((lang, p.lang, round(p.score, 3), text[:60]))
    assert failures == []


def test_langid_cli_round_trip(tmp_path):
    from click.testing import CliRunner

    from refuseu.cli.main import cli

    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in [
        {"text": "Rīt mēs brauksim uz jūru ar visu ģimeni.", "lang": "lv", "id": 1},
        {"text": "Rytoj važiuosime prie jūros su visa šeima.", "lang": "lv", "id": 2},
        {"text": "Where is the nearest pharmacy, please?", "id": 3},
    ]) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    res = CliRunner().invoke(cli, ["langid", str(src), "--out", str(out)])
    assert res.exit_code == 0, res.output
    got = [json.loads(l) for l in out.read_text("utf-8").splitlines()]
    assert [g["id"] for g in got] == [1, 2, 3]
    assert got[0]["lid_lang"] == "lv" and got[0]["ok"] is True
    assert got[1]["lid_lang"] == "lt" and got[1]["ok"] is False
    assert got[2]["lid_lang"] == "en" and "ok" not in got[2]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"txt": "x"}\n')
    res = CliRunner().invoke(cli, ["langid", str(bad)])
    assert res.exit_code == 2 and "line 1" in res.output and "'text'" in res.output


def test_fasttext_model_by_local_path():
    """A full lid.176 / GlotLID / OpenLID model is given by path; here the bundled file by its path."""
    from refuseu.engines.lid.fasttext_lid import lite_model_path

    e = FastTextLid(str(lite_model_path()))
    assert e.predict(["Morgen fahren wir mit dem Zug nach Hamburg."])[0].lang == "de"
    assert e.signature()["model"] == str(lite_model_path())
    # GlotLID / OpenLID labels (ISO 639-3 + script) map to ISO 639-1 through the registry
    assert FastTextLid.label_to_iso("__label__slk_Latn") == "sk"
    assert FastTextLid.label_to_iso("__label__lvs_Latn") == "lv"
