"""``judge_file``: refusal judging over a curator's JSONL (``refuseu judge``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from refuseu.commands import check_output_file, check_row_lang, output_sink
from refuseu.config import JudgeConfig
from refuseu.errors import InputError
from refuseu.judges import make_judge
from refuseu.commands.langid import read_jsonl_rows


def judge_config(recipe_path: str | None = None, *, engine: str | None = None, model: str | None = None,
                 mode: str | None = None, classifier: str | None = None, threshold: float | None = None,
                 batch_size: int | None = None, device: str | None = None) -> JudgeConfig:
    """The recipe's judge section (defaults without ``recipe_path``) with command-line
    values on top. ``classifier`` is the lexicon engine's averaged classifier."""
    from pydantic import ValidationError

    from refuseu.config import load_recipe

    base = load_recipe(recipe_path).judge.model_dump() if recipe_path else {}
    if classifier:
        if model:
            raise InputError("give the model once: --classifier (averaged with the lexicon) or --model",
                             hint="--engine classifier --model M judges with the classifier alone")
        if engine not in (None, "lexicon"):
            raise InputError(f"--classifier is averaged with the lexicon; with --engine {engine} give the model "
                             "with --model")
        engine, model = "lexicon", classifier
    given = {"engine": engine, "model": model, "mode": mode, "threshold": threshold, "batch_size": batch_size,
             "device": device}
    merged = {**base, **{k: v for k, v in given.items() if v is not None}}
    try:
        return JudgeConfig.model_validate(merged)
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        msg = first["msg"].removeprefix("Value error, ")
        if loc in given and given[loc] is not None:  # a flag's value: name the flag
            raise InputError(f"--{loc.replace('_', '-')} {first.get('input')!r}: {msg}") from None
        raise InputError(f"judge.{loc}: {msg}" if loc else msg) from None


def judge_file(path: str | Path, out: str | Path, *, config: JudgeConfig | None = None,
               classifier: str | None = None, lexicons: list[str] | None = None, threshold: float = 0.5,
               cache_dir: str | Path | None = None) -> dict:
    """Judge every row's ``text`` (in ``lang``; ``prompt`` when given) and write the rows
    with ``is_refusal``, ``score`` and ``judge`` (who decided). Without ``config``: the
    lexicon (with ``classifier`` averaged in) at ``threshold``. ``cache_dir`` keeps model
    verdicts (``items.sqlite``), so a rerun judges only new rows."""
    config = config or JudgeConfig(model=classifier, threshold=threshold)
    check_output_file(out)
    rows = read_jsonl_rows(path, required=("text", "lang"))
    for n, r in enumerate(rows, start=1):
        check_row_lang(r["lang"], file=path, line=n)
        if r.get("prompt") is not None and not isinstance(r["prompt"], str):
            raise InputError(f"a prompt is a string (got {type(r['prompt']).__name__})", file=str(path), line=n,
                             field="prompt")
    judge = make_judge(config, cache_dir=cache_dir, lexicons=lexicons)
    judge.prepare()
    lexicon_only = config.engine == "lexicon"
    detector = judge.detector if lexicon_only else judge.lexicon
    # A language without a lexicon would be judged by the English cues alone, which misses
    # most refusals: the lexicon alone gives its rows no verdict (is_refusal: null).
    no_lexicon = sorted({r["lang"] for r in rows if r["lang"] != "en" and not detector.lexicons(r["lang"])})
    if no_lexicon:
        counts = {lang: sum(r["lang"] == lang for r in rows) for lang in no_lexicon}
        what = ", ".join(f"{lang} ({n} row{'s' if n != 1 else ''})" for lang, n in counts.items())
        if not lexicon_only:
            print(f"warning: no refusal lexicon for {what}: a judge output that does not parse falls back to "
                  "English cues only", file=sys.stderr)
        elif config.model:
            print(f"warning: no refusal lexicon for {what}: judged by the classifier and English cues only",
                  file=sys.stderr)
        else:
            print(f"warning: no refusal lexicon for {what}: is_refusal is null for those rows "
                  f"(lexicons exist for {', '.join(detector.languages())}; add <lang>.yaml with --lexicon DIR, "
                  "or pass --classifier or --engine)", file=sys.stderr)
    unjudged = set(no_lexicon) if lexicon_only and not config.model else set()
    verdicts = judge.judge([r["text"] for r in rows], [r["lang"] for r in rows],
                           [r.get("prompt") for r in rows])
    guard = config.engine == "llm" and config.mode == "llama_guard"  # rows carry the category codes
    with output_sink(out) as sink:
        for r, v in zip(rows, verdicts):
            flag, score, source = (None, None, None) if r["lang"] in unjudged else \
                (v.is_refusal, round(v.score, 4), v.source)
            extra = {"categories": list(v.categories)} if guard else {}
            sink.write(json.dumps({**r, "is_refusal": flag, "score": score, "judge": source, **extra},
                                  ensure_ascii=False) + "\n")
    judged = [v.is_refusal for r, v in zip(rows, verdicts) if r["lang"] not in unjudged]
    return {"rows": len(rows), "refusals": sum(judged), "unjudged": len(rows) - len(judged), "judge": judge.name,
            "fallbacks": judge.fallbacks, "computed": judge.computed, "cached": judge.cached}
