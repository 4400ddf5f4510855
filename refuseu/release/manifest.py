"""manifest.json: what a release is and where every row came from."""

from __future__ import annotations

import hashlib
import json
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

TRACKED_PACKAGES = ("refuseu", "polars", "pyarrow", "datasets", "huggingface-hub", "rensa", "numpy",
                    "matplotlib")  # matplotlib draws figures/*.png


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_hashes(root: Path) -> dict[str, dict]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != "manifest.json":
            rel = p.relative_to(root).as_posix()
            out[rel] = {"sha256": sha256_file(p), "bytes": p.stat().st_size}
    return out


def content_checksum(manifest: dict) -> str:
    """sha256 of the manifest's own content (every key but ``content_sha256``), so that an
    edited or damaged manifest is caught like any other file."""
    body = {k: v for k, v in manifest.items() if k != "content_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
                          .encode("utf-8")).hexdigest()


def write_manifest(root: Path, manifest: dict) -> None:
    manifest = {k: v for k, v in manifest.items() if k != "content_sha256"}
    manifest = {**manifest, "files": file_hashes(root)}
    manifest["content_sha256"] = content_checksum(manifest)
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False, sort_keys=False) + "\n",
                                        encoding="utf-8")


def read_manifest(root: Path) -> dict:
    return json.loads((Path(root) / "manifest.json").read_text(encoding="utf-8"))
