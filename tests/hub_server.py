"""A small Hub-API-compatible HTTP server for the tests (a fixture, not a product feature).

It speaks the part of the Hugging Face Hub API that `huggingface_hub` 2.4 uses to create repos, commit files and
read them back, for model, dataset and space repos, so the real client does real HTTP on 127.0.0.1:

    POST /api/repos/create                                 create (409 when it exists)
    GET  /api/{models|datasets|spaces}/<repo>[/revision/<rev>]   repo info: sha, siblings
    GET  /api/<type>s/<repo>/tree/<rev>[/<path>]           tree listing (?recursive=)
    POST /api/<type>s/<repo>/paths-info/<rev>              paths info
    POST /api/<type>s/<repo>/preupload/<rev>               upload modes ("regular") and the remote blob oids
    POST /api/<type>s/<repo>/commit/<rev>                  NDJSON commit; a stale parentCommit gets 412, as the Hub
    GET  /api/<type>s/<repo>/commits/<rev>, /refs          history and branches
    POST /api/validate-yaml, GET /api/whoami-v2
    HEAD/GET /[datasets/|spaces/]<repo>/resolve/<rev>/<path>   file download with X-Repo-Commit and ETag

Every commit keeps the whole tree (test repos are tiny), so any past revision can be read back. Fault injection:
`fail_next(k, status)` answers the next k requests with an error, `down()` / `up()` stop and restart listening on
the same port, `hold(match)` parks a matching request until released (to kill a client mid-push).
`SilentServer` (fixture `silent_hub`) accepts connections and never answers: a hung Hub or proxy.
The fixture `hub_server` starts one per test and points huggingface_hub at it (`server.env()` does the same for a
subprocess). Writes need `Authorization: Bearer <server.token>`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import yaml

TEST_TOKEN = "hf_testTokenDoNotLeak0123456789abcdef"
KINDS = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"

_REPO = r"(?P<repo>[^/]+/[^/]+)"
_API = rf"^/api/(?P<kind>models|datasets|spaces)/{_REPO}"
_RESOLVE = re.compile(rf"^/(?:(?P<kind>datasets|spaces)/)?{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
ROUTES = [
    ("POST", re.compile(r"^/api/repos/create$"), "api_create"),
    ("POST", re.compile(r"^/api/validate-yaml$"), "api_validate_yaml"),
    ("GET", re.compile(r"^/api/whoami-v2$"), "api_whoami"),
    ("GET", re.compile(_API + r"(?:/revision/(?P<rev>[^/]+))?$"), "api_info"),
    ("GET", re.compile(_API + r"/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?$"), "api_tree"),
    ("POST", re.compile(_API + r"/paths-info/(?P<rev>[^/]+)$"), "api_paths_info"),
    ("POST", re.compile(_API + r"/preupload/(?P<rev>[^/]+)$"), "api_preupload"),
    ("POST", re.compile(_API + r"/commit/(?P<rev>[^/]+)$"), "api_commit"),
    ("GET", re.compile(_API + r"/commits/(?P<rev>[^/]+)$"), "api_commits"),
    ("GET", re.compile(_API + r"/refs$"), "api_refs"),
    ("GET", _RESOLVE, "api_resolve"),
    ("HEAD", _RESOLVE, "api_resolve"),
]
WRITES = {"api_create", "api_preupload", "api_commit"}


def blob_oid(data: bytes) -> str:
    """Git's blob id, which the client compares against for unchanged files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Commit:
    oid: str
    parent: str | None
    title: str
    files: dict[str, bytes]
    date: str


@dataclass
class Repo:
    kind: str
    repo_id: str
    private: bool
    sdk: str | None = None
    commits: list[Commit] = field(default_factory=list)  # oldest first; main is the last one

    @property
    def head(self) -> Commit:
        return self.commits[-1]

    def resolve(self, rev: str) -> Commit | None:
        if rev == "main":
            return self.head
        return next((c for c in self.commits if c.oid == rev), None)

    def add_commit(self, title: str, files: dict[str, bytes]) -> Commit:
        parent = self.commits[-1].oid if self.commits else None
        digest = hashlib.sha1(f"{parent}\n{title}\n{len(self.commits)}\n".encode())
        for path in sorted(files):
            digest.update(f"{path}\0{blob_oid(files[path])}\n".encode())
        commit = Commit(digest.hexdigest(), parent, title, dict(files),
                        time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()))
        self.commits.append(commit)
        return commit


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, **extra):
        super().__init__(message)
        self.status, self.message, self.code, self.extra = status, message, code, extra


