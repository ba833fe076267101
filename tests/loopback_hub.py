"""A loopback Hugging Face Hub *test double* for offline tests.

`LoopbackHub` is a tiny HTTP server (stdlib only) that speaks the subset of the Hub HTTP API
that the real `huggingface_hub` client (2.x, with Xet disabled: `HF_HUB_DISABLE_XET=1`) and
`datasets` use to create repos, commit files (regular and git-LFS "basic" uploads), download
files at a branch or a commit sha, and list/inspect repos. Point the clients at it with
`HF_ENDPOINT=<hub.url>` set *before* they are imported (they read it at import time).

It is NOT a Hub implementation: no git, no auth, no permissions, no pull requests, no tags,
no Xet, no pagination, no gitattributes matching. Spaces are repos with an SDK, variables and
a requested hardware flavour (the `/api/spaces/{id}/variables`, `/hardware` and `/runtime`
routes the client's Space methods call); nothing is ever built or run. Every request is
accepted whatever its `Authorization` header (the last bearer token seen is kept in
`last_token` so a test can check that a token was sent). It binds 127.0.0.1 only.

Storage: file contents live on disk under `root/blobs/<sha256>`; repos, commits and branches
are kept in memory. Each commit snapshots the full file tree (path -> blob), so a download at an
old commit sha returns the old content while a branch name resolves to its newest commit.
Files of `lfs_threshold` bytes (10 MiB) or more, or whose first 512 bytes hold a NUL byte
(parquet, PNG, safetensors, pickles...), are told to go through git-LFS; the others are sent
inline in the commit. Unknown routes are logged to stderr, recorded in `unhandled` and answered
404 `{"error": ...}`; every request is recorded in `requests`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
DEFAULT_NAMESPACE = "tester"
SPACE_SDKS = ("gradio", "docker", "static")
INITIAL_GITATTRIBUTES = (
    b"*.bin filter=lfs diff=lfs merge=lfs -text\n"
    b"*.parquet filter=lfs diff=lfs merge=lfs -text\n"
    b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
    b"*.skops filter=lfs diff=lfs merge=lfs -text\n"
)
LFS_POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize {}\n"


def git_blob_oid(data: bytes) -> str:
    """The git object id of a blob (what the Hub reports as `oid`/ETag of a regular file)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class HubError(Exception):
    """An error answered as JSON `{"error": message}`, with the Hub's `X-Error-Code` header."""

    def __init__(self, status: int, message: str, code: str | None = None, commit: str = ""):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.headers = {"X-Repo-Commit": commit} if commit else {}  # lets the client cache misses


@dataclass(frozen=True)
class Entry:
    """One file of a commit's tree: its content is the blob `sha256`."""

    sha256: str
    size: int
    lfs: bool
    oid: str  # git blob oid: of the content (regular file) or of the LFS pointer (lfs file)

    @property
    def etag(self) -> str:
        return self.sha256 if self.lfs else self.oid

    def lfs_info(self) -> dict[str, Any]:
        pointer = LFS_POINTER.format(self.sha256, self.size).encode()
        return {
            "oid": self.sha256,
            "sha256": self.sha256,
            "size": self.size,
            "pointerSize": len(pointer),
        }


@dataclass
class Commit:
    sha: str
    parent: str | None
    files: dict[str, Entry]
    title: str
    message: str
    date: str


@dataclass
class Repo:
    type: str
    id: str
    private: bool
    created: str
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    sdk: str | None = None  # spaces only, as given at creation
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)  # spaces: key -> value...
    hardware: str | None = None  # spaces: the flavour last requested
    sleep_time: int | None = None

    def runtime(self) -> dict[str, Any]:
        """A Space's runtime as `GET /api/spaces/{id}/runtime` answers it (`SpaceRuntime`)."""
        head = self.commits[self.branches["main"]]
        has_app = any(p != ".gitattributes" for p in head.files)
        return {
            "stage": "BUILDING" if has_app else "NO_APP_FILE",  # nothing ever runs here
            "hardware": {"current": None, "requested": self.hardware},
            "gcTimeout": self.sleep_time,
            "storage": None,
            "devMode": False,
        }


