"""A small Hub-compatible HTTP server (the endpoints huggingface_hub uses to create a repo, set
gating, upload through preupload + LFS batch + commit, tag, read refs and file metadata, and
the ones `datasets.load_dataset` uses to list and download a dataset repo's files at a
revision). In memory; failures can be scripted per endpoint."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class HubState:
    def __init__(self):
        self.repos: dict[str, dict] = {}
        self.lfs: dict[str, bytes] = {}
        self.fail: dict[str, list[int]] = {}   # endpoint name -> status codes to answer first
        self.calls: list[tuple[str, str]] = []
        self.auth: list[str] = []
        self.lock = threading.Lock()

    def repo(self, rid: str) -> dict:
        return self.repos[rid]

    def resolve(self, rid: str, rev: str) -> str | None:
        """The commit oid of a branch ("main"), tag or commit id; None when unknown."""
        r = self.repos.get(rid)
        if r is None:
            return None
        oid = r["tags"].get(rev) or (r["commits"][-1]["oid"] if rev == "main" and r["commits"] else rev)
        return oid if any(c["oid"] == oid for c in r["commits"]) else None

    def files_at(self, rid: str, rev: str) -> dict[str, bytes]:
        oid = self.resolve(rid, rev)
        for c in self.repos[rid]["commits"] if oid else []:
            if c["oid"] == oid:
                return c["files"]
        return {}

    def add_commit(self, rid: str, files: dict[str, bytes], *, tag: str | None = None) -> str:
        """A commit of ``files`` (the whole tree) on main, created with the repo when missing."""
        r = self.repos.setdefault(rid, {"private": False, "gated": False, "commits": [], "tags": {}})
        oid = hashlib.sha1(json.dumps({k: hashlib.sha256(b).hexdigest() for k, b in sorted(files.items())}).encode()
                           + str(len(r["commits"])).encode()).hexdigest()
        r["commits"].append({"oid": oid, "message": "add files", "files": dict(files)})
        if tag:
            r["tags"][tag] = oid
        return oid


def _blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _is_lfs(path: str) -> bool:
    return path.endswith((".parquet", ".arrow"))


def make_handler(state: HubState, base: str):
    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def _send(self, code: int, obj=None, headers=None):
            body = b"" if obj is None else json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def _body(self) -> bytes:
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n else b""

        def _scripted(self, name: str) -> bool:
            with state.lock:
                state.calls.append((self.command, self.path))
                state.auth.append(self.headers.get("Authorization", ""))
                codes = state.fail.get(name)
                if codes:
                    code = codes.pop(0)
                    self._send(code, {"error": "scripted failure"})
                    return True
            return False

        def do_POST(self):  # noqa: N802
            path = self.path.split("?")[0]
            body = self._body()
            if path == "/api/repos/create":
                if self._scripted("create"):
                    return
                d = json.loads(body)
                rid = f"{d['organization']}/{d['name']}" if d.get("organization") else d["name"]
                if rid in state.repos:
                    return self._send(409, {"error": "You already created this dataset repo",
                                            "url": f"{base}/datasets/{rid}"})
                state.repos[rid] = {"private": d.get("private", False), "gated": False, "commits": [], "tags": {}}
                return self._send(200, {"url": f"{base}/datasets/{rid}", "name": rid})
            m = re.match(r"^/api/datasets/([^/]+/[^/]+)/paths-info/([^/]+)$", path)
            if m:
                from urllib.parse import parse_qs

                rid, rev = m.group(1), m.group(2)
                fields = parse_qs(body.decode())
                wanted = fields.get("paths", []) or json.loads(body or b"{}").get("paths", [])
                entries = {e["path"]: e for e in self._entries(rid, rev, "", True)}
                return self._send(200, [entries[p] for p in wanted if p in entries])
            if path == "/api/validate-yaml":
                return self._send(200, {"errors": [], "warnings": []})
            m = re.match(r"^/api/datasets/(.+?)/preupload/(.+)$", path)
            if m:
                if self._scripted("preupload"):
                    return
                files = json.loads(body)["files"]
                return self._send(200, {"files": [{"path": f["path"], "shouldIgnore": False,
                                                   "uploadMode": "lfs" if f["path"].endswith(".parquet") else "regular"}
                                                  for f in files]})
            m = re.match(r"^/datasets/(.+?)\.git/info/lfs/objects/batch$", path)
            if m:
                if self._scripted("lfs"):
                    return
                objs = json.loads(body)["objects"]
                out = []
                for o in objs:
                    item = {"oid": o["oid"], "size": o["size"], "authenticated": True}
                    if o["oid"] not in state.lfs:
                        item["actions"] = {"upload": {"href": f"{base}/lfs-upload/{o['oid']}"}}
                    out.append(item)
                return self._send(200, {"transfer": "basic", "objects": out, "hash_algo": "sha256"},
                                  headers={"Content-Type": "application/vnd.git-lfs+json"})
            m = re.match(r"^/api/datasets/(.+?)/commit/(.+)$", path)
            if m:
                if self._scripted("commit"):
                    return
                rid = m.group(1)
                r = state.repos[rid]
                files = dict(r["commits"][-1]["files"]) if r["commits"] else {}
                header = {}
                for line in body.decode().splitlines():
                    if not line.strip():
                        continue
                    item = json.loads(line)
                    v = item["value"]
                    if item["key"] == "header":
                        header = v
                    elif item["key"] == "file":
                        files[v["path"]] = base64.b64decode(v["content"])
                    elif item["key"] == "lfsFile":
                        files[v["path"]] = state.lfs[v["oid"]]
                    elif item["key"] == "deletedFile":
                        files.pop(v["path"], None)
                oid = hashlib.sha1(json.dumps({k: hashlib.sha256(b).hexdigest() for k, b in sorted(files.items())}
                                              ).encode() + str(len(r["commits"])).encode()).hexdigest()
                r["commits"].append({"oid": oid, "message": header.get("summary"), "files": files})
                return self._send(200, {"commitUrl": f"{base}/datasets/{rid}/commit/{oid}", "commitOid": oid,
                                        "pullRequestUrl": None})
            m = re.match(r"^/api/datasets/(.+?)/tag/(.+)$", path)
            if m:
                if self._scripted("tag"):
                    return
                r = state.repos[m.group(1)]
                tag = json.loads(body)["tag"]
                if tag in r["tags"]:
                    return self._send(409, {"error": "tag exists"})
                rev = m.group(2)
                r["tags"][tag] = r["commits"][-1]["oid"] if rev == "main" else rev
                return self._send(200, {})
            return self._send(404, {"error": f"no route {path}"})

        def do_PUT(self):  # noqa: N802
            path = self.path.split("?")[0]
            body = self._body()
            m = re.match(r"^/lfs-upload/([0-9a-f]{64})$", path)
            if m:
                if hashlib.sha256(body).hexdigest() != m.group(1):
                    return self._send(400, {"error": "sha256 mismatch"})
                state.lfs[m.group(1)] = body
                return self._send(200, {})
            m = re.match(r"^/api/datasets/(.+?)/settings$", path)
            if m:
                if self._scripted("settings"):
                    return
                d = json.loads(body)
                state.repos[m.group(1)].update({k: v for k, v in d.items() if k in ("gated", "private")})
                return self._send(200, {})
            return self._send(404, {"error": f"no route {path}"})

        def _file(self, head: bool) -> bool:
            """GET/HEAD /datasets/<repo>/resolve/<rev>/<path>: a file at a revision."""
            from urllib.parse import unquote

            path = unquote(self.path.split("?")[0])
            m = re.match(r"^/datasets/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path)
            if not m:
                return False
            rid, rev, rel = m.group(1), m.group(2), m.group(3)
            oid = state.resolve(rid, rev)
            data = state.files_at(rid, rev).get(rel) if oid else None
            if data is None:
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound" if oid else "RevisionNotFound")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return True
            self.send_response(200)
            self.send_header("X-Repo-Commit", oid)
            if _is_lfs(rel):
                self.send_header("X-Linked-Etag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("X-Linked-Size", str(len(data)))
            self.send_header("ETag", f'"{_blob_sha1(data)}"')
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if not head:
                self.wfile.write(data)
            return True

        def _entries(self, rid: str, rev: str, prefix: str, recursive: bool) -> list[dict]:
            files = state.files_at(rid, rev)
            prefix = prefix.strip("/")
            out, dirs = [], set()
            for p, data in sorted(files.items()):
                if prefix and not p.startswith(prefix + "/"):
                    continue
                rest = p[len(prefix) + 1:] if prefix else p
                parts = rest.split("/")
                for i in range(1, len(parts)):
                    d = "/".join(([prefix] if prefix else []) + parts[:i])
                    if (recursive or i == 1) and d not in dirs:
                        dirs.add(d)
                        out.append({"type": "directory", "path": d, "oid": "0" * 40, "size": 0})
                if not recursive and len(parts) > 1:
                    continue
                e = {"type": "file", "path": p, "size": len(data),
                     "oid": _blob_sha1(data)}
                if _is_lfs(p):
                    e["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 130}
                out.append(e)
            return out

        def do_HEAD(self):  # noqa: N802
            if not self._file(head=True):
                self._send(404, {"error": "no route"})

        def do_GET(self):  # noqa: N802
            if self._file(head=False):
                return
            from urllib.parse import parse_qs, unquote, urlsplit

            parts = urlsplit(self.path)
            path, query = unquote(parts.path), parse_qs(parts.query)
            m = re.match(r"^/api/datasets/([^/]+/[^/]+)/tree/([^/]+)/?(.*)$", path)
            if m:
                rid, rev = m.group(1), m.group(2)
                if state.resolve(rid, rev) is None:
                    return self._send(404, {"error": "revision not found"}, headers={"X-Error-Code": "RevisionNotFound"})
                recursive = query.get("recursive", ["false"])[0].lower() == "true"
                return self._send(200, self._entries(rid, rev, m.group(3), recursive))
            m = re.match(r"^/api/datasets/(.+?)/refs$", path)
            if m:
                if self._scripted("refs"):
                    return
                r = state.repos[m.group(1)]
                head = r["commits"][-1]["oid"] if r["commits"] else None
                return self._send(200, {"branches": [{"name": "main", "ref": "refs/heads/main",
                                                      "targetCommit": head}] if head else [],
                                        "converts": [], "tags": [{"name": t, "ref": f"refs/tags/{t}", "targetCommit": o}
                                                                 for t, o in r["tags"].items()]})
            m = re.match(r"^/api/datasets/(.+?)/revision/(.+)$", path)
            if m:
                rid, rev = m.group(1), m.group(2)
                files = state.files_at(rid, rev)
                sib = []
                for p, data in sorted(files.items()):
                    s = {"rfilename": p, "size": len(data),
                         "blobId": hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()}
                    if p.endswith(".parquet"):
                        s["lfs"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 130}
                    sib.append(s)
                if rid not in state.repos or state.resolve(rid, rev) is None:
                    return self._send(404, {"error": "not found"}, headers={"X-Error-Code": "RepoNotFound"
                                                                           if rid not in state.repos
                                                                           else "RevisionNotFound"})
                return self._send(200, {"id": rid, "sha": state.resolve(rid, rev), "siblings": sib,
                                        "private": state.repos[rid]["private"], "disabled": False,
                                        "gated": state.repos[rid]["gated"], "downloads": 0, "likes": 0, "tags": []})
            return self._send(404, {"error": f"no route {path}"})

    return H


class HubServer:
    def __init__(self):
        self.state = HubState()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), None)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.httpd.RequestHandlerClass = make_handler(self.state, self.url)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
