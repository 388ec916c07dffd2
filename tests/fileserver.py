"""A static HTTP file server on 127.0.0.1 for tests (stdlib only): the stand-in for PaddleClas's download host."""
from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FileServer:
    """Serves `files` (URL path without the leading '/' → bytes) at `.url`; unknown paths get 404, and a
    `Range: bytes=N-` request gets 206 with the rest (unless `accept_ranges` is False). `log` lists the paths
    requested."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.log: list[str] = []
        self.ranges: list[int | None] = []  # the start of each request's `Range: bytes=N-`, None without one
        self.accept_ranges = True
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                path = self.path.lstrip("/")
                server.log.append(path)
                data = server.files.get(path)
                ranged = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                server.ranges.append(int(ranged[1]) if ranged else None)
                status = 200 if data is not None else 404
                if data is not None and ranged and server.accept_ranges:
                    start = int(ranged[1])
                    if start >= len(data):
                        status, data = 416, b""
                    else:
                        status, data = 206, data[start:]
                self.send_response(status)
                self.send_header("Content-Length", str(len(data or b"")))
                self.end_headers()
                self.wfile.write(data or b"")

            def log_message(self, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def reset(self) -> None:
        self.files.clear()
        self.log.clear()
        self.ranges.clear()
        self.accept_ranges = True
