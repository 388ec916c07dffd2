"""A small Hugging-Face-Hub-compatible HTTP server for tests (stdlib only, 127.0.0.1, free ports).

It speaks the part of the Hub protocol `hf_hub_download` uses (see shared/notes/anchors.md §3.3): `HEAD`/`GET`
`/{repo}/resolve/{revision}/{path}` with `X-Repo-Commit` and `ETag`, 404s carrying `X-Error-Code`, and LFS files
(`*.safetensors`) answered the way the real Hub does: a 302 to another host (the "CDN", a second server that sends no
Hub headers) with `X-Linked-Etag` (the file's sha256) and `X-Linked-Size` on the first response.
Repos keep their history, so a pinned commit keeps serving its bytes after `main` moves on.
"""
from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class FakeHub:
    """`FakeHub()` starts serving; `publish()` files; point `HF_ENDPOINT` at `.endpoint`.

    `stop()` and `start()` take the servers down and up again on the same ports (the endpoint stays valid);
    `reset()` forgets every repo and the request log.
    """

    def __init__(self) -> None:
        self._servers: list[_Server] = []
        self._ports = (0, 0)
        self.reset()
        self.start()
        self.endpoint, self.cdn = (f"http://127.0.0.1:{port}" for port in self._ports)

    def reset(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.blobs: dict[str, bytes] = {}
        self.log: list[tuple[str, str]] = []

    def start(self) -> None:
        if not self._servers:
            self._ports = (self._serve(self._hub_handler(), self._ports[0]),
                           self._serve(self._cdn_handler(), self._ports[1]))

    def publish(self, repo_id: str, files: dict[str, bytes], branch: str = "main") -> str:
        """Commit `files` (the whole new tree) to `branch`; returns the 40-hex commit id."""
        repo = self.repos.setdefault(repo_id, Repo())
        parent = repo.branches.get(branch, "")
        digest = hashlib.sha1(parent.encode())
        for path in sorted(files):
            digest.update(path.encode() + hashlib.sha256(files[path]).digest())
        commit = digest.hexdigest()
        repo.commits[commit] = dict(files)
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

    def _resolve(self, path: str) -> tuple[int, dict[str, str], bytes]:
        parts = path.split("/")
        if len(parts) < 5 or parts[2] != "resolve":
            return 404, {}, b""
        repo_id, revision, filename = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
        repo = self.repos.get(repo_id)
        if repo is None:
            return 404, {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"}, b""
        commit = repo.branches.get(revision, revision)
        if commit not in repo.commits:
            return 404, {"X-Error-Code": "RevisionNotFound", "X-Error-Message": "Invalid rev id"}, b""
        files = repo.commits[commit]
        if filename not in files:
            return 404, {"X-Error-Code": "EntryNotFound", "X-Error-Message": "Entry not found",
                         "X-Repo-Commit": commit}, b""
        data = files[filename]
        if filename.endswith(".safetensors"):
            sha256 = hashlib.sha256(data).hexdigest()
            return 302, {"Location": f"{self.cdn}/blobs/{sha256}", "X-Repo-Commit": commit,
                         "X-Linked-Etag": f'"{sha256}"', "X-Linked-Size": str(len(data)),
                         "ETag": f'"{git_blob_sha1(data)}"'}, b""
        return 200, {"X-Repo-Commit": commit, "ETag": f'"{git_blob_sha1(data)}"'}, data

    def _hub_handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(_Quiet):
            def answer(self, send_body: bool) -> None:
                path = unquote(urlsplit(self.path).path).lstrip("/")
                hub.log.append((self.command, "/" + path))
                status, headers, body = hub._resolve(path)
                self.reply(status, headers, body, send_body)

        return Handler

    def _cdn_handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(_Quiet):
            def answer(self, send_body: bool) -> None:
                path = urlsplit(self.path).path
                hub.log.append((self.command, "cdn:" + path))
                data = hub.blobs.get(path.rsplit("/", 1)[-1])
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
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.answer(send_body=False)  # type: ignore[attr-defined]  (each server's handler defines answer)

    def do_GET(self) -> None:
        self.answer(send_body=True)  # type: ignore[attr-defined]
