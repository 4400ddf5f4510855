"""Text normalization shared by sources, translation memories and templates."""

from __future__ import annotations

import polars as pl


def normalize_expr(col: str, form: str = "NFC") -> pl.Expr:
    """Unicode normal form, whitespace runs collapsed to one space, ends stripped."""
    return pl.col(col).str.normalize(form).str.replace_all(r"\s+", " ").str.strip_chars()
