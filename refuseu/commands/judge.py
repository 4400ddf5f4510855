"""``judge_file``: refusal detection over a curator's JSONL (``refuseu judge``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from refuseu.errors import InputError
from refuseu.judges import RefusalDetector
from refuseu.languages import get_language
from refuseu.commands.langid import read_jsonl_rows


def judge_file(path: str | Path, out: str | Path, *, classifier: str | None = None,
               lexicons: list[str] | None = None, threshold: float = 0.5) -> dict:
    rows = read_jsonl_rows(path, required=("text", "lang"))
    for n, r in enumerate(rows, start=1):
        try:
            get_language(r["lang"])
        except InputError as e:
            raise InputError(e.message, file=str(path), line=n, field="lang", hint=e.hint) from None
    det = RefusalDetector(folders=lexicons, classifier=classifier)
    # A language without a lexicon would be judged by the English cues alone, which misses
    # most refusals: without a classifier its rows get no verdict (is_refusal: null).
    no_lexicon = sorted({r["lang"] for r in rows if r["lang"] != "en" and not det.lexicons(r["lang"])})
    if no_lexicon:
        counts = {lang: sum(r["lang"] == lang for r in rows) for lang in no_lexicon}
        what = ", ".join(f"{lang} ({n} row{'s' if n != 1 else ''})" for lang, n in counts.items())
        if classifier:
            print(f"warning: no refusal lexicon for {what}: judged by the classifier and English cues only",
                  file=sys.stderr)
        else:
            print(f"warning: no refusal lexicon for {what}: is_refusal is null for those rows "
                  f"(lexicons exist for {', '.join(det.languages())}; add <lang>.yaml with --lexicon DIR, "
                  "or pass --classifier)", file=sys.stderr)
    unjudged = set() if classifier else set(no_lexicon)
    verdicts = det.is_refusal([r["text"] for r in rows], [r["lang"] for r in rows], threshold=threshold)
    sink = sys.stdout if str(out) == "-" else open(out, "w", encoding="utf-8")
    try:
        for r, (flag, score) in zip(rows, verdicts):
            if r["lang"] in unjudged:
                flag, score = None, None
            sink.write(json.dumps({**r, "is_refusal": flag, "score": None if score is None else round(score, 4)},
                                  ensure_ascii=False) + "\n")
    finally:
        if sink is not sys.stdout:
            sink.close()
    judged = [f for r, (f, _) in zip(rows, verdicts) if r["lang"] not in unjudged]
    return {"rows": len(rows), "refusals": sum(judged), "unjudged": len(rows) - len(judged)}
