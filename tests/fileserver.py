"""A static HTTP file server on 127.0.0.1 for tests (stdlib only): the stand-in for PaddleClas's download host."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FileServer:
    """Serves `files` (URL path without the leading '/' → bytes) at `.url`; unknown paths get 404. `log` lists the
    paths requested."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.log: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                path = self.path.lstrip("/")
                server.log.append(path)
                data = server.files.get(path)
                self.send_response(200 if data is not None else 404)
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
