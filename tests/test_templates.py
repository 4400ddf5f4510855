"""Native refusal templates: the format-2 loader, its minimums, deterministic composition and
the variety and safety answers of every shipped language."""

import itertools
import shutil

import pytest
import yaml

from refuseu.engines.responders.templates import (CATEGORIES, DOMAINS, SELF_HARM, TemplateRegistry,
                                                  load_templates)
from refuseu.errors import InputError
from refuseu.languages import ALL12
from refuseu.resources import data_dir

SHIPPED = data_dir() / "templates"
HARMFUL = [c for c in CATEGORIES if c != SELF_HARM]


@pytest.fixture(scope="module")
def registry():
    return TemplateRegistry()


def v2(registry, lang):
    """The shipped templates of ``lang``; count tests skip a language still in format 1."""
    tpl = registry.get(lang)
    if tpl.format != 2:
        pytest.skip(f"{lang}.yaml is still in format 1")
    return tpl


def test_all_twelve_languages_are_shipped(registry):
    assert set(ALL12) <= set(registry.languages())


@pytest.mark.parametrize("lang", ALL12)
def test_every_shipped_file_loads(registry, lang):
    tpl = registry.get(lang)
    assert tpl.lang == lang and tpl.format in (1, 2)
    assert tpl.chosen_for("hate", None, 1) and tpl.rejected_for("hate", 1)


@pytest.mark.parametrize("lang", ALL12)
def test_shipped_format2_file_covers_every_category(registry, lang):
    tpl = v2(registry, lang)
    assert set(CATEGORIES) - {SELF_HARM} <= set(tpl.reasons)
    assert set(tpl.openers) == {"general", *CATEGORIES}


@pytest.mark.parametrize("lang", ALL12)
def test_variety_per_language(registry, lang):
    tpl = v2(registry, lang)
    for category in HARMFUL:
        chosen = {tpl.chosen_for(category, None, p) for p in range(1000)}
        assert len(chosen) >= 60, (lang, category, len(chosen))
    rejected = {tpl.rejected_for(HARMFUL[p % len(HARMFUL)], p) for p in range(1000)}
    assert len(rejected) >= 30, (lang, len(rejected))


@pytest.mark.parametrize("lang", ALL12)
def test_lengths_of_chosen_and_rejected_overlap(registry, lang):
    tpl = v2(registry, lang)
    chosen = [len(tpl.chosen_for(HARMFUL[p % len(HARMFUL)], None, p)) for p in range(2000)]
    rejected = [len(tpl.rejected_for(HARMFUL[p % len(HARMFUL)], p)) for p in range(2000)]
    mean_c, mean_r = sum(chosen) / len(chosen), sum(rejected) / len(rejected)
    # each mean lies inside the other side's range, so length alone does not separate them
    assert min(rejected) < mean_c < max(rejected) or min(chosen) < mean_r < max(chosen), (lang, mean_c, mean_r)
    assert abs(mean_c - mean_r) < 80, (lang, mean_c, mean_r)


@pytest.mark.parametrize("lang", ALL12)
def test_emergencies_and_self_harm_point_to_112(registry, lang):
    tpl = v2(registry, lang)
    for p in range(50):
        assert "112" in tpl.chosen_for("violent_crimes", "urgent", p)
        assert "112" in tpl.chosen_for("specialized_advice", "urgent", p)
        assert "112" in tpl.chosen_for(SELF_HARM, None, p)
    assert all("112" in t for t in tpl.urgent + tpl.self_harm)


@pytest.mark.parametrize("lang", ALL12)
def test_specialized_advice_by_domain(registry, lang):
    tpl = v2(registry, lang)
    for domain in DOMAINS:
        got = {tpl.chosen_for("specialized_advice", domain, p) for p in range(200)}
        assert got == set(tpl.specialized[domain])
    assert "112" in " ".join(tpl.specialized["medical"])


@pytest.mark.parametrize("lang", ALL12)
def test_iterators_cover_what_composition_returns(registry, lang):
    tpl = registry.get(lang)
    refusals, rejected = set(tpl.iter_refusals()), set(tpl.iter_rejected())
    for p in range(300):
        category = (HARMFUL + [SELF_HARM, "uncategorized"])[p % 15]
        assert tpl.chosen_for(category, None, p) in refusals
        assert tpl.rejected_for(category, p) in rejected
    for hint in ("urgent", *DOMAINS):
        assert tpl.chosen_for("specialized_advice", hint, 7) in refusals
    parts = list(tpl.iter_parts())
    assert all(isinstance(path, str) and text.strip() for path, text in parts)
    assert len({path for path, _ in parts}) == len(parts)


