"""Hugging Face Hub dataset sources: the revision a build reads is pinned to a commit.

``hf:owner/name[:config][@revision]`` names a branch, a tag or a commit. The build resolves
it to the commit id once (from the Hub, or offline from the local Hugging Face cache), keys
its cache and manifest by that commit and reads exactly that commit, so a moving branch can
never serve rows that the signature does not describe.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from refuseu.errors import BuildError, InputError

COMMIT = re.compile(r"^[0-9a-f]{40}$")


def _offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"))


_resolved: dict[tuple[str, str], str] = {}


def resolve_commit(name: str, revision: str | None, *, spec: str) -> str:
    """The commit id of ``revision`` (default ``main``) of the dataset repo ``name``; resolved
    once per process, so the rows read are those of the commit in the signature."""
    rev = revision or "main"
    if COMMIT.match(rev):
        return rev
    if (name, rev) not in _resolved:
        _resolved[(name, rev)] = _resolve(name, rev, spec=spec)
        _remember(name, rev, _resolved[(name, rev)])
    return _resolved[(name, rev)]


def _ref(name: str, rev: str) -> Path:
    """Where the Hugging Face cache records which commit a branch or tag points to."""
    from huggingface_hub.constants import HF_HUB_CACHE

    return Path(HF_HUB_CACHE) / f"datasets--{name.replace('/', '--')}" / "refs" / rev


def _remember(name: str, rev: str, sha: str) -> None:
    """Record branch/tag -> commit in the Hugging Face cache (as huggingface_hub does), so an
    offline rebuild resolves the same name to the same commit."""
    ref = _ref(name, rev)
    try:
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(sha, encoding="utf-8")
    except OSError:
        pass


def _resolve(name: str, rev: str, *, spec: str) -> str:
    if not _offline():
        from huggingface_hub import HfApi
        from huggingface_hub.utils import RepositoryNotFoundError, RevisionNotFoundError

        try:
            return HfApi().dataset_info(name, revision=rev).sha
        except RevisionNotFoundError:
            raise InputError(f"dataset {name} has no revision '{rev}'", file=spec, field="source",
                             hint="give a branch, tag or commit that exists: hf:owner/name@<revision>") from None
        except RepositoryNotFoundError:
            raise InputError(f"no dataset repo '{name}' on the Hub (or it is private and HF_TOKEN is not set)",
                             file=spec, field="source", hint="check the name, or set HF_TOKEN") from None
        except Exception as e:  # network and server errors
            cached = _cached_commit(name, rev)
            if cached:
                return cached
            raise BuildError(f"could not reach the Hub to resolve {spec} ({type(e).__name__})",
                             hint="check the network, or pin the commit (hf:owner/name@<40-hex commit>) of a "
                                  "dataset already in the local cache") from None
    cached = _cached_commit(name, rev)
    if cached:
        return cached
    raise BuildError(f"{spec}: offline, and revision '{rev}' of {name} is not in the local Hugging Face cache",
                     hint="run once with network access (unset HF_HUB_OFFLINE / HF_DATASETS_OFFLINE), or pin "
                          "a cached commit: hf:owner/name@<commit>")


def _cached_commit(name: str, rev: str) -> str | None:
    try:
        sha = _ref(name, rev).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return sha if COMMIT.match(sha) else None
