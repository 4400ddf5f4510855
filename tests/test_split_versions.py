"""The test split scales with the data and never leaks across versions."""

from __future__ import annotations

import json
import random
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from refuseu.build import build
from refuseu.cli.main import cli

REPO = Path(__file__).resolve().parents[1]
CATS = ("violent_crimes", "non_violent_crimes", "privacy", "hate", "elections", "defamation")
STYLES = ("slang", "role_play", "hypotheticals", "misspellings", "authority_manipulation")
WORDS = ("how could someone get into the old depot at night without the guards noticing and what should "
         "they know about the cameras the fences the dogs the neighbours the alarms the locks").split()


def _rows(n: int, seed: int, offset: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [{"text": " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 30))) + f" case {offset + i}",
             "category": rng.choice(CATS), "attack_style": rng.choice(STYLES)} for i in range(n)]


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _splits(release: Path) -> dict[str, str]:
    rows = pl.concat([pl.read_parquet(f, columns=["prompt_id", "split"]) for f in release.glob("data/*/*.parquet")])
    return dict(rows.unique().iter_rows())


def test_test_share_is_the_configured_share_at_scale(make_recipe, tmp_path):
    src = _write(tmp_path / "big.jsonl", _rows(20_000, seed=1))
    summary = build(make_recipe(sources=[str(src)]))
    train, test = summary.counts["lang_en/train"], summary.counts["lang_en/test"]
    share = test / (train + test)
    assert abs(share - 0.25) <= 0.02, share
    rows = pl.read_parquet(Path(summary.release_dir) / "data/lang_en/test-00000-of-00001.parquet")
    # Every category and every attack style is in test.
    assert set(rows["category"]) == set(CATS) and set(rows["attack_style"]) == set(STYLES)


def _cli(*args) -> None:
    res = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res


def test_bump_keeps_every_test_prompt_of_the_previous_version(tmp_path):
    v1_rows = _rows(600, seed=2)
    src = _write(tmp_path / "prompts.jsonl", v1_rows)
    (tmp_path / "mine.yaml").write_text("name: mine\n")
    common = ["--langs", "en", "--source", str(src), "--build-dir", str(tmp_path / "b"), "--out", str(tmp_path / "r"),
              "--recipe", str(tmp_path / "mine.yaml")]
    _cli("build", *common)
    v1 = _splits(tmp_path / "r" / "mine-v0.1.0")
    # 500 new prompts, and a near-duplicate (one word added) of a v1 test prompt.
    test_text = next(r["text"] for r in v1_rows
                     if _splits_of_text(tmp_path / "r" / "mine-v0.1.0", r["text"]) == "test" and len(r["text"].split()) > 25)
    near = {"text": test_text + " please", "category": "hate", "attack_style": "slang"}
    _write(src, v1_rows + _rows(500, seed=3, offset=10_000) + [near])
    _cli("build", *common, "--bump", "minor")
    v2 = _splits(tmp_path / "r" / "mine-v0.2.0")
    assert all(v2[p] == s for p, s in v1.items()), "a v1 prompt changed sides"
    new = {p: s for p, s in v2.items() if p not in v1}
    assert 480 < len(new) <= 501 and 0.15 < sum(s == "test" for s in new.values()) / len(new) < 0.35
    near_id = _id_of_text(tmp_path / "r" / "mine-v0.2.0", near["text"])
    assert v2[near_id] == "test"  # the near-duplicate of a test prompt joins it in test
    manifest = json.loads((tmp_path / "r" / "mine-v0.2.0" / "manifest.json").read_text())
    assert manifest["stage_stats"]["split"]["pinned_test"] > 0
    assert "/" not in json.dumps(manifest["recipe"]["split"]["keep_test_from"])  # a name, not a local path


def _splits_of_text(release: Path, text: str) -> str | None:
    rows = pl.read_parquet(release / "data/lang_en/test-00000-of-00001.parquet", columns=["prompt"])
    return "test" if text in set(rows["prompt"]) else "train"


def _id_of_text(release: Path, text: str) -> str:
    rows = pl.concat([pl.read_parquet(f, columns=["prompt_id", "prompt"]) for f in release.glob("data/lang_en/*.parquet")])
    return rows.filter(pl.col("prompt") == text)["prompt_id"][0]


def test_diff_warns_when_a_test_prompt_becomes_training_data(tmp_path):
    src = _write(tmp_path / "prompts.jsonl", _rows(300, seed=4))
    (tmp_path / "mine.yaml").write_text("name: mine\n")
    (tmp_path / "other.yaml").write_text("name: mine\nseed: 99\n")
    common = ["--langs", "en", "--source", str(src), "--build-dir", str(tmp_path / "b"), "--out", str(tmp_path / "r")]
    _cli("build", *common, "--recipe", str(tmp_path / "mine.yaml"))
    _cli("build", *common, "--recipe", str(tmp_path / "other.yaml"), "--version", "0.2.0")
    _cli("build", *common, "--recipe", str(tmp_path / "other.yaml"), "--bump", "patch")  # 0.2.1 keeps 0.2.0's split
    old, reshuffled, kept = (str(tmp_path / "r" / f"mine-v{v}") for v in ("0.1.0", "0.2.0", "0.2.1"))
    res = _cli("diff", old, reshuffled)
    assert "test prompt(s) of" in res.output and "are training data in" in res.output
    res = _cli("diff", old, reshuffled, "--json")
    assert json.loads(res.output)["test_to_train"]["count"] > 0
    res = _cli("diff", reshuffled, kept, "--json")
    assert json.loads(res.output)["test_to_train"]["count"] == 0


def test_keep_test_from_a_missing_release_is_an_input_error(tmp_path):
    res = CliRunner().invoke(cli, ["build", "--langs", "en", "--keep-test-from", str(tmp_path / "nope"),
                                   "--build-dir", str(tmp_path / "b"), "--out", str(tmp_path / "r")])
    assert res.exit_code == 2 and "nope: not found" in res.output, res.output
    (tmp_path / "empty").mkdir()
    res = CliRunner().invoke(cli, ["build", "--langs", "en", "--keep-test-from", str(tmp_path / "empty"),
                                   "--build-dir", str(tmp_path / "b"), "--out", str(tmp_path / "r")])
    assert res.exit_code == 2 and "empty: not a release folder" in res.output, res.output


def test_near_duplicates_of_pinned_test_prompts_go_to_test_when_the_prompts_left_the_source(tmp_path):
    v1_rows = _rows(400, seed=5)
    src = _write(tmp_path / "prompts.jsonl", v1_rows)
    (tmp_path / "mine.yaml").write_text("name: mine\n")
    common = ["--langs", "en", "--source", str(src), "--build-dir", str(tmp_path / "b"), "--out", str(tmp_path / "r"),
              "--recipe", str(tmp_path / "mine.yaml")]
    _cli("build", *common)
    v1 = tmp_path / "r" / "mine-v0.1.0"
    test_texts = [r["text"] for r in v1_rows if len(r["text"].split()) > 25 and _splits_of_text(v1, r["text"]) == "test"]
    assert len(test_texts) >= 8
    # v2's source: none of v1's prompts, but near-duplicates (one word added) of eight v1 test prompts.
    near = [{"text": t + " please", "category": "hate", "attack_style": "slang"} for t in test_texts[:8]]
    _write(src, _rows(300, seed=6, offset=20_000) + near)
    _cli("build", *common, "--bump", "minor")
    v2 = tmp_path / "r" / "mine-v0.2.0"
    splits = _splits(v2)
    assert all(splits[_id_of_text(v2, r["text"])] == "test" for r in near)
    manifest = json.loads((v2 / "manifest.json").read_text())
    assert manifest["stage_stats"]["split"]["near_pinned_test"] == 8
