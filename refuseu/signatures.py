"""Stable short hashes of settings (stage signatures, item-cache keys, build signatures).

A low module: stages, engines and the runner all key caches with it.
"""

from __future__ import annotations

import hashlib
import json


def signature_of(obj) -> str:
    """A short stable hash of JSON-able data (sorted keys)."""
    blob = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


def files_version(folder, languages: list[str], suffix: str) -> str:
    """Hash of ``<folder>/<lang><suffix>`` for the languages that have one (name and bytes)."""
    from pathlib import Path
    h = hashlib.sha256()
    for lang in sorted(languages):
        p = Path(folder) / f"{lang}{suffix}"
        if p.exists():
            h.update(lang.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]
