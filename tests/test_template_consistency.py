"""The shipped templates and the refusal lexicon agree.

Every refusal a template file can compose (``chosen`` of a harmful prompt) and every
over-refusal (``rejected`` of a benign prompt) is judged a refusal; every compliance text
(``rejected`` fallback) and every reference helpful answer is judged not a refusal. The
respond stage relies on this: a template the judge disagrees with is dropped or, worse, kept
on the wrong side of a pair. On failure the test prints the texts it disagrees with.
"""

from __future__ import annotations

import json

import pytest

from refuseu.engines.responders.templates import TemplateRegistry
from refuseu.judges import RefusalDetector
from refuseu.resources import data_dir

LANGS = TemplateRegistry().languages()
SHOWN = 40   # failing texts printed at most per check


@pytest.fixture(scope="module")
def detector():
    return RefusalDetector()


def _refusal_texts(tpl) -> list[str]:
    if hasattr(tpl, "iter_refusals"):
        return list(tpl.iter_refusals())
    return list(dict.fromkeys(t for pool in tpl.refusals.values() for t in pool))   # format-1 lists


def _compliance_texts(tpl) -> list[str]:
    if hasattr(tpl, "iter_rejected"):
        return list(tpl.iter_rejected())
    return list(tpl.compliance_openers)


def _check(detector, texts: list[str], lang: str, *, want: bool, what: str) -> None:
    assert texts, f"{lang}: no {what} to check"
    verdicts = detector.is_refusal(texts, [lang] * len(texts))
    wrong = [t for t, (flag, _) in zip(texts, verdicts) if flag is not want]
    if wrong:
        shown = "\n".join(f"  - {t}" for t in wrong[:SHOWN])
        more = f"\n  ... and {len(wrong) - SHOWN} more" if len(wrong) > SHOWN else ""
        verdict = "NOT judged a refusal" if want else "judged a refusal"
        pytest.fail(f"{lang}: {len(wrong)} of {len(texts)} {what} {verdict}:\n{shown}{more}", pytrace=False)


def test_every_language_has_templates():
    assert len(LANGS) >= 12, LANGS


@pytest.mark.parametrize("lang", LANGS)
def test_composed_refusals_are_refusals(detector, lang):
    _check(detector, _refusal_texts(TemplateRegistry().get(lang)), lang, want=True, what="template refusals")


@pytest.mark.parametrize("lang", LANGS)
def test_over_refusals_are_refusals(detector, lang):
    _check(detector, list(TemplateRegistry().get(lang).over_refusals), lang, want=True, what="over-refusals")


@pytest.mark.parametrize("lang", LANGS)
def test_compliance_texts_are_not_refusals(detector, lang):
    _check(detector, _compliance_texts(TemplateRegistry().get(lang)), lang, want=False, what="compliance texts")


@pytest.mark.parametrize("lang", LANGS)
def test_reference_helpful_answers_are_not_refusals(detector, lang):
    folder = data_dir() / "helpful"
    if not folder.is_dir():
        pytest.skip(f"no reference helpful answers shipped ({folder} does not exist)")
    path = folder / f"{lang}.jsonl"
    if not path.exists():
        pytest.skip(f"no reference helpful answers for {lang} ({path} does not exist)")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    answers = [r["answer"] for r in rows if r.get("answer")]
    _check(detector, answers, lang, want=False, what="reference helpful answers")
