"""manifest.json: what a release is and where every row came from."""

from __future__ import annotations

import hashlib
import json
import platform
import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from refuseu.config import NAME_PATTERN, SEMVER

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


_NAME = re.compile(NAME_PATTERN)


def _count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _map(v, value=lambda x: True) -> bool:
    return isinstance(v, dict) and all(isinstance(k, str) and value(x) for k, x in v.items())


def _funnel_entry(v) -> bool:
    return (isinstance(v, dict) and all(_count(v.get(k)) for k in ("in", "kept", "rejected"))
            and _map(v.get("reasons", {}), _count))


#: What each manifest value must be: (check, what it is, for the message). Keys not given
#: in an older manifest are not checked here (``REQUIRED_KEYS`` in verify are).
MANIFEST_TYPES = {
    "name": (lambda v: isinstance(v, str) and bool(_NAME.match(v)), "a release name (letters, digits, _ . -)"),
    "version": (lambda v: isinstance(v, str) and bool(SEMVER.match(v)), "a version X.Y.Z"),
    "build_signature": (lambda v: isinstance(v, str), "a string"),
    "format": (lambda v: isinstance(v, str), "a string"),
    "previous": (lambda v: v is None or (_map(v) and isinstance(v.get("version"), str)),
                 "null or a mapping with a version"),
    "languages": (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "a list of language codes"),
    "refuseu": (lambda v: isinstance(v, str), "a string"),
    "packages": (lambda v: _map(v, lambda x: isinstance(x, str)), "a mapping of package names to versions"),
    "recipe": (_map, "a mapping"),
    "sources": (lambda v: isinstance(v, list) and all(isinstance(x, dict) for x in v), "a list of mappings"),
    "stage_signatures": (lambda v: _map(v, lambda x: isinstance(x, str)), "a mapping of stage names to signatures"),
    "funnel": (lambda v: _map(v, lambda per: _map(per, _funnel_entry)),
               "a mapping (stage -> language -> in, kept, rejected, reasons)"),
    "stage_stats": (lambda v: _map(v, lambda x: isinstance(x, dict)), "a mapping (stage -> mapping)"),
    "counts": (lambda v: _map(v, _count), "a mapping (config/split -> row count)"),
    "rejected_rows": (_count, "a row count"),
    "content_sha256": (lambda v: isinstance(v, str), "a string"),
}


def manifest_type_problem(manifest: dict) -> str | None:
    """The first value of ``manifest`` that is not of the type a release's manifest holds
    (``"field 'counts' is not a mapping (config/split -> row count)"``), or None. A manifest
    re-sealed by hand can carry a valid checksum over values no command can read."""
    for key, (check, what) in MANIFEST_TYPES.items():
        if key in manifest and not check(manifest[key]):
            return f"field '{key}' is not {what}"
    return None
