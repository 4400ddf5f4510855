"""Resolving models by Hub id or local path, offline, with errors that name the fix."""

from __future__ import annotations

import hashlib
from pathlib import Path

from refuseu.errors import ModelUnavailableError


def resolve_model_dir(model: str, *, revision: str | None = None, stage: str, flag: str) -> tuple[Path, str]:
    """A local folder for ``model`` and its revision, without any download.

    ``model`` is a local folder or a Hub id found in the local Hugging Face cache.
    """
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists() and not (path / "model.bin").exists():
            raise ModelUnavailableError(f"model folder '{model}' (stage {stage}) has no config.json",
                                        hint="give a folder saved with save_pretrained() or a Hub id")
        return path, "local-" + local_revision(path)
    if model.startswith((".", "/", "~")) or model.count("/") > 1:
        raise ModelUnavailableError(f"model '{model}' (stage {stage}) not found",
                                    hint=f"give an existing local folder or a Hub id with {flag}")
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(model, revision=revision, local_files_only=True))
    except Exception:
        raise ModelUnavailableError(
            f"model '{model}' (stage {stage}) is not available locally",
            hint=f"run `refuseu models pull` to download it into the Hugging Face cache, or give a local "
                 f"folder with {flag}") from None
    return folder, folder.name


def local_revision(path: Path) -> str:
    """A cheap fingerprint of a local model folder: config files' bytes, weights' names and sizes."""
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if not p.is_file():
            continue
        rel = p.relative_to(path).as_posix()
        h.update(rel.encode())
        if p.suffix in (".json", ".txt", ".model", ".spm", ".yaml"):
            h.update(p.read_bytes())
        else:
            h.update(str(p.stat().st_size).encode())
    return h.hexdigest()[:16]