@dataclass
class Hold:
    """A request parked by `HubServer.hold`: `reached` is set when it arrives; `release(drop)` lets it go on
    (or drops it without an answer, as a client killed mid-request never gets one)."""

    match: object
    reached: threading.Event = field(default_factory=threading.Event)
    gate: threading.Event = field(default_factory=threading.Event)
    drop: bool = False

    def release(self, drop: bool = False) -> None:
        self.drop = drop
        self.gate.set()


class HubServer:
    def __init__(self, token: str | None = TEST_TOKEN):
        self.token = token
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lock = threading.RLock()
        self.log: list[tuple[str, str, int]] = []  # (method, path, status) of every answered request
        self.authorizations: set[str] = set()
        self._fail: list[tuple[int, int, str | None]] = []  # (remaining, status, path substring)
        self._holds: list[Hold] = []
        self._httpd: ThreadingHTTPServer | None = None
        self.port = 0

    # ---- life cycle --------------------------------------------------------------------------------------------
    def start(self) -> HubServer:
        server = self

        class Handler(_Handler):
            hub = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        for hold in self._holds:
            hold.release(drop=True)
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    down = stop  # connections are refused until `up()`

    def up(self) -> HubServer:
        return self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, cache_dir: str) -> dict[str, str]:
        """Environment for a subprocess whose huggingface_hub should talk to this server."""
        return {"HF_ENDPOINT": self.url, "HF_HUB_OFFLINE": "0", "HF_HUB_CACHE": str(cache_dir),
                "HF_TOKEN": self.token or "", "HF_HUB_DISABLE_TELEMETRY": "1"}

    # ---- fault injection ---------------------------------------------------------------------------------------
    def fail_next(self, k: int, status: int = 500, path: str | None = None) -> None:
        """Answer the next k requests (whose path contains `path`, when given) with `status`."""
        with self.lock:
            self._fail.append((k, status, path))

    def heal(self) -> None:
        """Drop the failures still queued by `fail_next`."""
        with self.lock:
            self._fail.clear()

    def hold(self, match) -> Hold:
        """Park the first request for which `match(method, path)` is true until `release()`."""
        hold = Hold(match)
        with self.lock:
            self._holds.append(hold)
        return hold

    # ---- inspection --------------------------------------------------------------------------------------------
    def repo(self, kind: str, repo_id: str) -> Repo:
        return self.repos[(kind, repo_id)]

    def files(self, kind: str, repo_id: str, rev: str = "main") -> dict[str, bytes]:
        with self.lock:
            return dict(self.repo(kind, repo_id).resolve(rev).files)

    def commits(self, kind: str, repo_id: str) -> list[Commit]:
        with self.lock:
            return list(self.repo(kind, repo_id).commits)

    def count(self, method: str, fragment: str) -> int:
        return sum(1 for m, p, s in self.log if m == method and fragment in p and s < 300)

    # ---- request plumbing --------------------------------------------------------------------------------------
    def _injected_failure(self, path: str) -> int | None:
        with self.lock:
            for i, (left, status, fragment) in enumerate(self._fail):
                if left > 0 and (fragment is None or fragment in path):
                    self._fail[i] = (left - 1, status, fragment)
                    return status
        return None

    def _take_hold(self, method: str, path: str) -> Hold | None:
        with self.lock:
            for hold in self._holds:
                if not hold.reached.is_set() and hold.match(method, path):
                    hold.reached.set()
                    return hold
        return None

    def _repo(self, kind: str, repo_id: str) -> Repo:
        repo = self.repos.get((kind, repo_id))
        if repo is None:
            raise HubError(404, f"Repository not found: {repo_id}", "RepoNotFound")
        return repo

    def _commit_at(self, repo: Repo, rev: str) -> Commit:
        commit = repo.resolve(rev)
        if commit is None:
            raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return commit

    # ---- endpoints: each returns (status, json body or bytes, extra headers) -----------------------------------
    def api_create(self, req, body: bytes):
        payload = json.loads(body)
        kind = payload.get("type") or "model"
        repo_id = f"{payload.get('organization') or 'ditlaws-test'}/{payload['name']}"
        url = f"{self.url}/{URL_PREFIX[kind]}{repo_id}"
        if (kind, repo_id) in self.repos:
            raise HubError(409, f"You already created this {kind} repo: {repo_id}", url=url)
        if kind == "space" and not payload.get("sdk"):
            raise HubError(400, "a space needs an sdk")
        repo = Repo(kind, repo_id, private=payload.get("visibility") == "private" or bool(payload.get("private")),
                    sdk=payload.get("sdk"))
        repo.add_commit("initial commit", {".gitattributes": GITATTRIBUTES})
        self.repos[(kind, repo_id)] = repo
        return 200, {"url": url, "name": repo_id, "id": repo_id}, {}

    def api_validate_yaml(self, req, body: bytes):
        content = json.loads(body).get("content", "")
        match = re.match(r"^---\n(.*?)\n---", content, re.S)
        if match:
            try:
                meta = yaml.safe_load(match.group(1))
            except yaml.YAMLError as err:
                return 400, {"errors": [{"message": f"invalid YAML: {err}"}], "warnings": []}, {}
            if meta is not None and not isinstance(meta, dict):
                return 400, {"errors": [{"message": "metadata must be a mapping"}], "warnings": []}, {}
        return 200, {"errors": [], "warnings": []}, {}

    def api_whoami(self, req, body: bytes):
        return 200, {"type": "user", "name": "ditlaws-test", "orgs": [], "auth": {"type": "access_token"}}, {}

    def api_info(self, req, body: bytes, kind: str, repo: str, rev: str | None = None):
        r = self._repo(KINDS[kind], repo)
        commit = self._commit_at(r, rev or "main")
        data = {"id": r.repo_id, "sha": commit.oid, "private": r.private, "lastModified": commit.date,
                "siblings": [{"rfilename": p, "size": len(b)} for p, b in sorted(commit.files.items())], "tags": []}
        if r.sdk:
            data["sdk"] = r.sdk
        return 200, data, {}

    def api_tree(self, req, body: bytes, kind: str, repo: str, rev: str, path: str | None = None):
        commit = self._commit_at(self._repo(KINDS[kind], repo), rev)
        recursive = parse_qs(urlsplit(req.path).query).get("recursive", ["false"])[0].lower() == "true"
        prefix = f"{path.strip('/')}/" if path else ""
        entries = _tree_entries(commit.files)
        if prefix and not any(p.startswith(prefix) for p in entries):
            raise HubError(404, f"{path} does not exist", "EntryNotFound")
        out = [e for p, e in entries.items()
               if p.startswith(prefix) and (recursive or "/" not in p[len(prefix):])]
        return 200, out, {}

    def api_paths_info(self, req, body: bytes, kind: str, repo: str, rev: str):
        commit = self._commit_at(self._repo(KINDS[kind], repo), rev)
        form = parse_qs(body.decode())
        entries = _tree_entries(commit.files)
        return 200, [entries[p] for p in form.get("paths", []) if p in entries], {}

    def api_preupload(self, req, body: bytes, kind: str, repo: str, rev: str):
        commit = self._commit_at(self._repo(KINDS[kind], repo), rev)
        files = []
        for f in json.loads(body)["files"]:
            entry = {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
            if f["path"] in commit.files:
                entry["oid"] = blob_oid(commit.files[f["path"]])
            files.append(entry)
        return 200, {"files": files, "commitOid": commit.oid}, {}

    def api_commit(self, req, body: bytes, kind: str, repo: str, rev: str):
        r = self._repo(KINDS[kind], repo)
        if rev != "main":
            raise HubError(400, f"commits go to main in this test server, not {rev}")
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        header = lines[0]["value"] if lines and lines[0]["key"] == "header" else {}
        parent = header.get("parentCommit")
        if parent is not None and parent != r.head.oid:
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        files = dict(r.head.files)
        for item in lines[1:]:
            key, value = item["key"], item["value"]
            if key == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                if value["path"] not in files:
                    raise HubError(404, f"A file with this name doesn't exist: {value['path']}", "EntryNotFound")
                del files[value["path"]]
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                files = {p: b for p, b in files.items() if not p.startswith(prefix)}
            else:
                raise HubError(400, f"unsupported commit operation {key!r} (this server only takes regular files)")
        commit = r.add_commit(header.get("summary") or "commit", files)
        url = f"{self.url}/{URL_PREFIX[r.kind]}{r.repo_id}/commit/{commit.oid}"
        return 200, {"success": True, "commitOid": commit.oid, "commitUrl": url, "hookOutput": "",
                     "pullRequestUrl": None}, {}

    def api_commits(self, req, body: bytes, kind: str, repo: str, rev: str):
        r = self._repo(KINDS[kind], repo)
        upto = r.commits.index(self._commit_at(r, rev))
        return 200, [{"id": c.oid, "title": c.title, "message": "", "date": c.date,
                      "authors": [{"user": "ditlaws-test"}]} for c in reversed(r.commits[:upto + 1])], {}

    def api_refs(self, req, body: bytes, kind: str, repo: str):
        head = self._repo(KINDS[kind], repo).head.oid
        return 200, {"branches": [{"name": "main", "ref": "refs/heads/main", "targetCommit": head}],
                     "converts": [], "tags": []}, {}

    def api_resolve(self, req, body: bytes, repo: str, rev: str, path: str, kind: str | None = None):
        commit = self._commit_at(self._repo(KINDS[kind] if kind else "model", repo), rev)
        if path not in commit.files:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
        data = commit.files[path]
        return 200, data, {"X-Repo-Commit": commit.oid, "ETag": f'"{blob_oid(data)}"'}


def _tree_entries(files: dict[str, bytes]) -> dict[str, dict]:
    entries: dict[str, dict] = {}
    for path, data in sorted(files.items()):
        parts = path.split("/")
        for i in range(1, len(parts)):
            folder = "/".join(parts[:i])
            entries.setdefault(folder, {"type": "directory", "oid": hashlib.sha1(folder.encode()).hexdigest(),
                                        "size": 0, "path": folder})
        entries[path] = {"type": "file", "oid": blob_oid(data), "size": len(data), "path": path}
    return entries


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.0"  # one request per connection: `down()` refuses every next request

    def log_message(self, *args) -> None:
        pass

    def do_GET(self):
        self._serve("GET")

    def do_HEAD(self):
        self._serve("HEAD")

    def do_POST(self):
        self._serve("POST")

    def _serve(self, method: str) -> None:
        hub, path = self.hub, urlsplit(self.path).path
        hold = hub._take_hold(method, path)
        if hold is not None:
            hold.gate.wait(30)
            if hold.drop:
                self.close_connection = True
                return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) if method == "POST" else b""
        auth = self.headers.get("Authorization")
        if auth:
            hub.authorizations.add(auth)
        status = hub._injected_failure(path)
        if status is not None:
            return self._answer(method, path, status, {"error": f"injected failure {status}"}, {})
        for verb, pattern, name in ROUTES:
            match = pattern.match(path) if verb == method else None
            if match is None:
                continue
            args = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
            try:
                if name in WRITES and hub.token and auth != f"Bearer {hub.token}":
                    raise HubError(401, "Invalid credentials in Authorization header")
                with hub.lock:
                    status, data, headers = getattr(hub, name)(self, body, **args)
            except HubError as err:
                headers = {"X-Error-Message": err.message, **({"X-Error-Code": err.code} if err.code else {})}
                return self._answer(method, path, err.status, {"error": err.message, **err.extra}, headers)
            return self._answer(method, path, status, data, headers)
        self._answer(method, path, 404, {"error": f"no route for {method} {path}"}, {})

    def _answer(self, method: str, path: str, status: int, data, headers: dict) -> None:
        raw = data if isinstance(data, bytes) else json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream" if isinstance(data, bytes)
                         else "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(raw)
        self.hub.log.append((method, path, status))


@pytest.fixture
def hub_server(tmp_path, monkeypatch):
    """A running HubServer; huggingface_hub in this process is online, with a private cache and the test token
    (HF_TOKEN), for the duration of the test. Pass `endpoint=server.url` to the client (huggingface_hub reads
    HF_ENDPOINT once, at import; a subprocess gets it from `server.env()`)."""
    from huggingface_hub import constants

    server = HubServer().start()
    cache = tmp_path / "hf_cache"
    monkeypatch.setenv("HF_TOKEN", server.token)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    server.cache_dir = cache
    yield server
    server.stop()


class SilentServer:
    """Accepts every connection and never answers (reads nothing, writes nothing, closes nothing until stopped):
    what a client without time limits waits on forever."""

    def __init__(self):
        import socket

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.connections: list = []
        self._stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(conn)

    def stop(self) -> None:
        self._stopped.set()
        self.sock.close()
        for conn in self.connections:
            conn.close()


@pytest.fixture
def silent_hub():
    server = SilentServer()
    yield server
    server.stop()
