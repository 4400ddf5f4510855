import json
import os
from pathlib import Path

import pytest

# No test may reach the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def make_recipe(tmp_path):
    """Recipe with build and release folders under tmp_path; keyword overrides on top."""
    from refuseu.config import load_recipe

    def _make(**overrides):
        base = {"languages": ["en"], "build_dir": str(tmp_path / "build"),
                "release": {"out": str(tmp_path / "releases")}}
        for k, v in overrides.items():
            if isinstance(v, dict) and isinstance(base.get(k), dict):
                base[k] = {**base[k], **v}
            else:
                base[k] = v
        return load_recipe(None, overrides=base)

    return _make


@pytest.fixture
def write_jsonl(tmp_path):
    def _write(rows, name="prompts.jsonl"):
        p = tmp_path / name
        with p.open("w", encoding="utf-8") as f:
            for r in rows:
                f.write((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n")
        return p

    return _write


@pytest.fixture(scope="session")
def seed_release(tmp_path_factory):
    """The default English release built once from the seed (shared by read-only tests)."""
    from refuseu.build import build
    from refuseu.config import load_recipe

    root = tmp_path_factory.mktemp("seed")
    recipe = load_recipe(None, overrides={"languages": ["en"], "build_dir": str(root / "build"),
                                          "release": {"out": str(root / "releases")}})
    summary = build(recipe)
    return Path(summary.release_dir), summary


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """Tiny random-weight NLLB, M2M100 and Marian models built locally, once per session."""
    from refuseu.devtools.tiny_models import build_m2m100, build_marian, build_nllb

    root = tmp_path_factory.mktemp("mt")
    return {"nllb": build_nllb(root / "nllb"), "m2m100": build_m2m100(root / "m2m"),
            "marian": build_marian(root / "marian")}
