"""`weights.download`: plain HTTP(S) downloads bounded in time and size, against loopback servers that misbehave."""
from __future__ import annotations

import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterator

import pytest
from fileserver import FileServer

from ssld_zoo.errors import DownloadFailed, FileSystemError, SettingError
from ssld_zoo.weights.download import download, partial_path

Behaviour = Callable[[BaseHTTPRequestHandler], None]


class Misbehaving:
    """A loopback HTTP server whose every GET runs `behaviour(handler)`; `stop` lets go of held connections."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.stopped = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                try:
                    behaviour(self)
                except OSError:  # the client hung up: what these servers wait for
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/file.pdparams"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.stopped.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[[Behaviour], Misbehaving]]:
    servers: list[Misbehaving] = []

    def start(behaviour: Behaviour) -> Misbehaving:
        servers.append(Misbehaving(behaviour))
        return servers[-1]
    yield start
    for server in servers:
        server.stop()


def drip(headers_too: bool, stopped: threading.Event) -> Behaviour:
    """One byte every 0.2 s, forever (of the status line and headers too when `headers_too`)."""
    def behave(h: BaseHTTPRequestHandler) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n"
        if not headers_too:
            h.wfile.write(head)
            h.wfile.flush()
            head = b""
        for byte in head + b"x" * 1_000_000:
            if stopped.wait(0.2):
                return
            h.wfile.write(bytes([byte]))
            h.wfile.flush()
    return behave


@pytest.mark.parametrize("headers_too", [False, True], ids=["body", "headers"])
def test_a_server_dripping_bytes_is_cut_at_the_deadline(serve, tmp_path, monkeypatch, headers_too):
    """Each byte comes well within the per-read timeout; only the overall deadline stops it."""
    monkeypatch.setenv("SSLD_ZOO_DOWNLOAD_DEADLINE_S", "1.5")
    stopped = threading.Event()
    server = serve(drip(headers_too, stopped))
    start = time.monotonic()
    try:
        with pytest.raises(DownloadFailed, match=r"took longer than 1.5 s \(SSLD_ZOO_DOWNLOAD_DEADLINE_S\)"):
            download(server.url, tmp_path / "f.pdparams")
    finally:
        stopped.set()
    assert time.monotonic() - start < 4
    assert not (tmp_path / "f.pdparams").exists()


def endless(h: BaseHTTPRequestHandler) -> None:
    """200 with no Content-Length, then bytes until the client hangs up."""
    h.send_response(200)
    h.end_headers()
    while True:
        h.wfile.write(b"\0" * 65536)


def test_an_endless_body_is_cut_at_the_known_size_and_not_kept(serve, tmp_path):
    server = serve(endless)
    with pytest.raises(DownloadFailed, match="sent more than the 100,000 bytes the catalogue records for it"):
        download(server.url, tmp_path / "f.pdparams", size=100_000)
    assert list(tmp_path.iterdir()) == []


def test_an_endless_body_of_unknown_size_is_cut_at_the_configured_maximum(serve, tmp_path, monkeypatch):
    monkeypatch.setenv("SSLD_ZOO_DOWNLOAD_MAX_BYTES", "300000")
    server = serve(endless)
    with pytest.raises(DownloadFailed, match=r"more than the 300,000-byte limit \(SSLD_ZOO_DOWNLOAD_MAX_BYTES\)"):
        download(server.url, tmp_path / "f.pdparams")
    assert list(tmp_path.iterdir()) == []


def huge_length(h: BaseHTTPRequestHandler) -> None:
    h.send_response(200)
    h.send_header("Content-Length", str(10**12))
    h.end_headers()
    h.wfile.write(b"\0" * 65536)


def test_a_huge_content_length_is_refused_before_writing(serve, tmp_path):
    server = serve(huge_length)
    with pytest.raises(DownloadFailed, match=r"announces 1,000,000,000,000 bytes, more than the 4,294,967,296-byte "
                                             r"limit .* nothing was written"):
        download(server.url, tmp_path / "f.pdparams")
    assert list(tmp_path.iterdir()) == []


def test_a_resumed_part_already_past_the_cap_is_dropped(tmp_path):
    files = FileServer()
    files.files["f.pdparams"] = b"y" * 1000
    dest = tmp_path / "f.pdparams"
    partial_path(dest).write_bytes(b"x" * 2000)  # junk from elsewhere, larger than the file can be
    assert download(f"{files.url}/f.pdparams", dest, size=1000).read_bytes() == b"y" * 1000
    assert files.ranges == [None] and not partial_path(dest).exists()


@pytest.mark.parametrize("url", ["file:///etc/passwd", "data:,hello", "ftp://127.0.0.1/x.pdparams", "/etc/passwd",
                                 "gopher://127.0.0.1/x"])
def test_only_http_urls_are_fetched(tmp_path, url):
    with pytest.raises(DownloadFailed, match="only http: and https: URLs are fetched"):
        download(url, tmp_path / "f.pdparams")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("target, expected", [
    ("ftp://127.0.0.1/x.pdparams", "redirects to 'ftp://127.0.0.1/x.pdparams'; only http: and https: URLs"),
    ("file:///etc/passwd", "Redirection to url 'file:///etc/passwd' is not allowed"),  # urllib's own check
])
def test_a_redirect_away_from_http_is_refused(serve, tmp_path, target, expected):
    def redirect(h: BaseHTTPRequestHandler) -> None:
        h.send_response(302)
        h.send_header("Location", target)
        h.send_header("Content-Length", "0")
        h.end_headers()
    server = serve(redirect)
    with pytest.raises(DownloadFailed, match=expected):
        download(server.url, tmp_path / "f.pdparams")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", ["inf", "nan", "1e400", "-0", "0", "soon", "9" * 5000])
def test_a_deadline_out_of_range_is_one_line(tmp_path, monkeypatch, value):
    monkeypatch.setenv("SSLD_ZOO_DOWNLOAD_DEADLINE_S", value)
    with pytest.raises(SettingError, match=r"SSLD_ZOO_DOWNLOAD_DEADLINE_S=.* is not a number from 0.001 to "
                                           r"604,800 seconds") as caught:
        download("http://127.0.0.1:9/f.pdparams", tmp_path / "f.pdparams")
    assert caught.value.key == "SSLD_ZOO_DOWNLOAD_DEADLINE_S" and len(str(caught.value)) < 300


def test_a_server_that_accepts_and_never_answers_is_cut_at_the_deadline(tmp_path, monkeypatch):
    monkeypatch.setenv("SSLD_ZOO_DOWNLOAD_DEADLINE_S", "1")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        start = time.monotonic()
        with pytest.raises(DownloadFailed, match="took longer than 1 s"):
            download(f"http://127.0.0.1:{listener.getsockname()[1]}/f.pdparams", tmp_path / "f.pdparams")
    assert time.monotonic() - start < 3


def test_a_complete_download_is_published(tmp_path):
    files = FileServer()
    files.files["f.pdparams"] = b"z" * 5000
    dest = download(f"{files.url}/f.pdparams", tmp_path / "f.pdparams", size=5000)
    assert dest.read_bytes() == b"z" * 5000 and sorted(p.name for p in tmp_path.iterdir()) == ["f.pdparams"]
    assert (dest.stat().st_mode & 0o777) == 0o644


def test_a_part_that_is_not_a_regular_file_is_refused(tmp_path):
    dest = tmp_path / "f.pdparams"
    os.mkfifo(partial_path(dest))
    with pytest.raises(FileSystemError, match="is not a regular file"):
        download("http://127.0.0.1:9/f.pdparams", dest)


def test_resume_continues_a_cut_download(tmp_path):
    files = FileServer()
    files.files["f.pdparams"] = bytes(range(256)) * 40
    dest = tmp_path / "f.pdparams"
    partial_path(dest).write_bytes((bytes(range(256)) * 40)[:3000])
    assert download(f"{files.url}/f.pdparams", dest).read_bytes() == bytes(range(256)) * 40
    assert files.ranges == [3000]