def test_determinism_and_64_bit_picks(registry):
    tpl = registry.get("en")
    fresh = TemplateRegistry().get("en")
    for pick in (0, 1, 2**32 + 5, 2**64 - 1, 123456789012345):
        assert tpl.chosen_for("privacy", None, pick) == fresh.chosen_for("privacy", None, pick)
        assert tpl.rejected_for("privacy", pick) == fresh.rejected_for("privacy", pick)
        assert tpl.over_refusal_for(pick) == fresh.over_refusal_for(pick)
    assert len({tpl.chosen_for("privacy", None, p) for p in range(20)}) > 10


def test_composition_follows_the_category(registry):
    tpl = v2(registry, "en")
    for p in range(200):
        text = tpl.chosen_for("elections", None, p)
        assert any(r in text for r in tpl.reasons["elections"])
        assert not any(r in text for r in tpl.reasons["general"])
        # unknown categories (e.g. uncategorized) use the general lists
        assert any(r in tpl.chosen_for("uncategorized", None, p) for r in tpl.reasons["general"])
    openers = {tpl.rejected_for("code_interpreter_abuse", p) for p in range(500)}
    assert any(t.startswith(o) for t in openers for o in tpl.openers["code_interpreter_abuse"])
    lengths = {len(tpl.chosen_for("hate", None, p)) for p in range(200)}
    assert max(lengths) - min(lengths) > 60  # opening and redirect come and go


def test_unknown_hint_is_an_input_error(registry):
    with pytest.raises(InputError, match="hint"):
        registry.get("en").chosen_for("hate", "dental", 1)


# -- loading and its errors ----------------------------------------------------------------------

def copy_en(tmp_path, edit=None, name="en.yaml"):
    data = yaml.safe_load((SHIPPED / "en.yaml").read_text("utf-8"))
    if edit:
        edit(data)
    (tmp_path / name).write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    return tmp_path


@pytest.mark.parametrize("edit, field, needs", [
    (lambda d: d["refusals"].__setitem__("core", d["refusals"]["core"][:5]), "refusals.core", "at least 12"),
    (lambda d: d["refusals"].pop("openings"), "refusals.openings", "at least 6"),
    (lambda d: d["refusals"].__setitem__("self_harm", d["refusals"]["self_harm"][:2]), "refusals.self_harm",
     "at least 6"),
    (lambda d: d["refusals"].__setitem__("urgent", []), "refusals.urgent", "at least 4"),
    (lambda d: d["refusals"]["reasons"].__setitem__("hate", ["x"]), "refusals.reasons.hate", "at least 3"),
    (lambda d: d["refusals"]["core"].pop(), None, None),
    (lambda d: d["refusals"]["redirects"].__setitem__("general", ["a", "b"]), "refusals.redirects.general",
     "at least 4"),
    (lambda d: d["refusals"]["specialized"].pop("legal"), "refusals.specialized.legal", "at least 3"),
    (lambda d: d["compliance_openers"]["openers"].__setitem__("general", ["Sure."] * 20),
     "compliance_openers.openers.general", "at least 15"),
    (lambda d: d["compliance_openers"]["openers"].__setitem__("privacy", ["Sure."]),
     "compliance_openers.openers.privacy", "at least 2"),
    (lambda d: d["compliance_openers"].__setitem__("continuations", ["a"] * 3),
     "compliance_openers.continuations", "at least 8"),
    (lambda d: d.__setitem__("over_refusals", ["No."]), "over_refusals", "at least 8"),
    (lambda d: d["refusals"]["reasons"].__setitem__("violense", ["a", "b", "c"]), "refusals.reasons",
     "unknown key(s) violense"),
    (lambda d: d["refusals"].__setitem__("core", "I won't."), "refusals.core", "must be a list"),
    (lambda d: d["refusals"]["core"].__setitem__(0, ""), "refusals.core[0]", "non-empty text"),
    (lambda d: d["refusals"]["core"].__setitem__(0, {"text": "No.", "address": "polite"}), "refusals.core[0]",
     "formal, informal"),
    (lambda d: d["refusals"]["core"].__setitem__(0, {"txt": "No."}), "refusals.core[0]", "unknown key(s) txt"),
    (lambda d: d["compliance_openers"]["openers"]["privacy"].__setitem__(
        slice(None), [{"text": t, "address": "formal"} for t in d["compliance_openers"]["openers"]["privacy"]]),
     "compliance_openers.openers.privacy", "no entry usable with informal address"),
    (lambda d: d.__setitem__("format", 3), "format", "unknown format 3"),
    (lambda d: d.__setitem__("lang", "de"), "lang", "'de'"),
])
def test_minimums_and_bad_fields_are_named(tmp_path, edit, field, needs):
    folder = copy_en(tmp_path, edit)
    if field is None:  # still at the minimum: loads
        assert TemplateRegistry(folder).get("en").format == 2
        return
    with pytest.raises(InputError) as e:
        TemplateRegistry(folder).get("en")
    msg = str(e.value)
    assert str(folder / "en.yaml") in msg and f"field '{field}'" in msg and needs in msg, msg
    assert "\n" not in e.value.message


