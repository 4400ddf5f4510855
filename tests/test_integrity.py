"""A release is exactly what its manifest says; damaged caches are recomputed; builds are
byte-identical. Tried as an outsider would: real processes, kill -9, flipped bytes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from refuseu.cli.main import cli

REL = "refuseu-seed-v0.1.0"


def cli_run(args, *, cwd, env=None, check=False, timeout=300):
    """The CLI in a separate process, as a user runs it."""
    full_env = {**os.environ, **(env or {})}
    res = subprocess.run([sys.executable, "-m", "refuseu.cli.main", *args], cwd=cwd, env=full_env,
                         capture_output=True, text=True, timeout=timeout)
    if check:
        assert res.returncode == 0, res.stdout + res.stderr
    return res


def tree(root: Path) -> dict[str, str]:
    """sha256 of every file under root (the release as an outsider sees it)."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def no_traceback(*texts: str) -> None:
    for t in texts:
        assert "Traceback" not in (t or ""), t


def flip(path: Path, offset: int, n: int) -> None:
    data = bytearray(path.read_bytes())
    offset = min(offset, max(0, len(data) - n))
    for i in range(offset, min(len(data), offset + n)):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


# --- the seed release, built once -------------------------------------------------------

@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The English seed release: its build folder, release folder and file hashes."""
    root = tmp_path_factory.mktemp("ref")
    cli_run(["build", "--langs", "en", "--build-dir", "b", "--out", "r", "-q"], cwd=root, check=True)
    return root, tree(root / "r" / REL)


def _copy(reference, tmp_path) -> tuple[Path, Path]:
    root, _ = reference
    shutil.copytree(root / "b", tmp_path / "b")
    shutil.copytree(root / "r", tmp_path / "r")
    return tmp_path / "b", tmp_path / "r" / REL


def _other_parquet(path: Path) -> None:
    pl.DataFrame({"prompt": ["something else"]}).write_parquet(path)


RELEASE_DAMAGE = {
    # kind: (damage, problem named, repairable)
    "deleted_file": (lambda r: (r / "data/lang_en/test-00000-of-00001.parquet").unlink(),
                     "missing: data/lang_en/test-00000-of-00001.parquet", True),
    "extra_file": (lambda r: (r / "data/lang_en/notes.txt").write_text("x"), "extra: data/lang_en/notes.txt", True),
    "replaced_file": (lambda r: _other_parquet(r / "data/lang_en/train-00000-of-00001.parquet"),
                      "changed: data/lang_en/train-00000-of-00001.parquet", True),
    "bit_flip": (lambda r: flip(r / "data/evaluation/eval-00000-of-00001.parquet", 200, 16),
                 "changed: data/evaluation/eval-00000-of-00001.parquet", True),
    "only_manifest": (lambda r: [shutil.rmtree(r / "data"), (r / "README.md").unlink(),
                                 (r / "rejects.parquet").unlink()], "missing: README.md", True),
    "truncated_manifest": (lambda r: (r / "manifest.json").write_bytes((r / "manifest.json").read_bytes()[:300]),
                           "manifest.json: unreadable", False),
    "empty_manifest_object": (lambda r: (r / "manifest.json").write_text("{}"), "manifest.json: incomplete", False),
    "manifest_edited": (lambda r: (r / "manifest.json").write_text(
        (r / "manifest.json").read_text().replace('"cc-by-nc-4.0"', '"mit"')), "manifest.json: edited", False),
    "fifo_among_data": (lambda r: os.mkfifo(r / "data/lang_en/train-00001-of-00002.parquet"),
                        "extra: data/lang_en/train-00001-of-00002.parquet", True),
}


@pytest.mark.parametrize("kind", sorted(RELEASE_DAMAGE))
def test_damaged_release_is_refused_everywhere_and_repaired(reference, tmp_path, kind):
    damage, problem, repairable = RELEASE_DAMAGE[kind]
    build_dir, rel = _copy(reference, tmp_path)
    damage(rel)
    runner = CliRunner()

    res = runner.invoke(cli, ["verify", str(rel)], catch_exceptions=False)
    assert res.exit_code == 1 and problem in res.output, res.output
    res = runner.invoke(cli, ["verify", str(rel), "--json"], catch_exceptions=False)
    assert res.exit_code == 1 and json.loads(res.stdout)["valid"] is False

    for args in (["push", str(rel), "--repo", "me/data", "--dry-run"], ["inspect", str(rel)],
                 ["diff", str(reference[0] / "r" / REL), str(rel)]):
        res = runner.invoke(cli, args, catch_exceptions=False)
        assert res.exit_code == 1, (args, res.output)
        assert "damaged" in res.output and "plan:" not in res.output, (args, res.output)

    build = ["build", "--langs", "en", "--build-dir", str(build_dir), "--out", str(rel.parent), "-q"]
    res = cli_run(build, cwd=tmp_path)
    no_traceback(res.stdout, res.stderr)
    assert res.returncode == 1 and "damaged" in res.stderr and "--repair" in res.stderr, res.stderr
    assert "up to date" not in res.stdout + res.stderr and "other content" not in res.stderr

    res = cli_run(build + ["--repair"], cwd=tmp_path)
    no_traceback(res.stdout, res.stderr)
    if repairable:
        assert res.returncode == 0, res.stderr
        assert tree(rel) == reference[1]
        assert runner.invoke(cli, ["verify", str(rel)]).exit_code == 0
    else:
        assert res.returncode == 1 and "cannot be repaired" in res.stderr, res.stderr
        shutil.rmtree(rel)
        cli_run(build, cwd=tmp_path, check=True)
        assert tree(rel) == reference[1]


def test_verify_valid_release_and_push_plan_hashes_are_the_files(reference):
    root, hashes = reference
    rel = root / "r" / REL
    res = CliRunner().invoke(cli, ["verify", str(rel)], catch_exceptions=False)
    assert res.exit_code == 0 and "valid" in res.output
    res = CliRunner().invoke(cli, ["push", str(rel), "--repo", "me/data", "--dry-run", "--json"],
                             catch_exceptions=False)
    plan = json.loads(res.output)
    assert {f["path"]: f["sha256"] for f in plan["files"]} == hashes


# --- stage cache and item cache damage ----------------------------------------------------

@pytest.fixture(scope="module")
def reference12(tmp_path_factory):
    """The default 12-language release and its stage cache."""
    root = tmp_path_factory.mktemp("ref12")
    cli_run(["build", "--build-dir", "b", "--out", "r", "-q"], cwd=root, check=True)
    return root, tree(root / "r" / REL)


def _entry(build: Path, stage: str) -> Path:
    (entry,) = (build / "stages").glob(f"*-{stage}/*/")
    return entry


def _rewrite_meta(entry: Path, change) -> None:
    """Edit a meta.json and give it a matching checksum: damage its checksum cannot see."""
    from refuseu.pipeline.cache import _meta_checksum

    meta = json.loads((entry / "meta.json").read_text())
    change(meta)
    meta["check"] = _meta_checksum(meta)
    (entry / "meta.json").write_text(json.dumps(meta))


def _largest_kept(build: Path) -> Path:
    return max((build / "stages").glob("*/*/kept-*.arrow"), key=lambda p: p.stat().st_size)


CACHE_DAMAGE = {
    "kept_flip_64_bytes": lambda b: flip(_largest_kept(b), 400, 64),
    "kept_flip_lid_response": lambda b: flip(_entry(b, "lid_response") / "kept-00000.arrow", 100, 64),
    "kept_truncated": lambda b: _largest_kept(b).write_bytes(_largest_kept(b).read_bytes()[:500]),
    "kept_zero_length": lambda b: _entry(b, "respond").joinpath("kept-00000.arrow").write_bytes(b""),
    "kept_deleted": lambda b: _entry(b, "translate").joinpath("kept-00000.arrow").unlink(),
    "meta_garbage": lambda b: _entry(b, "lid_prompt").joinpath("meta.json").write_bytes(os.urandom(300)),
    "meta_empty_object": lambda b: _entry(b, "dedup").joinpath("meta.json").write_text("{}"),
    "meta_number_changed": lambda b: _entry(b, "split").joinpath("meta.json").write_text(
        _entry(b, "split").joinpath("meta.json").read_text().replace('"rows": ', '"rows": 1', 1)),
    "meta_deleted": lambda b: _entry(b, "qe").joinpath("meta.json").unlink(),
    "rejected_garbled": lambda b: flip(_entry(b, "lid_response") / "rejected.arrow", 100, 32),
    "referenced_entry_flipped": lambda b: flip(_entry(b, "translate") / "kept-00000.arrow", 300, 8),
    "meta_incomplete_valid_checksum": lambda b: _rewrite_meta(_entry(b, "split"), lambda m: m.pop("funnel")),
    "entry_is_a_file": lambda b: [shutil.rmtree(_entry(b, "normalize")),
                                  (b / "stages" / "01-normalize" / "x").write_text("")],
    "items_sqlite_garbage": lambda b: (b / "items.sqlite").write_bytes(os.urandom(4096)),
}


@pytest.mark.parametrize("kind", sorted(CACHE_DAMAGE))
def test_damaged_stage_cache_is_recomputed(reference12, tmp_path, kind):
    root, hashes = reference12
    shutil.copytree(root / "b", tmp_path / "b")
    CACHE_DAMAGE[kind](tmp_path / "b")
    res = cli_run(["build", "--build-dir", "b", "--out", "r", "-q"], cwd=tmp_path)
    no_traceback(res.stdout, res.stderr)
    assert res.returncode == 0, res.stderr
    assert tree(tmp_path / "r" / REL) == hashes
    if kind.startswith("items_"):
        # The offline default uses no model stage: the item cache is never opened.
        assert "item cache" not in res.stderr
    elif kind not in ("meta_deleted", "kept_deleted", "entry_is_a_file"):
        assert "damaged" in res.stderr and "recomputing" in res.stderr, res.stderr
    if kind == "referenced_entry_flipped":  # the entry that holds the column is named, once
        assert res.stderr.count("damaged") == 1 and "stage translate damaged" in res.stderr, res.stderr
    # The rebuilt cache is whole again: a second rebuild is served from it without warnings.
    shutil.rmtree(tmp_path / "r")
    res = cli_run(["build", "--build-dir", "b", "--out", "r", "--json"], cwd=tmp_path, check=True)
    assert json.loads(res.stdout)["stages_run"] == [] and "damaged" not in res.stderr
    assert tree(tmp_path / "r" / REL) == hashes


ITEM_DAMAGE = {
    "garbage": lambda p: p.write_bytes(os.urandom(8192)),
    "truncated": lambda p: p.write_bytes(p.read_bytes()[:1500]),
    "directory": lambda p: (p.unlink(), p.mkdir(), (p / "x").write_text("x")),
}


@pytest.fixture(scope="module")
def mt_reference(tiny_models, tmp_path_factory):
    """An en+de build through a tiny Marian model: it fills the item cache."""
    root = tmp_path_factory.mktemp("mtref")
    rows = [{"text": f"Tell me how to get past the lock of building number {i}.", "category": "non_violent_crimes"}
            for i in range(12)]
    (root / "src.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["build", "--source", "src.jsonl", "--langs", "en,de", "--translator", "hf", "--translator-model",
            str(tiny_models["marian"]), "--qe", "none", "--build-dir", "b", "--out", "r", "-q"]
    cli_run(args, cwd=root, check=True)
    (release,) = (root / "r").iterdir()
    return root, args, release.name, tree(release)


def _checkpoint_wal(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


@pytest.mark.parametrize("kind", sorted(ITEM_DAMAGE) + ["item_value_flipped"])
def test_damaged_item_cache_is_set_aside_or_item_recomputed(mt_reference, tmp_path, kind):
    root, args, name, hashes = mt_reference
    shutil.copytree(root / "b", tmp_path / "b")
    shutil.copy(root / "src.jsonl", tmp_path / "src.jsonl")
    db = tmp_path / "b" / "items.sqlite"
    _checkpoint_wal(db)
    for side in ("items.sqlite-wal", "items.sqlite-shm"):
        (tmp_path / "b" / side).unlink(missing_ok=True)
    shutil.rmtree(tmp_path / "b" / "stages")  # translate must read the item cache again
    if kind == "item_value_flipped":
        conn = sqlite3.connect(db)
        with conn:
            conn.execute("UPDATE items2 SET output = output || 'x'")  # checksums left as they were
        conn.close()
    else:
        ITEM_DAMAGE[kind](db)
    res = cli_run(args, cwd=tmp_path)
    no_traceback(res.stdout, res.stderr)
    assert res.returncode == 0, res.stderr
    assert tree(tmp_path / "r" / name) == hashes
    if kind == "item_value_flipped":
        assert "damaged item(s) will be recomputed" in res.stderr, res.stderr
    else:
        assert "moved aside" in res.stderr, res.stderr
        assert list((tmp_path / "b").glob("items.sqlite.corrupt-*"))


def test_english_build_never_opens_the_item_cache(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "items.sqlite").mkdir()  # unusable, but nothing needs it
    res = cli_run(["build", "--langs", "en", "--build-dir", "b", "--out", "r", "-q"], cwd=tmp_path)
    assert res.returncode == 0 and "item cache" not in res.stderr, res.stderr


# --- determinism ----------------------------------------------------------------------------

@pytest.mark.slow
def test_default_recipe_is_byte_identical_across_builds_and_working_directories(reference12, tmp_path):
    _, hashes = reference12
    for i in range(2):  # with the fixture's build: three clean builds
        cli_run(["build", "--build-dir", f"b{i}", "--out", f"r{i}", "-q"], cwd=tmp_path, check=True)
        assert tree(tmp_path / f"r{i}" / REL) == hashes
    work = tmp_path / "elsewhere" / "deeper"
    work.mkdir(parents=True)
    recipe = os.path.relpath(Path(__file__).resolve().parents[1] / "recipes" / "default.yaml", work)
    cli_run(["build", "--recipe", recipe, "--build-dir", "../b", "--out", "../../rel"], cwd=work, check=True)
    assert tree(tmp_path / "rel" / REL) == hashes


def test_relative_and_absolute_source_paths_give_the_same_bytes(tmp_path):
    rows = [{"text": f"How could someone get into locked office number {i} at night?", "category": "non_violent_crimes"}
            for i in range(40)]
    (tmp_path / "data").mkdir()
    src = tmp_path / "data" / "prompts.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cli_run(["build", "--langs", "en", "--source", str(src), "--build-dir", "b1", "--out", "r1", "-q"],
            cwd=tmp_path, check=True)
    cli_run(["build", "--langs", "en", "--source", "prompts.jsonl", "--build-dir", "../b2", "--out", "../r2",
             "-q"], cwd=tmp_path / "data", check=True)
    (a,), (b,) = (tmp_path / "r1").iterdir(), (tmp_path / "r2").iterdir()
    assert tree(a) == tree(b)
    # Nothing published names a local folder.
    for p in a.rglob("*"):
        if p.is_file():
            assert str(tmp_path).encode() not in p.read_bytes(), p
    released = pl.read_parquet(a / "data/lang_en/train-00000-of-00001.parquet")
    assert set(released["source"]) == {"prompts.jsonl"}
    manifest = json.loads((a / "manifest.json").read_text())
    assert "build_dir" not in manifest["recipe"] and "out" not in manifest["recipe"]["release"]
    assert manifest["sources"][0]["label"] == "prompts.jsonl" and len(manifest["sources"][0]["sha256"]) == 64


def test_lid_scores_do_not_depend_on_worker_processes():
    from refuseu.config import LidConfig
    from refuseu.engines.lid.fasttext_lid import FastTextLid
    from refuseu.stages.base import StageContext
    from refuseu.stages.lid import LidStage

    texts = ["Wie komme ich nachts in das alte Lagerhaus", "Comment entrer dans le vieil entrepôt la nuit",
             "Jak se v noci dostanu do starého skladu", "Kā es varu naktī iekļūt vecajā noliktavā"]
    langs = ["de", "fr", "cs", "lv"]
    n = 24_000
    df = pl.DataFrame({"prompt_id": [str(i) for i in range(n)], "lang": [langs[i % 4] for i in range(n)],
                       "prompt": [f"{texts[i % 4]} {i}" for i in range(n)]})
    out = []
    for workers in (1, 2):
        stage = LidStage(LidConfig(engine="fasttext"), languages=["en", *langs], fields=("prompt",),
                         name="lid_prompt", identifier=FastTextLid("lite", workers=workers))
        res = stage.run(df, StageContext(languages=["en", *langs]))
        out.append((res.kept, res.rejected))
    assert out[0][0].equals(out[1][0]) and out[0][1].equals(out[1][1])
    assert out[0][0]["lid_score"].round(4).equals(out[0][0]["lid_score"])


# --- one build per build folder ---------------------------------------------------------------

def _big_source(path: Path, n: int) -> None:
    with path.open("w") as f:
        for i in range(n):
            f.write(json.dumps({"text": f"request {i} about entering building {i % 977} at night unseen {i % 13}",
                                "category": "non_violent_crimes"}) + "\n")


def test_second_concurrent_build_waits_then_names_the_holder(tmp_path):
    _big_source(tmp_path / "src.jsonl", 2_000)
    args = ["build", "--langs", "en", "--source", "src.jsonl", "--build-dir", "b", "--out", "r", "-q"]
    # The first build is held at a stage boundary while the second one tries the folder.
    env = {**os.environ, "REFUSEU_PAUSE_AT": "stage:dedup:start=15"}
    first = subprocess.Popen([sys.executable, "-m", "refuseu.cli.main", *args], cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    owner = tmp_path / "b" / ".lock.owner"
    deadline = time.time() + 60
    while time.time() < deadline and not (owner.exists() and str(first.pid) in owner.read_text()):
        time.sleep(0.01)
    second = cli_run(args + ["--lock-timeout", "0.5"], cwd=tmp_path)
    no_traceback(second.stdout, second.stderr)
    assert second.returncode == 1 and "another build is using the build folder" in second.stderr
    assert f"pid {first.pid}" in second.stderr and "--build-dir" in second.stderr
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())
    # A third one waits for the folder, then finds the release the first one made up to date.
    third = cli_run(args + ["--lock-timeout", "120", "--json"], cwd=tmp_path, check=True)
    first_out, first_err = first.communicate(timeout=300)
    assert first.returncode == 0, first_err
    assert json.loads(third.stdout)["status"] == "up_to_date"


# --- chaos: kill -9 anywhere, rerun, same bytes ----------------------------------------------------

def _points(trace: Path) -> list[tuple[str, float]]:
    out = []
    for line in trace.read_text().splitlines():
        point, t = line.split()
        out.append((point, float(t)))
    return out


def _leftovers(root: Path) -> list[str]:
    found = [p.name for p in (root / "r").glob(".*")] if (root / "r").exists() else []
    partial = root / "b" / "stages" / ".partial"
    found += [p.name for p in partial.iterdir()] if partial.exists() else []
    found += ["staging"] if (root / "b" / "staging").exists() else []
    return found


@pytest.mark.slow
def test_chaos_kill_9_anywhere_then_rerun_gives_the_same_bytes(tmp_path):
    src = tmp_path / "src.jsonl"
    _big_source(src, 20_000)
    args = ["build", "--langs", "en", "--source", str(src), "--build-dir", "b", "--out", "r", "-q"]
    ref = tmp_path / "ref"
    ref.mkdir()
    cli_run(args, cwd=ref, env={"REFUSEU_KILL_TRACE": str(ref / "trace")}, check=True)
    (release,) = (ref / "r").iterdir()
    expected = tree(release)
    points = _points(ref / "trace")
    names = [p for p, _ in points]
    # Every stage boundary, every cache write step, every release write step.
    chosen = [p for p in names if p.startswith(("stage:", "cache:", "release:"))]
    assert any(p.startswith("stage:dedup:start") for p in chosen)
    assert any(p.startswith("cache:respond:kept.arrow") for p in chosen)
    assert any(p.startswith("release:manifest") for p in chosen) and any(p.startswith("release:rename")
                                                                           for p in chosen)
    # Mid-stage: an outside SIGKILL half-way through the longest stages (timed from the trace).
    spans = [(points[i][0].split(":")[1], points[i + 1][1] - points[i][1]) for i in range(len(points) - 1)
             if points[i][0].endswith(":start@1") and points[i + 1][0].startswith("stage:")]
    mid = sorted(spans, key=lambda s: -s[1])[:3]
    killed = 0
    for n, point in enumerate(chosen + [f"mid:{s}:{d / 2:.4f}" for s, d in mid]):
        work = tmp_path / f"k{n}"
        work.mkdir()
        if point.startswith("mid:"):
            _, stage, delay = point.split(":")
            trace = work / "trace"
            proc = subprocess.Popen([sys.executable, "-m", "refuseu.cli.main", *args], cwd=work,
                                    env={**os.environ, "REFUSEU_KILL_TRACE": str(trace)},
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.time() + 120
            while time.time() < deadline and proc.poll() is None:
                if trace.exists() and f"stage:{stage}:start" in trace.read_text():
                    time.sleep(float(delay))
                    proc.send_signal(signal.SIGKILL)
                    break
                time.sleep(0.002)
            proc.wait()
            if proc.returncode == -signal.SIGKILL:
                killed += 1
        else:
            res = cli_run(args, cwd=work, env={"REFUSEU_KILL_AT": point})
            assert res.returncode == -signal.SIGKILL, (point, res.stderr)
            killed += 1
        res = cli_run(args, cwd=work)
        no_traceback(res.stdout, res.stderr)
        assert res.returncode == 0, (point, res.stderr)
        assert tree(work / "r" / release.name) == expected, point
        assert _leftovers(work) == [], (point, _leftovers(work))
        shutil.rmtree(work)
    assert killed >= len(chosen)


def test_hub_snapshot_may_hold_gitattributes_but_a_local_release_may_not(reference, tmp_path):
    from refuseu.release.verify import verify_release

    _, rel = _copy(reference, tmp_path)
    (rel / ".gitattributes").write_text("*.parquet filter=lfs diff=lfs merge=lfs -text\n")
    assert verify_release(rel, hub_snapshot=True).ok
    local = verify_release(rel)
    assert not local.ok and local.extra == [".gitattributes"]


def test_source_changed_during_the_build_is_not_cached_under_the_old_content(tmp_path):
    rows = [json.loads(x) for x in (Path(__file__).resolve().parents[1] / "refuseu/data/seed/prompts.jsonl")
            .read_text().splitlines()[:120]]
    a = "".join(json.dumps(r) + "\n" for r in rows[:60])
    b = "".join(json.dumps(r) + "\n" for r in rows[60:])
    (tmp_path / "src.jsonl").write_text(a)
    args = ["build", "--langs", "en", "--source", "src.jsonl", "--out", "r", "--build-dir", "b", "-q"]
    proc = subprocess.Popen([sys.executable, "-m", "refuseu.cli.main", *args], cwd=tmp_path,
                            env={**os.environ, "REFUSEU_PAUSE_AT": "stage:sources:start=4",
                                 "REFUSEU_KILL_TRACE": str(tmp_path / "trace")},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not ((tmp_path / "trace").exists()
                                          and "stage:sources:start" in (tmp_path / "trace").read_text()):
        time.sleep(0.01)
    (tmp_path / "src.jsonl").write_text(b)  # the file changes after the signature was taken
    out, err = proc.communicate(timeout=120)
    no_traceback(out, err)
    assert proc.returncode == 1 and "changed while the build was reading it" in err, err
    (tmp_path / "src.jsonl").write_text(a)
    cli_run(args, cwd=tmp_path, check=True)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "src.jsonl").write_text(a)
    cli_run(args, cwd=fresh, check=True)
    (rel,) = (tmp_path / "r").iterdir()
    assert tree(rel) == tree(fresh / "r" / rel.name)


def test_model_path_spelling_changes_nothing_and_is_never_published(mt_reference, tiny_models, tmp_path):
    root, args, name, hashes = mt_reference
    model = Path(tiny_models["marian"])
    shutil.copy(root / "src.jsonl", tmp_path / "src.jsonl")
    relative = [a if a != str(model) else model.name for a in args]
    relative = [str(tmp_path / a) if a in ("src.jsonl", "b", "r") else a for a in relative]
    cli_run(relative, cwd=model.parent, check=True)
    assert tree(tmp_path / "r" / name) == hashes
    for p in (tmp_path / "r" / name).rglob("*"):
        if p.is_file():
            assert str(model.parent).encode() not in p.read_bytes(), p


def test_user_files_in_build_dir_staging_are_left_alone(tmp_path):
    (tmp_path / "staging").mkdir()
    (tmp_path / "staging" / "my-notes.txt").write_text("mine")
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / ".hidden-notes").write_text("mine too")
    cli_run(["build", "--langs", "en", "--build-dir", ".", "--out", "r", "-q"], cwd=tmp_path, check=True)
    assert (tmp_path / "staging" / "my-notes.txt").read_text() == "mine"
    assert (tmp_path / "r" / ".hidden-notes").exists()


def test_unwritable_stage_cache_is_a_warning_not_a_failed_build(reference, tmp_path):
    (tmp_path / "b" / "stages").mkdir(parents=True)
    (tmp_path / "b" / "stages" / ".partial").write_text("not a folder")
    res = cli_run(["build", "--langs", "en", "--build-dir", "b", "--out", "r", "-q"], cwd=tmp_path)
    no_traceback(res.stdout, res.stderr)
    assert res.returncode == 0 and "could not write the cache entry for stage" in res.stderr, res.stderr
    assert tree(tmp_path / "r" / REL) == reference[1]


def test_repair_writes_the_manifest_that_was_there(tmp_path):
    args = ["build", "--langs", "en", "--build-dir", "b", "--out", "r", "-q"]
    cli_run(args + ["--version", "0.2.0"], cwd=tmp_path, check=True)
    rel = tmp_path / "r" / "refuseu-seed-v0.2.0"
    original = tree(rel)
    cli_run(args + ["--version", "0.1.0"], cwd=tmp_path, check=True)  # an older version appears in --out
    flip(rel / "rejects.parquet", 100, 8)
    cli_run(args + ["--version", "0.2.0", "--repair"], cwd=tmp_path, check=True)
    assert tree(rel) == original


def test_full_disk_leaves_the_item_cache_alone(tmp_path, monkeypatch):
    from refuseu.engines.cache import ItemCache
    from refuseu.errors import BuildError

    cache = ItemCache(tmp_path / "items.sqlite")
    cache.put_many("E", "en", "de", [("h1", "Hallo")])
    before = (tmp_path / "items.sqlite").read_bytes()

    class Full:
        def execute(self, *a, **k):
            err = sqlite3.OperationalError("database or disk is full")
            err.sqlite_errorname = "SQLITE_FULL"
            raise err

    monkeypatch.setattr(cache, "_conn", lambda: Full())
    with pytest.raises(BuildError, match="cannot be used: database or disk is full"):
        cache.get_many("E", "en", "de", ["h1"])
    assert (tmp_path / "items.sqlite").read_bytes() == before
    assert not list(tmp_path.glob("items.sqlite.corrupt-*"))


def test_an_item_moved_to_another_language_pair_is_not_served(tmp_path, capsys):
    from refuseu.engines.cache import ItemCache

    cache = ItemCache(tmp_path / "items.sqlite")
    cache.put_many("E", "en", "lv", [("h1", "Sveiki")])
    conn = sqlite3.connect(tmp_path / "items.sqlite")
    with conn:
        conn.execute("UPDATE items2 SET tgt = 'lt'")
    conn.close()
    fresh = ItemCache(tmp_path / "items.sqlite")
    assert fresh.get_many("E", "en", "lt", ["h1"]) == {}
    assert "damaged item(s) will be recomputed" in capsys.readouterr().err


def test_home_folder_in_out_and_build_dir_is_expanded(monkeypatch, tmp_path):
    from refuseu.config import load_recipe

    monkeypatch.setenv("HOME", str(tmp_path))
    recipe = load_recipe(None, overrides={"build_dir": "~/b", "release": {"out": "~/r"}})
    assert recipe.build_dir == str(tmp_path / "b") and recipe.release.out == str(tmp_path / "r")
