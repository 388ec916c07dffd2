"""A static HTTP file server on 127.0.0.1 for tests (stdlib only): the stand-in for PaddleClas's download host."""
from __future__ import annotations

import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FileServer:
    """Serves `files` (URL path without the leading '/' → bytes) at `.url`; unknown paths get 404, and a
    `Range: bytes=N-` request gets 206 with the rest (unless `accept_ranges` is False). `log` lists the paths
    requested. `fault` makes every answer misbehave: "drip" (a byte every 0.2 s, forever), "endless" (a body with no
    length that never ends), "huge" (a `Content-Length` of 10**12)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.log: list[str] = []
        self.ranges: list[int | None] = []  # the start of each request's `Range: bytes=N-`, None without one
        self.accept_ranges = True
        self.fault: str | None = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                path = self.path.lstrip("/")
                server.log.append(path)
                if server.fault:
                    try:
                        self.misbehave(server.fault)
                    except OSError:  # the client gave up: what these faults wait for
                        pass
                    return
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

            def misbehave(self, fault: str) -> None:
                self.send_response(200)
                if fault != "endless":
                    self.send_header("Content-Length", str(10 ** 12 if fault == "huge" else 10 ** 6))
                self.end_headers()
                while True:
                    self.wfile.write(b"\0" if fault == "drip" else b"\0" * 65536)
                    self.wfile.flush()
                    if fault == "drip":
                        time.sleep(0.2)

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
        self.fault = None