def test_address_is_never_mixed_within_one_answer(tmp_path):
    formal, informal = "Ich helfe Ihnen dabei nicht.", "Ich helfe dir dabei nicht."

    def mark(d):
        d["refusals"]["core"][:2] = [{"text": formal, "address": "formal"},
                                     {"text": informal, "address": "informal"}]
        d["refusals"]["openings"][0] = {"text": "Danke für Ihre Frage.", "address": "formal"}
        d["refusals"]["openings"][1] = {"text": "Danke für deine Frage.", "address": "informal"}
    tpl = TemplateRegistry(copy_en(tmp_path, mark)).get("en")
    assert tpl.addresses == ("formal", "informal")
    seen = set()
    for p in range(3000):
        text = tpl.chosen_for("hate", None, p)
        assert not ("Ihre" in text and "dir" in text) and not ("deine" in text and "Ihnen" in text), text
        seen |= {formal in text, informal in text}
    assert seen == {True, False}
    everything = set(tpl.iter_refusals())
    assert not any("Ihre Frage" in t and informal in t for t in everything)
    assert all(tpl.chosen_for("privacy", None, p) in everything for p in range(500))
    assert [text for path, text in tpl.iter_parts() if path == "refusals.core[0]"] == [formal]


@pytest.mark.parametrize("lang", ALL12)
def test_shipped_answers_keep_one_address(registry, lang):
    tpl = registry.get(lang)
    if not tpl.address:
        pytest.skip(f"{lang}.yaml marks no address")
    formal = [t for t, a in tpl.address.items() if a == "formal"]
    informal = [t for t, a in tpl.address.items() if a == "informal"]
    for text in itertools.chain(tpl.iter_refusals(), tpl.iter_rejected()):
        assert not (any(f in text for f in formal) and any(i in text for i in informal)), text


def test_broken_yaml_names_the_file(tmp_path):
    (tmp_path / "xx.yaml").write_text("refusals: [unclosed\n  - x: y", "utf-8")
    with pytest.raises(InputError) as e:
        TemplateRegistry(tmp_path).get("xx")
    assert str(tmp_path / "xx.yaml") in str(e.value) and "invalid YAML" in str(e.value)
    (tmp_path / "yy.yaml").write_text("- just a list\n", "utf-8")
    with pytest.raises(InputError, match="yy.yaml"):
        TemplateRegistry(tmp_path).get("yy")


def test_format1_files_still_load(tmp_path):
    general = [f"I can't help with request number {i}." for i in range(12)]
    (tmp_path / "xx.yaml").write_text(yaml.safe_dump({
        "lang": "xx",
        "refusals": {"general": general, "hate": ["I won't write hateful content."]},
        "compliance_openers": ["Sure, here it is.", "Of course."],
        "over_refusals": ["Sorry, I can't."]}), "utf-8")
    tpl = TemplateRegistry(tmp_path).get("xx")
    assert tpl.format == 1
    assert tpl.chosen_for("hate", None, 5) == "I won't write hateful content."
    assert {tpl.chosen_for("privacy", None, p) for p in range(200)} == set(general)
    assert tpl.chosen_for("privacy", "urgent", 3) in general
    assert {tpl.rejected_for("hate", p) for p in range(50)} == {"Sure, here it is.", "Of course."}
    assert tpl.over_refusal_for(9) == "Sorry, I can't."
    assert set(tpl.iter_refusals()) == set(general) | {"I won't write hateful content."}
    assert set(tpl.iter_rejected()) == {"Sure, here it is.", "Of course."}
    assert tpl.refusal_pool("uncategorized") == tuple(general)
    assert len(list(tpl.iter_parts())) == 12 + 1 + 2 + 1


def test_format1_needs_twelve_general_refusals(tmp_path):
    (tmp_path / "xx.yaml").write_text(yaml.safe_dump({
        "refusals": {"general": ["No."] * 3}, "compliance_openers": ["Sure."]}), "utf-8")
    with pytest.raises(InputError, match=r"xx\.yaml, field 'refusals.general': needs at least 12"):
        load_templates(tmp_path / "xx.yaml")


def test_registry_version_and_require(tmp_path):
    shutil.copy(SHIPPED / "en.yaml", tmp_path / "en.yaml")
    reg = TemplateRegistry(tmp_path)
    assert reg.languages() == ["en"]
    v = reg.version(["en"])
    assert v == TemplateRegistry(tmp_path).version(["en"])
    (tmp_path / "en.yaml").write_text((SHIPPED / "en.yaml").read_text("utf-8") + "\n# edited\n", "utf-8")
    assert reg.version(["en"]) != v
    from refuseu.errors import InputError
    with pytest.raises(InputError, match="de"):  # the recipe's folder lacks a language: bad input
        reg.require(["en", "de"])
