"""`weir probe` and `probe.get` against real servers, on a unix socket and on TCP."""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from scripts.fleet import probe


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status, body = (200, b"ready") if self.path == "/v2/health/ready" else (503, b"loading")
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def address_string(self) -> str:  # a unix socket has no client address
        return "local"

    def log_message(self, *_args: object) -> None:
        pass


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def _serve(server: socketserver.BaseServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def unix_socket(tmp_path: Path) -> Iterator[str]:
    path = str(tmp_path / "sidecar.sock")
    server = UnixServer(path, Handler)
    _serve(server)
    yield path
    server.shutdown()
    server.server_close()


@pytest.fixture
def tcp_address() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    _serve(server)
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_get_over_a_unix_socket_and_tcp(unix_socket: str, tcp_address: str) -> None:
    assert probe.get(f"unix:{unix_socket}", "/v2/health/ready") == (200, b"ready")
    assert probe.get(tcp_address, "/v2/health/live") == (503, b"loading")


def test_main_exits_0_only_on_200(unix_socket: str, tcp_address: str, capsys) -> None:
    assert probe.main(["--socket", unix_socket]) == 0
    assert probe.main(["--address", tcp_address, "--path", "/v2/health/live"]) == 1
    assert "answered 503: loading" in capsys.readouterr().err


def test_main_says_when_nothing_answers(tmp_path: Path, capsys) -> None:
    assert probe.main(["--socket", str(tmp_path / "none.sock"), "--timeout", "0.5"]) == 1
    assert "nothing answers at unix:" in capsys.readouterr().err
