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
    verdicts = det.is_refusal([r["text"] for r in rows], [r["lang"] for r in rows], threshold=threshold)
    sink = sys.stdout if str(out) == "-" else open(out, "w", encoding="utf-8")
    try:
        for r, (flag, score) in zip(rows, verdicts):
            sink.write(json.dumps({**r, "is_refusal": flag, "score": round(score, 4)}, ensure_ascii=False) + "\n")
    finally:
        if sink is not sys.stdout:
            sink.close()
    return {"rows": len(rows), "refusals": sum(f for f, _ in verdicts)}
