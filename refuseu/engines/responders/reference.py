"""Reference helpful answers to benign prompts, per language.

``refuseu/data/helpful/<lang>.jsonl`` holds one line per benign seed prompt:
``{"source": <English prompt text>, "answer": <helpful answer in the language>}``. A benign
row whose English text has an answer becomes a pair without any model: chosen = the
reference answer (origin ``reference``), rejected = an over-refusal template. A folder of
your own in the same layout (``respond.reference_answers``) serves your benign prompts.
"""

from __future__ import annotations

import json
from pathlib import Path

from refuseu.errors import InputError
from refuseu.resources import data_dir
from refuseu.sources.formats import check_utf8
from refuseu.text import normalize_text


class ReferenceAnswers:
    def __init__(self, folder: str | Path | None = "builtin"):
        self.enabled = folder not in ("none", "", None)
        self.folder = data_dir() / "helpful" if folder in ("builtin",) else (Path(folder) if self.enabled else None)
        if self.enabled and not self.folder.is_dir():
            raise InputError("reference answer folder not found", file=str(self.folder),
                             field="respond.reference_answers",
                             hint="use 'builtin', 'none', or a folder of <lang>.jsonl files")
        self._cache: dict[str, dict[str, str]] = {}

    def version(self, languages: list[str]) -> str | None:
        from refuseu.signatures import files_version
        return files_version(self.folder, languages, ".jsonl") if self.enabled else None

    def answers(self, lang: str) -> dict[str, str]:
        """English prompt text (normalized) -> answer in ``lang``; empty when there is no file."""
        if not self.enabled:
            return {}
        if lang not in self._cache:
            path = self.folder / f"{lang}.jsonl"
            out: dict[str, str] = {}
            if path.exists():
                data = path.read_bytes()
                check_utf8(data, str(path), 1)
                for n, line in enumerate(data.decode("utf-8").splitlines(), start=1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except ValueError as e:
                        raise InputError(f"not valid JSON ({e.msg})", file=str(path), line=n) from None
                    if not isinstance(row, dict):
                        raise InputError("each line must be a JSON object", file=str(path), line=n)
                    for field in ("source", "answer"):
                        if not isinstance(row.get(field), str) or not row[field].strip():
                            raise InputError(f"'{field}' must be a non-empty string", file=str(path), line=n,
                                             field=field, hint='lines look like {"source": "...", "answer": "..."}')
                    key = normalize_text(row["source"])
                    if key in out:
                        raise InputError("a second answer for the same prompt", file=str(path), line=n,
                                         field="source", hint="keep one answer per prompt")
                    out[key] = normalize_text(row["answer"])
            self._cache[lang] = out
        return self._cache[lang]
