"""``translate_file``: ad-hoc translation of a curator's JSONL (``refuseu translate``)."""

from __future__ import annotations

import json
from pathlib import Path

from refuseu.commands import check_output_file, output_sink
from refuseu.config import Recipe
from refuseu.engines.cache import CachedTranslator, ItemCache
from refuseu.engines.translators import TRANSLATORS
from refuseu.errors import BuildError
from refuseu.languages import parse_langs
from refuseu.commands.langid import read_jsonl_rows
from refuseu.text import normalize_text


def translate_file(path: str | Path, out: str | Path, *, recipe: Recipe, langs: str) -> dict:
    check_output_file(out)
    targets = [lang for lang in parse_langs(langs, flag="--to") if lang != "en"]
    rows = read_jsonl_rows(path)
    cfg = recipe.translate
    memory = TRANSLATORS.get("tm")(cfg.memory)
    engine = None
    if cfg.engine and cfg.engine != "tm":
        inner = TRANSLATORS.get(cfg.engine)(cfg)
        if hasattr(inner, "prepare"):
            inner.prepare(targets)  # a missing model fails before any work
        engine = CachedTranslator(inner, ItemCache(Path(recipe.build_dir) / "items.sqlite"))
    texts = [normalize_text(r["text"]) for r in rows]
    stats = {"rows": len(rows), "languages": len(targets), "tm": 0, "mt": 0, "computed": 0}
    results: dict[str, list[tuple[str | None, str | None]]] = {}
    for lang in targets:
        got = memory.translate(texts, src="en", tgt=lang)
        origin = ["tm" if g is not None else None for g in got]
        todo = [i for i, g in enumerate(got) if g is None]
        if todo and engine is None:
            raise BuildError(f"{len(todo)} row(s) have no translation into '{lang}' in memory and no MT engine "
                             "is configured", hint="pass --translator hf (or ctranslate2, deep-translator)")
        if todo:
            mt = engine.translate([texts[i] for i in todo], src="en", tgt=lang)
            for i, t in zip(todo, mt):
                got[i], origin[i] = t, "mt" if t is not None else None
        stats["tm"] += origin.count("tm")
        stats["mt"] += origin.count("mt")
        results[lang] = list(zip(got, origin))
    stats["computed"] = engine.computed if engine else 0
    with output_sink(out) as sink:
        for i, row in enumerate(rows):
            for lang in targets:
                text, origin = results[lang][i]
                sink.write(json.dumps({**row, "lang": lang, "translation": text, "origin": origin},
                                      ensure_ascii=False) + "\n")
    return stats
