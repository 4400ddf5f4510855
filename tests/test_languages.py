import pytest

from refuseu.errors import InputError
from refuseu.languages import ALL12, EU24, LANGUAGES, get_language, parse_langs

# (code, FLORES-200, lingua, fastText) for all 24 official EU languages.
EXPECTED = [
    ("bg", "bul_Cyrl", "BULGARIAN"), ("cs", "ces_Latn", "CZECH"), ("da", "dan_Latn", "DANISH"),
    ("de", "deu_Latn", "GERMAN"), ("el", "ell_Grek", "GREEK"), ("en", "eng_Latn", "ENGLISH"),
    ("es", "spa_Latn", "SPANISH"), ("et", "est_Latn", "ESTONIAN"), ("fi", "fin_Latn", "FINNISH"),
    ("fr", "fra_Latn", "FRENCH"), ("ga", "gle_Latn", "IRISH"), ("hr", "hrv_Latn", "CROATIAN"),
    ("hu", "hun_Latn", "HUNGARIAN"), ("it", "ita_Latn", "ITALIAN"), ("lt", "lit_Latn", "LITHUANIAN"),
    ("lv", "lvs_Latn", "LATVIAN"), ("mt", "mlt_Latn", None), ("nl", "nld_Latn", "DUTCH"),
    ("pl", "pol_Latn", "POLISH"), ("pt", "por_Latn", "PORTUGUESE"), ("ro", "ron_Latn", "ROMANIAN"),
    ("sk", "slk_Latn", "SLOVAK"), ("sl", "slv_Latn", "SLOVENE"), ("sv", "swe_Latn", "SWEDISH"),
]


@pytest.mark.parametrize("code, flores, lingua", EXPECTED)
def test_eu24_mappings(code, flores, lingua):
    lang = get_language(code)
    assert lang.flores == flores
    assert lang.lingua == lingua
    assert lang.fasttext == code
    assert lang.google == code
    if code != "en":
        assert lang.marian is None or lang.marian.startswith("Helsinki-NLP/opus-mt-")


def test_registry_names_are_real_for_engines():
    from lingua import Language

    from refuseu.engines.lid.fasttext_lid import FastTextLid

    # fasttext-predict has no get_labels(): ask for every label of one prediction.
    labels = {lab for _, lab in FastTextLid("lite")._predict("hello\n", 500, 0.0, "strict")}
    assert len(labels) > 150
    for code, lang in LANGUAGES.items():
        if lang.lingua:
            assert hasattr(Language, lang.lingua), code
        assert f"__label__{lang.fasttext}" in labels, code


def test_sets():
    assert len(ALL12) == 12 and len(EU24) == 24 and set(ALL12) <= set(EU24)
    assert set(EU24) == {c for c, *_ in EXPECTED}


@pytest.mark.parametrize("spec, expected", [
    ("all", list(ALL12)),
    ("de,en", ["en", "de"]),
    (" SK , cs ", ["cs", "sk"]),
    ("eu24", None),
])
def test_parse_langs(spec, expected):
    got = parse_langs(spec)
    if expected is None:
        assert len(got) == 24 and got[0] == "en"
    else:
        assert got == expected


def test_unknown_code_lists_known_ones():
    with pytest.raises(InputError) as e:
        parse_langs("de,xx")
    assert e.value.exit_code == 2 and "'xx'" in str(e.value) and "sl" in e.value.hint
