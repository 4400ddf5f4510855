"""Text normalization shared by sources, translation memories and templates.

One definition (:func:`normalize_text`) is used everywhere so that a translation-memory
source string and a prompt normalize to the same key.
"""

from __future__ import annotations

import re
import unicodedata

import polars as pl

#: Control characters that are not whitespace (NUL, escape, DEL, C1 controls) and lone UTF-16
#: surrogates (a JSON "\ud800" reads as one): never text, and invisible in a release.
_CONTROL = re.compile("[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\ud800-\udfff]")


def normalize_text(text: str | None, form: str = "NFC") -> str:
    """Unicode normal form (ASCII is already normal), control characters removed, whitespace
    runs -> one space, ends stripped."""
    if text is None:
        return ""
    if not text.isascii():
        text = unicodedata.normalize(form, text)
    if not text.isprintable():  # (cheap: most texts are; newlines and tabs are whitespace below)
        text = _CONTROL.sub("", text)
    return " ".join(text.split())


def normalize_series(series: pl.Series, form: str = "NFC") -> pl.Series:
    return pl.Series(series.name, [normalize_text(t, form) for t in series.to_list()], dtype=pl.String)
