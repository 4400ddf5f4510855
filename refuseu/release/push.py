"""``push``: publish a release folder to the Hugging Face Hub as one commit plus a tag.

The dataset repo is created when missing (gated ``auto`` by default: the data holds
harmful requests), the release goes up in ONE commit whose message carries the version and
the build signature, then ``v<version>`` is tagged on that commit. A tag that exists with
the same files is "already published"; with other files the push is refused. Transient
Hub errors (429, 5xx, connection errors) are retried with backoff. The token comes from
``HF_TOKEN`` or the library's login and is never printed or written.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

from refuseu.errors import BuildError, InputError
from refuseu.release.manifest import read_manifest
from refuseu.release.verify import require_valid

RETRY_STATUS = {429, 500, 502, 503, 504}


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class PushPlan:
    repo: str
    tag: str
    commit_message: str
    files: list[dict] = field(default_factory=list)   # path, bytes, sha256
    status: str = "planned"                            # planned | published | already_published
    commit: str | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def plan_push(release: str | Path, repo: str) -> PushPlan:
    """What a push would send; the release is verified by content first (exit 1 when damaged),
    so the hashes listed are those of the files that would be uploaded."""
    root = Path(release)
    if repo.count("/") != 1:
        raise InputError(f"bad repo id '{repo}'", field="--repo", hint="use OWNER/NAME")
    if not (root / "manifest.json").exists() and not (root.is_dir() and any(root.iterdir())):
        raise InputError("not a release folder (no manifest.json)", file=str(root),
                         hint="give a folder made by `refuseu build`")
    check = require_valid(root, action="push it")
    manifest = check.manifest
    files = [{"path": rel, "bytes": info["bytes"], "sha256": info["sha256"]} for rel, info in check.files.items()]
    m = root / "manifest.json"
    files.append({"path": "manifest.json", "bytes": m.stat().st_size,
                  "sha256": hashlib.sha256(m.read_bytes()).hexdigest()})
    msg = (f"{manifest['name']} v{manifest['version']} (refuseu build {manifest['build_signature']})")
    return PushPlan(repo=repo, tag=f"v{manifest['version']}", commit_message=msg,
                    files=sorted(files, key=lambda f: f["path"]))


def with_retries(fn, *, what: str, tries: int = 5, base: float = 1.0, sleep=time.sleep):
    """Call ``fn`` again after 429, 5xx and connection errors, with exponential backoff."""
    import requests
    from huggingface_hub.utils import HfHubHTTPError

    for attempt in range(tries):
        try:
            return fn()
        except HfHubHTTPError as e:
            code = getattr(e.response, "status_code", None)
            if code not in RETRY_STATUS or attempt == tries - 1:
                raise
        except (requests.ConnectionError, requests.Timeout):
            if attempt == tries - 1:
                raise
        wait = base * 2 ** attempt
        sleep(wait)
    raise AssertionError("unreachable")


def _remote_matches(api, plan: PushPlan, root: Path) -> bool:
    info = with_retries(lambda: api.dataset_info(plan.repo, revision=plan.tag, files_metadata=True),
                        what="read the published tag")
    remote = {s.rfilename: s for s in info.siblings or [] if s.rfilename != ".gitattributes"}
    if set(remote) != {f["path"] for f in plan.files}:
        return False
    for f in plan.files:
        s = remote[f["path"]]
        if s.lfs is not None:
            sha = s.lfs.get("sha256") if isinstance(s.lfs, dict) else getattr(s.lfs, "sha256", None)
            if sha != f["sha256"]:
                return False
        elif s.blob_id != git_blob_sha1((root / f["path"]).read_bytes()):
            return False
    return True


def push_release(release: str | Path, repo: str, *, private: bool = False, gated: str = "auto",
                 dry_run: bool = False, report=print, token: str | None = None,
                 endpoint: str | None = None) -> PushPlan:
    import requests
    from huggingface_hub import HfApi
    from huggingface_hub.errors import OfflineModeIsEnabled
    from huggingface_hub.utils import HfHubHTTPError

    root = Path(release)
    plan = plan_push(root, repo)
    if dry_run:
        return plan
    api = HfApi(token=token, endpoint=endpoint)
    try:
        with_retries(lambda: api.create_repo(repo, repo_type="dataset", private=private, exist_ok=True),
                     what="create the repo")
        refs = with_retries(lambda: api.list_repo_refs(repo, repo_type="dataset"), what="list tags")
        if any(t.name == plan.tag for t in refs.tags):
            if _remote_matches(api, plan, root):
                plan.status = "already_published"
                return plan
            raise BuildError(f"{repo} already has tag {plan.tag} with other content; a published version is never "
                             "overwritten", hint="bump the version (refuseu build --bump patch) and push again")
        if gated != "off":
            with_retries(lambda: api.update_repo_settings(repo, gated=gated, repo_type="dataset"),
                         what="set gating")
        info = with_retries(lambda: api.upload_folder(folder_path=str(root), repo_id=repo, repo_type="dataset",
                                                      commit_message=plan.commit_message),
                            what="upload the release")
        oid = getattr(info, "oid", None)
        with_retries(lambda: api.create_tag(repo, tag=plan.tag, revision=oid, repo_type="dataset",
                                            tag_message=plan.commit_message), what="create the tag")
    except OfflineModeIsEnabled:
        raise BuildError("pushing needs the network, but offline mode is on (HF_HUB_OFFLINE or "
                         "TRANSFORMERS_OFFLINE is set)", hint="unset HF_HUB_OFFLINE and TRANSFORMERS_OFFLINE") from None
    except (requests.ConnectionError, requests.Timeout) as e:
        raise BuildError(f"could not reach the Hub: {type(e).__name__}",
                         hint="check the network, or HF_ENDPOINT if you use a mirror") from None
    except HfHubHTTPError as e:
        code = getattr(e.response, "status_code", "?")
        raise BuildError(f"the Hub refused the push to {repo} (HTTP {code})",
                         hint="check the repo id and that your token (HF_TOKEN or `huggingface-cli login`) may "
                              "write to it") from None
    plan.status, plan.commit = "published", oid
    return plan
