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
