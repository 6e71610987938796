"""The admin API client against a real HTTP server on loopback: token, answers, refusals."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from scripts.edge.admin_client import AdminClient, AdminError, admin_refusal, token_or_none
from scripts.edge.revisions import switch_current
from scripts.runtime import RuntimeDir


class Handler(BaseHTTPRequestHandler):
    seen: list[dict[str, object]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        Handler.seen.append(
            {
                "method": self.command,
                "path": self.path,
                "auth": self.headers.get("Authorization"),
                "body": body,
                "type": self.headers.get("Content-Type"),
            }
        )
        if self.path == "/text":
            payload, kind, status = b"plain words\n", "text/plain", 200
        elif self.path == "/missing":
            payload, kind, status = b'{"error": "no model nope"}', "application/json", 404
        else:
            payload, kind, status = b'{"ok": true}', "application/json", 200
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    Handler.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_request_carries_the_token_and_its_json_body(server: str) -> None:
    status, data = AdminClient(server, "s3cret").request("PUT", "/admin/x", {"1": 100})
    assert (status, data) == (200, {"ok": True})
    (seen,) = Handler.seen
    assert seen["auth"] == "Bearer s3cret"
    assert seen["type"] == "application/json" and json.loads(seen["body"]) == {"1": 100}


def test_without_a_token_no_authorization_header_is_sent(server: str) -> None:
    AdminClient(server, None).request("GET", "/admin/status")
    assert Handler.seen[0]["auth"] is None


def test_a_non_json_answer_comes_back_as_text(server: str) -> None:
    assert AdminClient(server, None).request("GET", "/text") == (200, "plain words\n")


def test_checked_raises_with_the_status_and_the_edge_s_message(server: str) -> None:
    client = AdminClient(server, None)
    assert client.checked("GET", "/fine") == {"ok": True}
    with pytest.raises(AdminError, match=r"GET /missing -> 404: no model nope") as caught:
        client.checked("GET", "/missing")
    assert caught.value.status == 404


def test_nothing_listening_says_to_start_the_edge() -> None:
    with pytest.raises(AdminError, match=r"does not answer .*is the edge running"):
        AdminClient("127.0.0.1:9", None, timeout=1.0).request("GET", "/admin/status")


def test_for_runtime_reads_the_applied_revision_and_the_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = RuntimeDir(tmp_path)
    runtime.ensure()
    with pytest.raises(AdminError, match="no applied release") as info:
        AdminClient.for_runtime(runtime)
    assert "`weir edge FILE` or `weir up FILE`" in str(info.value)
    assert "`weir apply FILE` first" not in str(info.value)  # apply never starts an edge
    revision = runtime.revisions / "r1"
    revision.mkdir()
    (revision / "settings.json").write_text(json.dumps({"admin_listen": "127.0.0.1:9901"}))
    switch_current(runtime, revision)
    monkeypatch.setenv("WEIR_ADMIN_TOKEN", "from-env")
    client = AdminClient.for_runtime(runtime)
    assert (client.address, client.token) == ("127.0.0.1:9901", "from-env")


def test_a_refusal_explains_401_and_403(tmp_path: Path) -> None:
    runtime = RuntimeDir(tmp_path)
    forbidden = admin_refusal(runtime, "a:1", 403, {"error": "wrong admin token"})
    assert "answered 403 wrong admin token" in forbidden and "differs from the edge's" in forbidden
    missing = admin_refusal(runtime, "a:1", 401, {"error": "send the admin token"})
    assert "your shell has no admin token" in missing
    assert (
        admin_refusal(runtime, "a:1", 500, "boom\n")
        == "the edge's admin API at a:1 answered 500 boom"
    )


def test_an_unreadable_token_file_is_no_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WEIR_ADMIN_TOKEN", raising=False)
    runtime = RuntimeDir(tmp_path)
    runtime.ensure()
    runtime.token_file.write_text("t\n")
    runtime.token_file.chmod(0o644)
    assert token_or_none(runtime) is None
