"""refuseu push against a local Hub-compatible server on 127.0.0.1."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hubserver import HubServer
from refuseu.errors import BuildError
from refuseu.release.push import push_release

TOKEN = "hf_testTOKEN0123456789abcdefSECRET"


@pytest.fixture
def hub(monkeypatch):
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    import huggingface_hub.constants as c
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(c, "HF_HUB_DISABLE_XET", True, raising=False)
    from huggingface_hub.utils import reset_sessions

    # A session made while offline (by an earlier test in this process) keeps refusing requests.
    reset_sessions()
    with HubServer() as srv:
        # the client parses the URLs the Hub returns against its configured endpoint
        monkeypatch.setattr(c, "ENDPOINT", srv.url)
        yield srv
    reset_sessions()


def test_push_one_commit_tag_gating_and_bytes(seed_release, hub):
    root, summary = seed_release
    plan = push_release(root, "alice/refusals", endpoint=hub.url, token=TOKEN)
    assert plan.status == "published" and plan.tag == "v0.1.0"
    repo = hub.state.repos["alice/refusals"]
    assert len(repo["commits"]) == 1
    commit = repo["commits"][0]
    assert summary.signature in commit["message"] and "v0.1.0" in commit["message"]
    assert repo["tags"] == {"v0.1.0": commit["oid"]}
    assert repo["gated"] == "auto"
    local = {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    assert commit["files"] == local  # every file byte-identical
    assert all(a == f"Bearer {TOKEN}" for a in hub.state.auth if a)


def test_second_push_is_noop_and_other_content_is_refused(seed_release, hub, make_recipe):
    from refuseu.build import build

    root, _ = seed_release
    push_release(root, "alice/r", endpoint=hub.url, token=TOKEN)
    again = push_release(root, "alice/r", endpoint=hub.url, token=TOKEN)
    assert again.status == "already_published"
    assert len(hub.state.repos["alice/r"]["commits"]) == 1
    other = build(make_recipe(seed=777))  # same version, other split
    with pytest.raises(BuildError) as e:
        push_release(other.release_dir, "alice/r", endpoint=hub.url, token=TOKEN)
    assert "already has tag v0.1.0 with other content" in e.value.message and "bump" in e.value.hint
    assert len(hub.state.repos["alice/r"]["commits"]) == 1


def test_retries_429_then_succeeds(seed_release, hub, monkeypatch):
    import refuseu.release.push as push

    monkeypatch.setattr(push.time, "sleep", lambda s: None)
    hub.state.fail["commit"] = [429, 429]
    plan = push_release(seed_release[0], "bob/r", endpoint=hub.url, token=TOKEN)
    assert plan.status == "published"
    commits = [c for c in hub.state.calls if "/commit/" in c[1]]
    assert len(commits) == 3 and len(hub.state.repos["bob/r"]["commits"]) == 1


def test_dry_run_sends_nothing(seed_release, hub):
    plan = push_release(seed_release[0], "carol/r", dry_run=True, endpoint=hub.url, token=TOKEN)
    assert plan.status == "planned" and hub.state.calls == []
    paths = {f["path"] for f in plan.files}
    assert "manifest.json" in paths and "data/lang_en/train-00000-of-00001.parquet" in paths
    f = next(f for f in plan.files if f["path"] == "README.md")
    assert f["sha256"] == hashlib.sha256((seed_release[0] / "README.md").read_bytes()).hexdigest()


def test_cli_push_token_never_printed(seed_release, hub, tmp_path):
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_TOKEN": TOKEN, "HF_HUB_DISABLE_XET": "1"}
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        env.pop(var, None)
    for args in (["--dry-run"], [], []):
        out = subprocess.run([sys.executable, "-m", "refuseu.cli.main", "push", str(seed_release[0]), "--repo",
                              "dave/r", "--gated", "manual", *args], capture_output=True, text=True, env=env)
        assert out.returncode == 0, out.stderr
        assert TOKEN not in out.stdout and TOKEN not in out.stderr
    assert "already published" in out.stdout
    assert hub.state.repos["dave/r"]["gated"] == "manual"
    for p in Path(seed_release[0]).rglob("*"):
        if p.is_file():
            assert TOKEN.encode() not in p.read_bytes()
