"""A small Hugging-Face-Hub-compatible HTTP server for tests (stdlib only, 127.0.0.1, free ports).

It speaks the part of the Hub protocol `hf_hub_download` uses (see shared/notes/anchors.md §3.3): `HEAD`/`GET`
`/{repo}/resolve/{revision}/{path}` with `X-Repo-Commit` and `ETag`, 404s carrying `X-Error-Code`, and LFS files
(`*.safetensors`) answered the way the real Hub does: a 302 to another host (the "CDN", a second server that sends no
Hub headers) with `X-Linked-Etag` (the file's sha256) and `X-Linked-Size` on the first response.
Repos keep their history, so a pinned commit keeps serving its bytes after `main` moves on.

Uploads (`HfApi.create_repo`, `create_branch`, `upload_folder`) work too, without Xet:
- `POST /api/repos/create` (a new repo starts with a `.gitattributes` commit) and `/api/models/{repo}/branch/{name}`;
- `POST /api/validate-yaml` (the model card's front matter must be closed);
- `POST /api/models/{repo}/preupload/{rev}`: `*.safetensors` go to LFS, each known file comes with its oid;
- `POST /{repo}.git/info/lfs/objects/batch`: upload actions that PUT the bytes to the CDN, which checks their sha256;
- `POST /api/models/{repo}/commit/{rev}` (NDJSON): a commit adds or replaces files on top of the branch head;
- `GET /api/models/{repo}/revision/{rev}`, which the client asks when no file changed.
When `token` is set, every `POST` to the Hub needs `Authorization: Bearer <token>`.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
_API = re.compile(r"api/models/(?P<repo>[^/]+/[^/]+)/(?P<op>preupload|commit|branch|revision)/(?P<rev>.+)")
_LFS_BATCH = re.compile(r"(?P<repo>[^/]+/[^/]+)\.git/info/lfs/objects/batch")
Reply = tuple[int, dict[str, str], bytes]
REQUEST_ID = "fakehub-request-1"  # what every error answer carries as `X-Request-Id`, as the Hub does


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def is_lfs(path: str) -> bool:
    """Files stored in LFS (served through the CDN), as `GITATTRIBUTES` says."""
    return path.endswith(".safetensors")


def file_oid(path: str, data: bytes) -> str:
    """The oid the Hub reports for a file: sha256 for LFS files, the git blob sha1 otherwise."""
    return hashlib.sha256(data).hexdigest() if is_lfs(path) else git_blob_sha1(data)


def _json(status: int, value: object) -> Reply:
    return status, {"Content-Type": "application/json"}, json.dumps(value).encode()


def _error(status: int, message: str, code: str | None = None, **fields: str) -> Reply:
    status, headers, body = _json(status, {"error": message, **fields})
    return status, {**headers, "X-Error-Message": message, "X-Request-Id": REQUEST_ID,
                    **({"X-Error-Code": code} if code else {})}, body


@dataclass
class Repo:
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    messages: dict[str, str] = field(default_factory=dict)
    private: bool = False


class HubError(Exception):
    """An error answer, sent the way the Hub sends one (JSON `error`, `X-Error-Message`, maybe `X-Error-Code`)."""

    def __init__(self, status: int, message: str, code: str | None = None, **fields: str) -> None:
        super().__init__(message)
        self.reply = _error(status, message, code, **fields)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class FakeHub:
    """`FakeHub()` starts serving; `publish()` files; point `HF_ENDPOINT` at `.endpoint`.

    `stop()` and `start()` take the servers down and up again on the same ports (the endpoint stays valid);
    `reset()` forgets every repo, the request log and the write token. `silent.set()` makes the Hub accept
    connections and never answer them; `cdn_status` and `cdn_cut` make the CDN fail or cut files short.
    """

    def __init__(self) -> None:
        self._servers: list[_Server] = []
        self._ports = (0, 0)
        self.reset()
        self.start()
        self.endpoint, self.cdn = (f"http://127.0.0.1:{port}" for port in self._ports)

    def reset(self) -> None:
        if hasattr(self, "released"):
            self.released.set()  # let go of requests held by `silent`
        self.silent, self.released = threading.Event(), threading.Event()
        self.cdn_status: int | None = None  # the CDN answers every request with this status
        self.cdn_cut = False  # the CDN sends half of each file and closes the connection
        self.repos: dict[str, Repo] = {}
        self.blobs: dict[str, bytes] = {}
        self.log: list[tuple[str, str]] = []
        self.token: str | None = None

    def start(self) -> None:
        if not self._servers:
            self._ports = (self._serve(self._hub_handler(), self._ports[0]),
                           self._serve(self._cdn_handler(), self._ports[1]))

    def publish(self, repo_id: str, files: dict[str, bytes], branch: str = "main", message: str = "") -> str:
        """Commit `files` (the whole new tree) to `branch`; returns the 40-hex commit id."""
        repo = self.repos.setdefault(repo_id, Repo())
        parent = repo.branches.get(branch, "")
        digest = hashlib.sha1(parent.encode() + message.encode())
        for path in sorted(files):
            digest.update(path.encode() + hashlib.sha256(files[path]).digest())
        commit = digest.hexdigest()
        repo.commits[commit] = dict(files)
        repo.messages[commit] = message
        repo.branches[branch] = commit
        for data in files.values():
            self.blobs[hashlib.sha256(data).hexdigest()] = data
        return commit

    def forget(self, repo_id: str, commit: str) -> None:
        """Drop one commit from a repo's history (as a force-push would)."""
        del self.repos[repo_id].commits[commit]

    def requests(self, method: str | None = None) -> list[str]:
        return [path for m, path in self.log if method is None or m == method]

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()

    def _serve(self, handler: type[BaseHTTPRequestHandler], port: int) -> int:
        server = _Server(("127.0.0.1", port), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._servers.append(server)
        return server.server_address[1]

    def _lookup(self, repo_id: str, revision: str) -> tuple[Repo, str]:
        """The repo and the commit that a branch or commit id names."""
        repo = self.repos.get(repo_id)
        if repo is None:
            raise HubError(404, "Repository not found", "RepoNotFound")
        commit = repo.branches.get(revision, revision)
        if commit not in repo.commits:
            raise HubError(404, "Invalid rev id", "RevisionNotFound")
        return repo, commit

    def _read(self, path: str) -> Reply:
        api = _API.fullmatch(path)
        if api and api["op"] == "revision":
            repo, commit = self._lookup(api["repo"], api["rev"])
            return _json(200, {"id": api["repo"], "sha": commit, "private": repo.private,
                               "siblings": [{"rfilename": name} for name in sorted(repo.commits[commit])]})
        return self._resolve(path)

    def _resolve(self, path: str) -> Reply:
        parts = path.split("/")
        if len(parts) < 5 or parts[2] != "resolve":
            return 404, {}, b""
        repo_id, revision, filename = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
        repo, commit = self._lookup(repo_id, revision)
        files = repo.commits[commit]
        if filename not in files:
            return 404, {"X-Error-Code": "EntryNotFound", "X-Error-Message": "Entry not found",
                         "X-Repo-Commit": commit}, b""
        data = files[filename]
        if is_lfs(filename):
            sha256 = hashlib.sha256(data).hexdigest()
            return 302, {"Location": f"{self.cdn}/blobs/{sha256}", "X-Repo-Commit": commit,
                         "X-Linked-Etag": f'"{sha256}"', "X-Linked-Size": str(len(data)),
                         "ETag": f'"{git_blob_sha1(data)}"'}, b""
        return 200, {"X-Repo-Commit": commit, "ETag": f'"{git_blob_sha1(data)}"'}, data

    def _write(self, path: str, body: bytes, authorization: str | None) -> Reply:
        if self.token is not None and authorization != f"Bearer {self.token}":
            raise HubError(401, "Invalid credentials in Authorization header")
        if path == "api/repos/create":
            return self._create_repo(json.loads(body))
        if path == "api/validate-yaml":
            return self._validate_yaml(json.loads(body)["content"])
        if batch := _LFS_BATCH.fullmatch(path):
            return self._lfs_batch(batch["repo"], json.loads(body))
        api = _API.fullmatch(path)
        handlers = {"preupload": self._preupload, "commit": self._commit, "branch": self._create_branch}
        if api is None or api["op"] not in handlers:
            raise HubError(404, f"No route for POST /{path}")
        return handlers[api["op"]](api["repo"], api["rev"], body)

    @staticmethod
    def _validate_yaml(card: str) -> Reply:
        """The model card check the client runs before uploading a README.md (here: front matter must be closed)."""
        if card.startswith("---") and "\n---" not in card[3:]:
            return _json(400, {"errors": [{"message": "YAML front matter is not closed by a '---' line"}]})
        return _json(200, {"errors": [], "warnings": []})

    def _create_repo(self, request: dict) -> Reply:
        repo_id = "/".join(filter(None, (request.get("organization"), request["name"])))
        if repo_id in self.repos:
            raise HubError(409, "You already created this model repo", url=f"{self.endpoint}/{repo_id}")
        private = bool(request.get("private")) or request.get("visibility") == "private"  # 0.3x / 1.x+ clients
        self.repos[repo_id] = Repo(private=private)
        self.publish(repo_id, {".gitattributes": GITATTRIBUTES}, message="initial commit")
        return _json(200, {"url": f"{self.endpoint}/{repo_id}", "name": repo_id})

    def _create_branch(self, repo_id: str, branch: str, body: bytes) -> Reply:
        repo, commit = self._lookup(repo_id, json.loads(body or b"{}").get("startingPoint") or "main")
        if branch in repo.branches:
            raise HubError(409, f"Reference already exists: refs/heads/{branch}")
        repo.branches[branch] = commit
        return _json(200, {})

    def _preupload(self, repo_id: str, revision: str, body: bytes) -> Reply:
        repo, commit = self._lookup(repo_id, revision)
        tree = repo.commits[commit]
        return _json(200, {"files": [
            {"path": f["path"], "uploadMode": "lfs" if is_lfs(f["path"]) else "regular", "shouldIgnore": False,
             "oid": file_oid(f["path"], tree[f["path"]]) if f["path"] in tree else None}
            for f in json.loads(body)["files"]]})

    def _lfs_batch(self, repo_id: str, request: dict) -> Reply:
        """Upload actions (a PUT to the CDN) for the objects the store lacks; none for those it has."""
        if repo_id not in self.repos:
            raise HubError(404, "Repository not found", "RepoNotFound")
        objects = [obj if obj["oid"] in self.blobs else
                   {**obj, "actions": {"upload": {"href": f"{self.cdn}/upload/{obj['oid']}"}}}
                   for obj in request["objects"]]
        return _json(200, {"transfer": "basic", "objects": objects})

    def _commit(self, repo_id: str, branch: str, body: bytes) -> Reply:
        """Apply NDJSON `file`/`lfsFile` lines on top of the branch head."""
        repo, parent = self._lookup(repo_id, branch)
        if branch not in repo.branches:
            raise HubError(400, f"Cannot commit to '{branch}': not a branch")
        header, *operations = (json.loads(line) for line in body.splitlines() if line.strip())
        tree = dict(repo.commits[parent])
        tree.update((op["value"]["path"], self._content(op)) for op in operations)
        commit = self.publish(repo_id, tree, branch, message=header["value"]["summary"])
        return _json(200, {"commitUrl": f"{self.endpoint}/{repo_id}/commit/{commit}", "commitOid": commit,
                           "pullRequestUrl": None})

    def _content(self, operation: dict) -> bytes:
        key, value = operation["key"], operation["value"]
        if key == "file":
            return base64.b64decode(value["content"])
        if key == "lfsFile" and value["oid"] in self.blobs:
            return self.blobs[value["oid"]]
        raise HubError(400, f"Cannot commit {key} '{value['path']}': unsupported, or its LFS object was not uploaded")

    def _store(self, oid: str, data: bytes) -> Reply:
        """An LFS upload to the CDN: keep the bytes if they have the sha256 the upload URL names."""
        if hashlib.sha256(data).hexdigest() != oid:
            return 400, {}, b"sha256 mismatch"
        self.blobs[oid] = data
        return 200, {}, b""

    def _hub_handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(_Quiet):
            def answer(self, send_body: bool) -> None:
                path = unquote(urlsplit(self.path).path).lstrip("/")
                hub.log.append((self.command, "/" + path))
                if hub.silent.is_set():  # accept the connection, never answer (until `reset()`)
                    hub.released.wait()
                    return
                body = self.read_body()
                try:
                    reply = (hub._write(path, body, self.headers.get("Authorization")) if self.command == "POST"
                             else hub._read(path))
                except HubError as e:
                    reply = e.reply
                except (KeyError, TypeError, ValueError) as e:
                    reply = _error(400, f"Malformed request: {e!r}")
                self.reply(*reply, send_body)

        return Handler

    def _cdn_handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(_Quiet):
            def answer(self, send_body: bool) -> None:
                path = urlsplit(self.path).path
                hub.log.append((self.command, "cdn:" + path))
                oid = path.rsplit("/", 1)[-1]
                if self.command == "PUT":
                    self.reply(*hub._store(oid, self.read_body()), send_body)
                    return
                data = hub.blobs.get(oid)
                if hub.cdn_status is not None:  # a failing CDN
                    self.reply(hub.cdn_status, {}, b"CDN failure", send_body)
                    return
                if hub.cdn_cut and data is not None and send_body:  # promise the whole file, send half, hang up
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(data[:len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.reply(404 if data is None else 200, {}, data or b"", send_body)

        return Handler


class _Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def reply(self, status: int, headers: dict[str, str], body: bytes, send_body: bool) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")  # no kept-alive connection outlives `stop()`
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def read_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def do_HEAD(self) -> None:
        self.answer(send_body=False)  # type: ignore[attr-defined]  (each server's handler defines answer)

    def do_GET(self) -> None:
        self.answer(send_body=True)  # type: ignore[attr-defined]

    def do_POST(self) -> None:
        self.answer(send_body=True)  # type: ignore[attr-defined]

    def do_PUT(self) -> None:
        self.answer(send_body=True)  # type: ignore[attr-defined]
