"""lingua language ID (models compiled into the wheel), restricted to a set of languages."""

from __future__ import annotations

from functools import lru_cache

from refuseu.engines.lid.base import Prediction
from refuseu.errors import BuildError
from refuseu.languages import LANGUAGES

_EXTRA = {"sr": "SERBIAN", "bs": "BOSNIAN", "nb": "BOKMAL", "nn": "NYNORSK", "ca": "CATALAN"}


def lingua_name(code: str) -> str | None:
    if code in LANGUAGES:
        return LANGUAGES[code].lingua
    return _EXTRA.get(code)


@lru_cache(maxsize=32)
def detector_for(codes: frozenset[str]):
    try:
        from lingua import Language, LanguageDetectorBuilder
    except ImportError:
        raise BuildError("the lingua language-ID engine needs lingua-language-detector",
                         hint="pip install 'refuseu[lid]'") from None
    langs = [getattr(Language, n) for n in sorted(filter(None, (lingua_name(c) for c in codes)))]
    if len(langs) < 2:
        return None
    return LanguageDetectorBuilder.from_languages(*langs).build()


def iso_of(language) -> str:
    return language.iso_code_639_1.name.lower()


class LinguaLid:
    name = "lingua"

    def __init__(self, languages: list[str]):
        self.languages = frozenset(languages) | {"en"}
        self.detector = detector_for(self.languages)

    def signature(self) -> dict:
        from importlib.metadata import version
        return {"engine": "lingua", "version": version("lingua-language-detector"),
                "languages": sorted(self.languages)}

    def predict(self, texts: list[str], expected: list[str | None] | None = None) -> list[Prediction]:
        return predict_with(self.detector, texts)


def predict_with(detector, texts: list[str], *, pairwise: bool = False) -> list[Prediction]:
    """Top language and its confidence for each text (lingua's parallel batch API).

    ``pairwise``: the score is the top language's confidence against its strongest rival
    only, ``c1 / (c1 + c2)``, so that the score of a language with several close siblings
    in the candidate set (sl among hr, sr, bs) is not split between them.
    """
    out = []
    for values in detector.compute_language_confidence_values_in_parallel(texts):
        if not values:
            out.append(Prediction("und", 0.0, "lingua"))
            continue
        c1 = float(values[0].value)
        score = c1
        if pairwise and len(values) > 1:
            c2 = float(values[1].value)
            score = c1 / (c1 + c2) if c1 + c2 > 0 else 0.0
        out.append(Prediction(iso_of(values[0].language), score, "lingua"))
    return out
