"""The language registry: one row per language the toolkit knows.

Codes per engine: FLORES-200 (NLLB), the fastText lid.176 label, the lingua language,
the codes deep-translator providers use, and the Marian opus-mt English->X model where
one is published.
"""

from __future__ import annotations

from dataclasses import dataclass

from refuseu.errors import InputError


@dataclass(frozen=True)
class Language:
    code: str            # ISO 639-1
    name: str            # English name
    flores: str          # FLORES-200 code used by NLLB-200
    fasttext: str        # fastText lid.176 label (without __label__)
    lingua: str | None   # lingua.Language member name; None where lingua has no model
    google: str          # deep-translator GoogleTranslator code
    deepl: str | None    # deep-translator DeeplTranslator code; None where DeepL has none
    marian: str | None   # Helsinki-NLP opus-mt model for English -> this language


_ROWS = [
    # code name flores fasttext lingua google deepl marian
    ("bg", "Bulgarian", "bul_Cyrl", "bg", "BULGARIAN", "bg", "bg", "Helsinki-NLP/opus-mt-tc-big-en-bg"),
    ("cs", "Czech", "ces_Latn", "cs", "CZECH", "cs", "cs", "Helsinki-NLP/opus-mt-en-cs"),
    ("da", "Danish", "dan_Latn", "da", "DANISH", "da", "da", "Helsinki-NLP/opus-mt-en-da"),
    ("de", "German", "deu_Latn", "de", "GERMAN", "de", "de", "Helsinki-NLP/opus-mt-en-de"),
    ("el", "Greek", "ell_Grek", "el", "GREEK", "el", "el", "Helsinki-NLP/opus-mt-tc-big-en-el"),
    ("en", "English", "eng_Latn", "en", "ENGLISH", "en", "en", None),
    ("es", "Spanish", "spa_Latn", "es", "SPANISH", "es", "es", "Helsinki-NLP/opus-mt-en-es"),
    ("et", "Estonian", "est_Latn", "et", "ESTONIAN", "et", "et", "Helsinki-NLP/opus-mt-en-et"),
    ("fi", "Finnish", "fin_Latn", "fi", "FINNISH", "fi", "fi", "Helsinki-NLP/opus-mt-en-fi"),
    ("fr", "French", "fra_Latn", "fr", "FRENCH", "fr", "fr", "Helsinki-NLP/opus-mt-en-fr"),
    ("ga", "Irish", "gle_Latn", "ga", "IRISH", "ga", None, "Helsinki-NLP/opus-mt-en-ga"),
    ("hr", "Croatian", "hrv_Latn", "hr", "CROATIAN", "hr", None, "Helsinki-NLP/opus-mt-tc-big-en-hr"),
    ("hu", "Hungarian", "hun_Latn", "hu", "HUNGARIAN", "hu", "hu", "Helsinki-NLP/opus-mt-tc-big-en-hu"),
    ("it", "Italian", "ita_Latn", "it", "ITALIAN", "it", "it", "Helsinki-NLP/opus-mt-en-it"),
    ("lt", "Lithuanian", "lit_Latn", "lt", "LITHUANIAN", "lt", "lt", "Helsinki-NLP/opus-mt-tc-big-en-lt"),
    ("lv", "Latvian", "lvs_Latn", "lv", "LATVIAN", "lv", "lv", "Helsinki-NLP/opus-mt-tc-big-en-lv"),
    ("mt", "Maltese", "mlt_Latn", "mt", None, "mt", None, "Helsinki-NLP/opus-mt-en-mt"),
    ("nl", "Dutch", "nld_Latn", "nl", "DUTCH", "nl", "nl", "Helsinki-NLP/opus-mt-en-nl"),
    ("pl", "Polish", "pol_Latn", "pl", "POLISH", "pl", "pl", "Helsinki-NLP/opus-mt-en-zlw"),
    ("pt", "Portuguese", "por_Latn", "pt", "PORTUGUESE", "pt", "pt", "Helsinki-NLP/opus-mt-tc-big-en-pt"),
    ("ro", "Romanian", "ron_Latn", "ro", "ROMANIAN", "ro", "ro", "Helsinki-NLP/opus-mt-en-ro"),
    ("sk", "Slovak", "slk_Latn", "sk", "SLOVAK", "sk", "sk", "Helsinki-NLP/opus-mt-en-sk"),
    ("sl", "Slovenian", "slv_Latn", "sl", "SLOVENE", "sl", "sl", "Helsinki-NLP/opus-mt-en-sla"),
    ("sv", "Swedish", "swe_Latn", "sv", "SWEDISH", "sv", "sv", "Helsinki-NLP/opus-mt-en-sv"),
]

LANGUAGES: dict[str, Language] = {r[0]: Language(*r) for r in _ROWS}

# The 12 languages of the reference RefusEU dataset, in its order.
ALL12 = ("en", "de", "fr", "it", "es", "pt", "pl", "cs", "sk", "sl", "lt", "lv")
# The 24 official languages of the European Union.
EU24 = ("bg", "cs", "da", "de", "el", "en", "es", "et", "fi", "fr", "ga", "hr",
        "hu", "it", "lt", "lv", "mt", "nl", "pl", "pt", "ro", "sk", "sl", "sv")


def get_language(code: str) -> Language:
    try:
        return LANGUAGES[code]
    except KeyError:
        raise InputError(f"unknown language code '{code}'", field="langs",
                         hint=f"use ISO 639-1 codes from: {', '.join(sorted(LANGUAGES))}; "
                              "or 'all' (the 12 of RefusEU) or 'eu24'") from None


LANGS_HINT = "e.g. all (the 12 of RefusEU), eu24, or ISO codes such as en,de"


class LangsError(InputError):
    """A language list that cannot be used; ``reason`` is the message without its place."""

    def __init__(self, reason: str, *, spec, flag: str | None, hint: str):
        self.reason = reason
        if flag is not None:
            super().__init__(f"{flag} {spec!r}: {reason}", hint=hint)
        else:
            super().__init__(reason, field="langs", hint=hint)


def parse_langs(spec: str | list[str] | tuple[str, ...], *, flag: str | None = None) -> list[str]:
    """``all`` | ``eu24`` | ``de,fr`` (or a list of those) -> ordered unique codes, English first.

    An empty spec or an empty item (``en,,de``) is an input error. ``flag`` names the
    command-line flag the spec came from, for the message (default: field 'langs').
    """
    def fail(message: str, hint: str) -> InputError:
        return LangsError(message, spec=spec, flag=flag, hint=hint)

    items = spec.split(",") if isinstance(spec, str) else list(spec)
    if not any(str(raw).strip() for raw in items):
        raise fail("no language given", LANGS_HINT)
    out: list[str] = []
    for pos, raw in enumerate(items, start=1):
        item = str(raw).strip().lower()
        if not item:
            raise fail(f"item {pos} of {len(items)} is empty", "remove the extra comma; " + LANGS_HINT)
        codes = ALL12 if item == "all" else EU24 if item == "eu24" else (item,)
        for c in codes:
            if c not in LANGUAGES:
                raise fail(f"unknown language code '{c}'",
                           f"use ISO 639-1 codes from: {', '.join(sorted(LANGUAGES))}; "
                           "or 'all' (the 12 of RefusEU) or 'eu24'")
            if c not in out:
                out.append(c)
    return sorted(out, key=lambda c: (c != "en", ALL12.index(c) if c in ALL12 else 99, c))
