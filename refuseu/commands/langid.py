"""``langid_file``: language ID over a curator's own JSONL file (``refuseu langid``)."""

from __future__ import annotations

import json
from pathlib import Path

from refuseu.commands import check_output_file, check_row_lang, output_sink
from refuseu.config import LidConfig
from refuseu.errors import InputError
from refuseu.languages import parse_langs


def read_jsonl_rows(path: str | Path, *, required: tuple[str, ...] = ("text",)) -> list[dict]:
    rows = []
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError("file not found", file=str(p)) from None
    except UnicodeDecodeError as e:
        raise InputError(f"not valid UTF-8 ({e.reason})", file=str(p)) from None
    except OSError as e:   # a folder, no permission
        raise InputError(f"cannot read it: {e.strerror or e}", file=str(p)) from None
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"invalid JSON: {e.msg}", file=str(p), line=n) from None
        except RecursionError:
            raise InputError("invalid JSON: lists or objects nested too deeply to read", file=str(p),
                             line=n) from None
        except ValueError as e:  # an integer of more digits than Python converts
            why = "a number too large to read" if "digits" in str(e) else " ".join(str(e).split())[:120]
            raise InputError(f"invalid JSON: {why}", file=str(p), line=n) from None
        if not isinstance(obj, dict):
            raise InputError("each line must be a JSON object", file=str(p), line=n)
        for field in required:
            if not isinstance(obj.get(field), str):
                raise InputError(f"missing or non-string '{field}'", file=str(p), line=n, field=field)
        rows.append(obj)
    return rows


def langid_file(path: str | Path, out: str | Path, *, engine: str = "combined", langs: str = "all",
                threshold: float | None = None) -> dict:
    from pydantic import ValidationError

    from refuseu.engines.lid import make_identifier

    check_output_file(out)
    try:
        config = LidConfig(engine=engine) if threshold is None else LidConfig(engine=engine, threshold=threshold)
    except ValidationError as e:
        first = e.errors()[0]
        flag = "--threshold" if first["loc"] == ("threshold",) else f"--{first['loc'][0]}"
        raise InputError(f"{flag} {first.get('input')!r}: {first['msg']}") from None
    languages = parse_langs(langs, flag="--langs")
    rows = read_jsonl_rows(path)
    for n, r in enumerate(rows, start=1):
        if r.get("lang") not in (None, ""):   # a row without a language is identified, not checked
            check_row_lang(r["lang"], file=path, line=n)
    given = sorted({r["lang"] for r in rows if r.get("lang")})
    for lang in given:
        if lang not in languages:
            languages.append(lang)
    ident = make_identifier(config, languages)
    preds = ident.predict([r["text"] for r in rows], [r.get("lang") or None for r in rows])
    checked = ok = 0
    with output_sink(out) as sink:
        for r, p in zip(rows, preds):
            r = {**r, "lid_lang": p.lang, "lid_score": round(p.score, 4)}
            if r.get("lang"):
                r["ok"] = p.lang == r["lang"] and p.score >= config.threshold_for(r["lang"])
                checked += 1
                ok += r["ok"]
            sink.write(json.dumps(r, ensure_ascii=False) + "\n")
    return {"rows": len(rows), "checked": checked, "ok": ok}
