"""`edge: {metrics_listen: ...}`: a third listener for a cluster's Prometheus that answers only
GET /metrics (the edge's) and GET /metrics/sidecars/<device> (a sidecar's, relayed from its unix
socket), with no token, and nothing of the admin API."""

from __future__ import annotations

import http.server
import socketserver
import threading
from collections.abc import Iterator

import pytest

SIDECAR_TEXT = "# TYPE weir_fake_sidecar gauge\nweir_fake_sidecar 1\n"


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class _SidecarMetrics(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = SIDECAR_TEXT.encode() if self.path == "/metrics" else b"{}"
        self.send_response(200 if self.path == "/metrics" else 404)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def address_string(self) -> str:
        return "unix"

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def sidecar_socket(harness) -> Iterator[None]:
    """A fake sidecar's /metrics on the runtime directory's socket for device `cpu`."""
    path = harness.runtime.sidecar_socket("cpu")
    path.parent.mkdir(parents=True, exist_ok=True)
    server = _UnixHTTPServer(str(path), _SidecarMetrics)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield
    server.shutdown()
    server.server_close()


def test_the_metrics_listener_answers_metrics_without_a_token_and_nothing_else(
    harness, upstreams, tools, sidecar_socket
) -> None:
    metrics = f"127.0.0.1:{tools.free_port()}"
    harness.start(tools.two_versions(upstreams), metrics_listen=metrics)
    status, headers, text = tools.request("GET", metrics, "/metrics")
    assert status == 200, text
    assert headers["content-type"].startswith("text/plain")
    assert "weir_edge_config_info" in text
    assert 'weir_edge_rate_limited_total{model="digits"} 0' in text
    status, _, text = tools.request("GET", metrics, "/metrics/sidecars/cpu")
    assert (status, text) == (200, SIDECAR_TEXT)
    # No admin route, with or without the token: a V2 JSON 404.
    auth = {"Authorization": f"Bearer {tools.TOKEN}"}
    for method, path in [
        ("GET", "/admin/status"),
        ("GET", "/admin/metrics"),
        ("GET", "/admin/checksum"),
        ("POST", "/admin/models/digits/kill"),
        ("GET", "/v2/health/ready"),
        ("GET", "/metrics/sidecars/0"),
        ("GET", "/"),
    ]:
        status, headers, body = tools.request(method, metrics, path, headers=auth)
        assert status == 404, (method, path, status, body)
        assert headers["content-type"] == "application/json", (method, path)
        assert "error" in body, (method, path, body)
    for path in ("/metrics", "/metrics/sidecars/cpu"):
        status, _, body = tools.request("POST", metrics, path, b"x")
        assert status == 405 and "error" in body, (path, status, body)
    # The kill went nowhere: the model still answers from its release.
    assert harness.status()["models"]["digits"]["killed"] is False


def test_without_metrics_listen_there_is_no_third_listener(harness, upstreams, tools) -> None:
    harness.start(tools.two_versions(upstreams))
    assert harness.edge is not None
    conf = (harness.runtime.current / "nginx.conf").read_text()
    assert conf.count("server {") == 2
    assert 'phase.content").metrics()' not in conf
