"""Back-translation (target -> English), the reusable step behind round-trip quality
estimation: the same engines and the same item cache as forward translation."""

from __future__ import annotations

from refuseu.engines.cache import CachedTranslator


def back_translate(engine: CachedTranslator, texts: list[str], *, lang: str, progress=None) -> list[str | None]:
    """English renderings of ``texts`` written in ``lang`` (input order; None where the
    engine has none). English input comes back unchanged."""
    if lang == "en":
        return list(texts)
    return engine.translate(texts, src=lang, tgt="en", progress=progress)
