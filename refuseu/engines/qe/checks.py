"""Cheap translation checks, each its own reject reason. They run before any scorer."""

from __future__ import annotations

import re

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_URL = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)
_PLACEHOLDER = re.compile(r"\{\{[^{}]*\}\}|\{[^{}\s]*\}|%(?:\d+\$)?[sdif]|<[A-Za-z_][A-Za-z0-9_]*/?>|\[[A-Z_]{2,}\]")


def _numbers(text: str) -> list[str]:
    return sorted(re.sub(r"[.,]", "", n) for n in _NUMBER.findall(text))


def _missing(source: list[str], target: list[str]) -> list[str]:
    pool = list(target)
    lost = []
    for item in source:
        if item in pool:
            pool.remove(item)
        else:
            lost.append(item)
    return lost


def max_run(tokens: list[str]) -> int:
    best = run = 1 if tokens else 0
    for a, b in zip(tokens, tokens[1:]):
        run = run + 1 if a == b else 1
        best = max(best, run)
    return best


def cheap_check(source: str, translation: str | None, *, min_ratio: float, max_ratio: float,
                max_repeat: int) -> tuple[str, str] | None:
    """(reason, detail) for a translation that fails a cheap check, else None."""
    if translation is None or not translation.strip():
        return "empty_translation", "the engine returned nothing"
    src, tgt = source.strip(), translation.strip()
    if tgt.casefold() == src.casefold():
        return "untranslated_copy", "identical to the English source"
    ratio = len(tgt) / max(1, len(src))
    if ratio < min_ratio or ratio > max_ratio:
        return "length_ratio", f"{len(tgt)}/{len(src)} chars = {ratio:.2f}, allowed {min_ratio}-{max_ratio}"
    lost = _missing(_numbers(src), _numbers(tgt))
    if lost:
        return "lost_numbers", f"missing {', '.join(lost[:5])}"
    lost = _missing(_URL.findall(src), _URL.findall(tgt))
    if lost:
        return "lost_urls", f"missing {', '.join(lost[:3])}"
    lost = _missing(_PLACEHOLDER.findall(src), _PLACEHOLDER.findall(tgt))
    if lost:
        return "lost_placeholders", f"missing {', '.join(lost[:5])}"
    why = repetition(tgt, max_repeat)
    return ("degenerate_repetition", why) if why else None


def repetition(text: str, max_repeat: int) -> str | None:
    """Why ``text`` loops (a token ``max_repeat`` times in a row, or a short character
    sequence many times), else None."""
    tokens = text.split()
    if len(tokens) >= max_repeat:
        run = max_run([t.casefold() for t in tokens])
        if run >= max_repeat:
            return f"a token repeated {run} times in a row"
    chars = text.replace(" ", "")
    if len(chars) >= 12 and re.search(r"(.{1,4})\1{" + str(max_repeat * 2) + r",}", chars):
        return "a short character sequence repeated many times"
    return None
