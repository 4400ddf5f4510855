"""Text normalization shared by sources, translation memories and templates.

One definition (:func:`normalize_text`) is used everywhere so that a translation-memory
source string and a prompt normalize to the same key.
"""

from __future__ import annotations

import unicodedata

import polars as pl


def normalize_text(text: str | None, form: str = "NFC") -> str:
    """Unicode normal form (ASCII is already normal), whitespace runs -> one space, ends stripped."""
    if text is None:
        return ""
    if not text.isascii():
        text = unicodedata.normalize(form, text)
    return " ".join(text.split())


def normalize_series(series: pl.Series, form: str = "NFC") -> pl.Series:
    return pl.Series(series.name, [normalize_text(t, form) for t in series.to_list()], dtype=pl.String)