class LoopbackHub:
    """Hub-compatible HTTP server on 127.0.0.1 (see module docstring). Use as a context manager
    or call `start()` / `stop()`; `url` is what HF_ENDPOINT must be set to."""

    def __init__(self, root: Path, port: int = 0, lfs_threshold: int = 10 * 1024 * 1024):
        self.root = Path(root)
        self.blob_dir = self.root / "blobs"
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self.lfs_threshold = lfs_threshold
        self.repos: dict[tuple[str, str], Repo] = {}
        self.last_token: str | None = None
        self.requests: list[str] = []  # "METHOD /path?query", in arrival order
        self.unhandled: list[str] = []  # requests no route matched (404) or that failed (500)
        self.lock = threading.RLock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self._server.daemon_threads = True
        self._server.hub = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LoopbackHub:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, args=(0.05,), name="loopback-hub", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> LoopbackHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- storage ---------------------------------------------------------------------------
    def put_blob(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        path = self.blob_dir / sha
        if not path.exists():
            tmp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        return sha

    def read_blob(self, sha256: str) -> bytes:
        return (self.blob_dir / sha256).read_bytes()

    def has_blob(self, sha256: str) -> bool:
        return len(sha256) == 64 and (self.blob_dir / sha256).is_file()

    def repo(self, repo_type: str, repo_id: str) -> Repo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None:
            raise HubError(404, f"Repository not found: {repo_type} {repo_id}", "RepoNotFound")
        return repo

    def resolve(self, repo: Repo, revision: str) -> Commit:
        sha = repo.branches.get(revision, revision)
        if sha not in repo.commits:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return repo.commits[sha]

    def repo_url(self, repo: Repo) -> str:
        return f"{self.url}/{URL_PREFIXES[repo.type]}{repo.id}"

    def files(
        self, repo_id: str, repo_type: str = "model", revision: str = "main"
    ) -> dict[str, bytes]:
        """Test helper: the contents of every file of a repo at a revision."""
        with self.lock:
            commit = self.resolve(self.repo(repo_type, repo_id), revision)
            return {p: self.read_blob(e.sha256) for p, e in commit.files.items()}

    # -- operations ------------------------------------------------------------------------
    def create_repo(
        self, repo_type: str, repo_id: str, private: bool = False, sdk: str | None = None
    ) -> Repo:
        with self.lock:
            if (repo_type, repo_id) in self.repos:
                raise HubError(409, f"You already created this {repo_type} repo")
            if repo_type == "space" and sdk not in SPACE_SDKS:
                raise HubError(400, f"A Space needs an sdk, one of {list(SPACE_SDKS)}: got {sdk!r}")
            repo = Repo(
                repo_type, repo_id, private, _now(), sdk=sdk if repo_type == "space" else None
            )
            self.repos[(repo_type, repo_id)] = repo
            self._add_commit(
                repo,
                "main",
                {".gitattributes": self._entry(INITIAL_GITATTRIBUTES)},
                "initial commit",
                "",
            )
            return repo

    def _entry(self, data: bytes) -> Entry:
        return Entry(self.put_blob(data), len(data), False, git_blob_oid(data))

    @staticmethod
    def _lfs_entry(sha256: str, size: int) -> Entry:
        return Entry(sha256, size, True, git_blob_oid(LFS_POINTER.format(sha256, size).encode()))

    def _add_commit(
        self, repo: Repo, branch: str, files: dict[str, Entry], title: str, message: str
    ) -> Commit:
        parent = repo.branches.get(branch)
        seed = json.dumps(
            [
                repo.id,
                parent,
                sorted((p, e.oid) for p, e in files.items()),
                title,
                time.time_ns(),
                uuid.uuid4().hex,
            ]
        )
        commit = Commit(
            hashlib.sha1(seed.encode()).hexdigest(), parent, files, title, message, _now()
        )
        repo.commits[commit.sha] = commit
        repo.branches[branch] = commit.sha
        return commit

    def commit(self, repo: Repo, branch: str, lines: list[dict[str, Any]]) -> Commit:
        """Apply NDJSON commit operations on top of the branch head (git-like: new snapshot)."""
        with self.lock:
            if branch not in repo.branches:
                raise HubError(404, f"Branch not found: {branch}", "RevisionNotFound")
            head = repo.commits[repo.branches[branch]]
            files = dict(head.files)
            header: dict[str, Any] = {}
            for line in lines:
                key, value = line.get("key"), line.get("value", {})
                path = str(value.get("path", "")).strip("/")
                if key == "header":
                    header = value
                    parent = value.get("parentCommit")
                    if parent and parent != head.sha:
                        raise HubError(412, f"parentCommit {parent} is not the head of {branch}")
                elif key == "file":
                    content = value["content"]
                    data = (
                        base64.b64decode(content)
                        if value.get("encoding") == "base64"
                        else content.encode()
                    )
                    files[path] = self._entry(data)
                elif key == "lfsFile":
                    oid = value["oid"]
                    if not self.has_blob(oid):
                        raise HubError(422, f"LFS object {oid} was not uploaded")
                    files[path] = self._lfs_entry(oid, (self.blob_dir / oid).stat().st_size)
                elif key == "deletedFile":
                    if files.pop(path, None) is None:
                        raise HubError(
                            404, f"A file with this name doesn't exist: {path}", "EntryNotFound"
                        )
                elif key == "deletedFolder":
                    doomed = [p for p in files if p.startswith(path + "/")]
                    if not doomed:
                        raise HubError(
                            404, f"A folder with this name doesn't exist: {path}", "EntryNotFound"
                        )
                    for p in doomed:
                        del files[p]
                else:
                    raise HubError(400, f"Unsupported commit operation: {key!r}")
            return self._add_commit(
                repo,
                branch,
                files,
                header.get("summary") or "commit",
                header.get("description") or "",
            )

    def last_commit_touching(self, repo: Repo, commit: Commit, path: str) -> Commit:
        def view(c: Commit) -> object:
            if path in c.files:
                return c.files[path]
            return sorted((p, e.oid) for p, e in c.files.items() if p.startswith(path + "/"))

        current = view(commit)
        while commit.parent is not None and view(repo.commits[commit.parent]) == current:
            commit = repo.commits[commit.parent]
        return commit

    def path_info(self, repo: Repo, commit: Commit, path: str, expand: bool) -> dict[str, Any]:
        if path in commit.files:
            entry = commit.files[path]
            info: dict[str, Any] = {
                "type": "file",
                "path": path,
                "size": entry.size,
                "oid": entry.oid,
            }
            if entry.lfs:
                info["lfs"] = entry.lfs_info()
        else:
            children = sorted(
                e.oid + p for p, e in commit.files.items() if p.startswith(path + "/")
            )
            info = {
                "type": "directory",
                "path": path,
                "size": 0,
                "oid": hashlib.sha1("".join(children).encode()).hexdigest(),
            }
        if expand:
            last = self.last_commit_touching(repo, commit, path)
            info["lastCommit"] = {"id": last.sha, "title": last.title, "date": last.date}
        return info

    def tree(
        self, repo: Repo, commit: Commit, path: str, recursive: bool, expand: bool
    ) -> list[dict[str, Any]]:
        prefix = path + "/" if path else ""
        if path and not any(p.startswith(prefix) for p in commit.files):
            raise HubError(404, f"Directory not found: {path}", "EntryNotFound", commit.sha)
        found: set[str] = set()
        for p in commit.files:
            if not p.startswith(prefix):
                continue
            parts = p[len(prefix) :].split("/")
            stop = len(parts) if recursive else 1
            found.update(prefix + "/".join(parts[: i + 1]) for i in range(stop))
        return [self.path_info(repo, commit, p, expand) for p in sorted(found)]

    def repo_info(self, repo: Repo, commit: Commit) -> dict[str, Any]:
        siblings = []
        for p, e in sorted(commit.files.items()):
            sibling: dict[str, Any] = {"rfilename": p, "size": e.size, "blobId": e.oid}
            if e.lfs:
                sibling["lfs"] = e.lfs_info()
            siblings.append(sibling)
        return {
            "_id": hashlib.sha1(repo.id.encode()).hexdigest()[:24],
            "id": repo.id,
            "author": repo.id.split("/")[0],
            "sha": commit.sha,
            "lastModified": commit.date,
            "createdAt": repo.created,
            "private": repo.private,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
            "usedStorage": sum(e.size for e in commit.files.values()),
            **({"modelId": repo.id} if repo.type == "model" else {}),
            **({"sdk": repo.sdk, "runtime": repo.runtime()} if repo.type == "space" else {}),
        }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LoopbackHub/1.0"

    @property
    def hub(self) -> LoopbackHub:
        return self.server.hub  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:  # silence the default access log
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # -- plumbing --------------------------------------------------------------------------
    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(
        self,
        status: int,
        body: bytes = b"",
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj: object, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers=headers)

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        self.query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        self.body = self._read_body() if method in ("POST", "PUT", "DELETE") else b""
        auth = self.headers.get("Authorization")
        with self.hub.lock:
            self.hub.requests.append(f"{method} {self.path}")
            if auth:
                self.hub.last_token = auth.removeprefix("Bearer ").strip()
        segments = [unquote(s) for s in url.path.strip("/").split("/")]
        try:
            if not self._route(method, segments):
                print(f"[loopback-hub] unhandled route: {method} {self.path}", file=sys.stderr)
                with self.hub.lock:
                    self.hub.unhandled.append(f"{method} {self.path}")
                self._json({"error": f"Unknown route: {method} {url.path}"}, 404)
        except HubError as e:
            ascii_message = e.message.encode("ascii", "replace").decode()
            headers = {"X-Error-Message": ascii_message, **e.headers}
            if e.code:
                headers["X-Error-Code"] = e.code
            self._json({"error": e.message}, e.status, headers)
        except Exception as e:  # a bug here or a request this double cannot parse: say so loudly
            traceback.print_exc()
            with self.hub.lock:
                self.hub.unhandled.append(f"{method} {self.path} -> {e!r}")
            self._json({"error": f"loopback hub failure: {e!r}"}, 500)

    def _route(self, method: str, seg: list[str]) -> bool:
        hub = self.hub
        if seg[0] == "api":
            return self._route_api(method, seg[1:])
        if seg[0] == "_loopback" and seg[1:2] == ["lfs"] and method == "PUT":
            if hashlib.sha256(self.body).hexdigest() != seg[2]:
                raise HubError(400, "sha256 of the uploaded content does not match the oid")
            hub.put_blob(self.body)
            self._send(200)
            return True
        repo_type = {"datasets": "dataset", "spaces": "space"}.get(seg[0], "model")
        if repo_type != "model":
            seg = seg[1:]
        if (
            len(seg) == 6
            and seg[1].endswith(".git")
            and seg[2:] == ["info", "lfs", "objects", "batch"]
        ):
            self._lfs_batch(hub.repo(repo_type, f"{seg[0]}/{seg[1][:-4]}"))
            return True
        if len(seg) >= 5 and seg[2] == "resolve" and method in ("GET", "HEAD"):
            self._resolve(repo_type, f"{seg[0]}/{seg[1]}", seg[3], "/".join(seg[4:]))
            return True
        return False

    def _route_api(self, method: str, seg: list[str]) -> bool:
        hub = self.hub
        if method == "POST" and seg == ["repos", "create"]:
            payload = json.loads(self.body or b"{}")
            repo_type = payload.get("type") or "model"
            repo_id = f"{payload.get('organization') or DEFAULT_NAMESPACE}/{payload['name']}"
            private = bool(payload.get("private")) or payload.get("visibility") == "private"
            try:
                repo = hub.create_repo(repo_type, repo_id, private, payload.get("sdk"))
            except HubError as e:
                if e.status != 409:
                    raise
                repo = hub.repo(repo_type, repo_id)
                self._json({"error": e.message, "url": hub.repo_url(repo)}, e.status)
                return True
            self._json({"url": hub.repo_url(repo), "name": repo.id, "id": repo.id})
            return True
        if method == "POST" and seg == ["validate-yaml"]:
            self._json({"errors": [], "warnings": []})
            return True
        if method == "GET" and seg == ["whoami-v2"]:
            self._json(
                {
                    "type": "user",
                    "name": DEFAULT_NAMESPACE,
                    "fullname": "Loopback Tester",
                    "orgs": [],
                    "auth": {"type": "access_token", "accessToken": {"role": "write"}},
                }
            )
            return True
        if len(seg) < 3 or seg[0] not in ("models", "datasets", "spaces"):
            return False
        repo = hub.repo(seg[0][:-1], f"{seg[1]}/{seg[2]}")
        action, rest = (seg[3], seg[4:]) if len(seg) > 3 else ("", [])
        revision = rest[0] if rest else "main"
        with hub.lock:
            if repo.type == "space" and action in ("variables", "hardware", "runtime"):
                return self._space_settings(method, repo, action)
            if method == "GET" and action in ("", "revision"):
                self._json(hub.repo_info(repo, hub.resolve(repo, revision)))
            elif method == "GET" and action == "tree":
                commit = hub.resolve(repo, revision)
                flag = {"true", "1", "True"}.__contains__
                self._json(
                    hub.tree(
                        repo,
                        commit,
                        "/".join(rest[1:]).strip("/"),
                        flag(self.query.get("recursive", "")),
                        flag(self.query.get("expand", "")),
                    )
                )
            elif method == "POST" and action == "paths-info":
                commit = hub.resolve(repo, revision)
                if self.headers.get("Content-Type", "").startswith("application/json"):
                    form = json.loads(self.body)
                    paths, expand = form.get("paths", []), bool(form.get("expand"))
                else:
                    form_lists = parse_qs(self.body.decode())
                    paths = form_lists.get("paths", [])
                    expand = form_lists.get("expand", ["False"])[-1].lower() in ("true", "1")
                infos = []
                for path in (str(p).strip("/") for p in paths):
                    if path in commit.files or any(f.startswith(path + "/") for f in commit.files):
                        infos.append(hub.path_info(repo, commit, path, expand))
                self._json(infos)
            elif method == "POST" and action == "preupload":
                self._preupload(repo, revision)
            elif method == "POST" and action == "commit":
                if self.query.get("create_pr"):
                    raise HubError(400, "The loopback hub does not support pull requests")
                lines = [json.loads(x) for x in self.body.splitlines() if x.strip()]
                commit = hub.commit(repo, revision, lines)
                self._json(
                    {
                        "success": True,
                        "commitOid": commit.sha,
                        "hookOutput": "",
                        "commitUrl": f"{hub.repo_url(repo)}/commit/{commit.sha}",
                        "pullRequestUrl": None,
                    }
                )
            elif method == "GET" and action == "commits":
                node: Commit | None = hub.resolve(repo, revision)
                history = []
                while node is not None:
                    history.append(
                        {
                            "id": node.sha,
                            "title": node.title,
                            "date": node.date,
                            "message": node.message,
                            "authors": [{"user": DEFAULT_NAMESPACE}],
                        }
                    )
                    node = repo.commits[node.parent] if node.parent else None
                self._json(history)
            elif method == "GET" and action == "refs":
                self._json(
                    {
                        "branches": [
                            {"name": b, "ref": f"refs/heads/{b}", "targetCommit": s}
                            for b, s in sorted(repo.branches.items())
                        ],
                        "converts": [],
                        "tags": [],
                        "pullRequests": [],
                    }
                )
            elif method == "POST" and action == "branch" and rest:
                branch = "/".join(rest)
                if branch in repo.branches:
                    raise HubError(409, f"Branch {branch} already exists")
                start = json.loads(self.body or b"{}").get("startingPoint") or "main"
                repo.branches[branch] = hub.resolve(repo, start).sha
                self._json({})
            else:
                return False
        return True

    def _space_settings(self, method: str, repo: Repo, action: str) -> bool:
        """A Space's variables (GET, POST to add or update, DELETE), its hardware request
        (POST, answered with the runtime) and its runtime (GET)."""
        payload = json.loads(self.body or b"{}") if method in ("POST", "DELETE") else {}
        if action == "variables" and method in ("POST", "DELETE"):
            key = payload.get("key")
            if not isinstance(key, str) or not key:
                raise HubError(400, "A variable needs a non-empty string key")
            if method == "DELETE":
                repo.variables.pop(key, None)
            elif not isinstance(payload.get("value"), str):
                raise HubError(400, f"Variable {key}: the value must be a string")
            else:
                repo.variables[key] = {
                    "value": payload["value"],
                    "description": payload.get("description"),
                    "updatedAt": _now(),
                }
        elif action == "hardware" and method == "POST":
            flavor = payload.get("flavor")
            if not isinstance(flavor, str) or not flavor:
                raise HubError(400, "A hardware request needs a flavor")
            repo.hardware = flavor
            repo.sleep_time = payload.get("sleepTimeSeconds", repo.sleep_time)
        elif not (method == "GET" and action in ("variables", "runtime")):
            return False
        self._json(repo.variables if action == "variables" else repo.runtime())
        return True

    def _preupload(self, repo: Repo, revision: str) -> None:
        commit = self.hub.resolve(repo, revision)
        answers = []
        for f in json.loads(self.body).get("files", []):
            sample = base64.b64decode(f.get("sample", ""))
            size = int(f.get("size", 0))
            lfs = size > 0 and (size >= self.hub.lfs_threshold or b"\0" in sample)
            existing = commit.files.get(f["path"])
            oid = None
            if existing is not None:  # lets the client skip unchanged files, as the Hub does
                oid = existing.sha256 if lfs else git_blob_oid(self.hub.read_blob(existing.sha256))
            answers.append(
                {
                    "path": f["path"],
                    "uploadMode": "lfs" if lfs else "regular",
                    "shouldIgnore": False,
                    "oid": oid,
                }
            )
        self._json({"files": answers, "commitOid": commit.sha})

    def _lfs_batch(self, repo: Repo) -> None:
        payload = json.loads(self.body or b"{}")
        if payload.get("operation") != "upload":
            raise HubError(400, "The loopback hub only implements LFS batch uploads")
        objects = []
        for obj in payload.get("objects", []):
            answer: dict[str, Any] = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if not self.hub.has_blob(obj["oid"]):  # no "actions" = already there, skip upload
                href = f"{self.hub.url}/_loopback/lfs/{obj['oid']}"
                answer["actions"] = {"upload": {"href": href, "header": {}}}
            objects.append(answer)
        self._send(
            200,
            json.dumps({"transfer": "basic", "objects": objects}).encode(),
            content_type="application/vnd.git-lfs+json",
        )

    def _resolve(self, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        hub = self.hub
        with hub.lock:
            repo = hub.repo(repo_type, repo_id)
            commit = hub.resolve(repo, revision)
            entry = commit.files.get(path)
        if entry is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", commit.sha)
        headers = {"X-Repo-Commit": commit.sha, "ETag": f'"{entry.etag}"', "Accept-Ranges": "bytes"}
        if entry.lfs:
            headers.update({"X-Linked-Etag": f'"{entry.sha256}"', "X-Linked-Size": str(entry.size)})
        data = hub.read_blob(entry.sha256)
        status, range_header = 200, self.headers.get("Range")
        if range_header and range_header.startswith("bytes="):
            start_s, _, end_s = range_header[len("bytes=") :].split(",")[0].strip().partition("-")
            if start_s:
                start, end = int(start_s), int(end_s) if end_s else len(data) - 1
            else:
                start, end = max(len(data) - int(end_s), 0), len(data) - 1
            end = min(end, len(data) - 1)
            if start >= len(data) or start > end:
                self._send(416, b"", headers={"Content-Range": f"bytes */{len(data)}", **headers})
                return
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            data, status = data[start : end + 1], 206
        self._send(status, data, "application/octet-stream", headers)
