"""The streaming build: a build in small chunks gives the bytes of a build in one chunk."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from refuseu.build import build
from refuseu.config import load_recipe


def _tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _source(path: Path, n: int) -> Path:
    """English prompts with exact and near duplicates, over several categories and styles."""
    cats = ["violent_crimes", "non_violent_crimes", "privacy", "hate", "elections"]
    styles = ["slang", "role_play", "hypotheticals", "word_play"]
    rows = []
    for i in range(n):
        base = f"how would someone get around the rules of the old warehouse number {i % 97} at night"
        if i % 11 == 3:
            text = rows[i - 1]["text"] if rows else base  # an exact duplicate of the previous row
        elif i % 13 == 5:
            text = base.replace("old", "disused")  # a near-duplicate
        else:
            text = f"{base} and what people usually say about case {i}"
        rows.append({"text": text, "kind": "benign" if i % 7 == 0 else "harmful",
                     "category": cats[i % len(cats)], "attack_style": styles[i % len(styles)]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _recipe(tmp: Path, source: Path, chunk_rows: int, langs=("en",), name="s"):
    return load_recipe(None, overrides={
        "name": "stream", "languages": list(langs), "sources": [{"spec": str(source)}],
        "build_dir": str(tmp / f"build-{name}"), "release": {"out": str(tmp / f"out-{name}"), "shard_rows": 40},
        "split": {"test_size": 0.2}, "executor": {"chunk_rows": chunk_rows}})


@pytest.mark.parametrize("chunk_rows", [1, 17, 64])
def test_build_in_chunks_gives_the_bytes_of_a_build_in_one_chunk(tmp_path, chunk_rows):
    src = _source(tmp_path / "src.jsonl", 300)
    whole = build(_recipe(tmp_path, src, 1_000_000, name="whole"))
    chunked = build(_recipe(tmp_path, src, chunk_rows, name="chunked"))
    assert whole.counts == chunked.counts and whole.rejected == chunked.rejected and whole.rejected > 0
    assert len([k for k in whole.counts if k.startswith("lang_")]) == 2
    assert _tree(Path(whole.release_dir)) == _tree(Path(chunked.release_dir))
    # The stage cache holds one file per chunk: the chunked build really streamed.
    stages = tmp_path / "build-chunked" / "stages"
    assert len(list(stages.glob("01-normalize/*/kept-*.arrow"))) == -(-300 // chunk_rows)


def test_seed_in_two_languages_in_chunks_equals_one_chunk(tmp_path):
    recipe = load_recipe(None, overrides={"languages": ["en", "de"], "build_dir": str(tmp_path / "a"),
                                          "release": {"out": str(tmp_path / "ra")}})
    whole = build(recipe)
    chunked = build(recipe.model_copy(update={
        "build_dir": str(tmp_path / "b"), "release": recipe.release.model_copy(update={"out": str(tmp_path / "rb")}),
        "executor": recipe.executor.model_copy(update={"chunk_rows": 23})}))
    assert _tree(Path(whole.release_dir)) == _tree(Path(chunked.release_dir))


def test_a_streamed_build_is_reused_from_its_cache(tmp_path):
    src = _source(tmp_path / "src.jsonl", 120)
    recipe = _recipe(tmp_path, src, 16)
    first = build(recipe)
    again = build(recipe)
    assert again.status == "up_to_date" and first.status == "built"
    # Removing the release rebuilds it from the stage cache alone, to the same bytes.
    expected = _tree(Path(first.release_dir))
    import shutil
    shutil.rmtree(first.release_dir)
    third = build(recipe)
    assert third.stages_run == [] and _tree(Path(third.release_dir)) == expected


def test_conversational_release_in_chunks_equals_one_chunk(tmp_path):
    src = _source(tmp_path / "src.jsonl", 150)

    def conv(recipe):
        return recipe.model_copy(update={"release": recipe.release.model_copy(update={"format": "conversational"})})

    whole = build(conv(_recipe(tmp_path, src, 1_000_000, name="whole")))
    chunked = build(conv(_recipe(tmp_path, src, 9, name="chunked")))
    assert _tree(Path(whole.release_dir)) == _tree(Path(chunked.release_dir))
    assert len(whole.counts) == 3 and sum(whole.counts.values()) > 150
