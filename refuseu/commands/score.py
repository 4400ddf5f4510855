"""``score_file``: ad-hoc quality scores for a JSONL of (src, mt) pairs (``refuseu score``)."""

from __future__ import annotations

import json
from pathlib import Path

from refuseu.commands import check_output_file, output_sink
from refuseu.config import Recipe
from refuseu.engines.cache import CachedTranslator, ItemCache
from refuseu.engines.qe.checks import cheap_check
from refuseu.engines.qe.scorers import make_scorer
from refuseu.engines.translators import TRANSLATORS
from refuseu.engines.translators.back import back_translate
from refuseu.errors import InputError
from refuseu.languages import LANGUAGES
from refuseu.commands.langid import read_jsonl_rows


def score_file(path: str | Path, out: str | Path, *, recipe: Recipe, lang: str) -> dict:
    check_output_file(out)
    if lang not in LANGUAGES:
        raise InputError(f"--lang {lang!r}: unknown language code",
                         hint=f"use an ISO 639-1 code from: {', '.join(sorted(LANGUAGES))}")
    rows = read_jsonl_rows(path, required=("src", "mt"))
    cfg = recipe.qe
    scorer = make_scorer(cfg)
    if scorer is not None and scorer.needs_back_translation and (not recipe.translate.engine
                                                                 or recipe.translate.engine == "tm"):
        chosen = f"--scorer {cfg.scorer}" + (f" --mode {cfg.mode}" if cfg.scorer == "comet" else "")
        raise InputError(f"{chosen} scores a back-translation: it needs an MT engine (--translator)",
                         hint="pass --translator hf (ctranslate2, deep-translator) and --translator-model")
    if scorer is not None:
        scorer.prepare()  # a missing model fails before any work
    backs: list[str | None] = [None] * len(rows)
    if scorer is not None and scorer.needs_back_translation:
        tr = recipe.translate
        inner = TRANSLATORS.get(tr.engine)(tr)
        if hasattr(inner, "prepare"):
            inner.prepare([lang])
        engine = CachedTranslator(inner, ItemCache(Path(recipe.build_dir) / "items.sqlite"))
        backs = back_translate(engine, [r["mt"] for r in rows], lang=lang)
    checks = [cheap_check(r["src"], r["mt"], min_ratio=cfg.min_length_ratio, max_ratio=cfg.max_length_ratio,
                          max_repeat=cfg.max_repeat) for r in rows]
    scores = scorer.score([r["src"] for r in rows], [r["mt"] for r in rows], backs) if scorer else [None] * len(rows)
    thr = cfg.threshold_for(lang)
    passed = 0
    with output_sink(out) as sink:
        for r, c, s, b in zip(rows, checks, scores, backs):
            rec = {**r, "qe_score": None if s is None else round(s, 6),
                   "qe_method": scorer.method if scorer else None, "check": c[0] if c else "ok"}
            if b is not None:
                rec["back_translation"] = b
            rec["ok"] = c is None and (thr is None or s is None or s >= thr)
            passed += rec["ok"]
            sink.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return {"rows": len(rows), "ok": passed, "method": scorer.method if scorer else "checks only"}
