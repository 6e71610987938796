"""Errors nginx answers itself are V2 JSON on both listeners, never HTML; malformed versions and
paths get a clear answer; the admin API refuses wrong methods and malformed splits."""

from __future__ import annotations

import json
import socket

import pytest

RAW = {
    "bad request line": (b"GARBAGE\r\n\r\n", 400),
    "20 KB header": (b"GET /v2 HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n", 431),
    "10 KB URI": (b"GET /v2/" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    "gzip, chunked": (
        b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\n"
        b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        501,
    ),
    "HTTP/3.0": (b"GET /v2 HTTP/3.0\r\nHost: x\r\n\r\n", 505),
}


def _raw(address: str, data: bytes) -> tuple[int, dict[str, str], bytes]:
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize("case", sorted(RAW))
def test_nginx_errors_are_json_on_both_listeners(harness, upstreams, tools, case) -> None:
    harness.start(tools.two_versions(upstreams))
    data, expected = RAW[case]
    for address in (harness.listen, harness.admin):
        status, headers, body = _raw(address, data)
        assert status == expected, (address, body[:200])
        assert headers["content-type"] == "application/json"
        assert b"<html" not in body.lower()
        assert json.loads(body)["error"]


def test_admin_errors_nginx_answers_are_json(harness, upstreams, tools) -> None:
    harness.start(tools.two_versions(upstreams))
    status, headers, body = tools.request(
        "POST",
        harness.admin,
        "/admin/models/digits/split",
        b"{" + b" " * 70_000 + b"}",
        {"Authorization": f"Bearer {tools.TOKEN}"},
    )
    assert status == 413 and headers["content-type"] == "application/json" and body["error"]


def test_a_malformed_version_is_named_as_such(harness, upstreams, tools) -> None:
    harness.start(tools.two_versions(upstreams))
    for path in ("/v2/models/digits/versions/1.0/infer", "/v2/models/digits/versions/x"):
        status, _, body = tools.request("POST", harness.listen, path, {})
        assert status == 400, path
        assert "version" in body["error"] and "whole number" in body["error"]
        assert "unknown model" not in body["error"]
    status, _, body = tools.request("POST", harness.listen, "/v2/models/nope/infer", {})
    assert status == 404 and "unknown model nope" in body["error"]


def test_metadata_forwards_the_normalised_path(harness, upstreams, tools) -> None:
    harness.start(tools.two_versions(upstreams))
    status, headers, body = tools.request(
        "GET", harness.listen, "/v2/models/digits/versions/1/../2"
    )
    assert status == 200 and headers["x-weir-model-version"] == "2" and body["versions"] == ["2"]
    assert upstreams["2"].count("paths")[-1] == "/v2/models/digits/versions/2"
    tools.request("GET", harness.listen, "/v2/models/digits/versions/2/./ready")
    assert upstreams["2"].count("paths")[-1] == "/v2/models/digits/versions/2/ready"


@pytest.mark.parametrize(
    "body",
    [
        [0, 100],
        '{"1": 0x64}',
        '{"1": 0x32, "2": 0x32}',
        '{"1": NaN, "2": 100}',
        '{"1": 33.33, "2": 66.67}',
        '{"1": -10, "2": 110}',
        '{"1": 50, "2": 40}',
        '{"1": "100"}',
        "{}",
    ],
)
def test_admin_split_refuses_malformed_weights(harness, upstreams, tools, body) -> None:
    harness.start(tools.two_versions(upstreams))
    payload = body.encode() if isinstance(body, str) else body
    status, _, answer = harness.admin_call("PUT", "/admin/models/digits/split", payload)
    assert status == 400 and answer["error"]
    assert harness.status()["models"]["digits"]["weights"]["override"] is None


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/admin/status"),
        ("DELETE", "/admin/status"),
        ("POST", "/admin/checksum"),
        ("GET", "/admin/settings/reload"),
        ("POST", "/metrics"),
        ("DELETE", "/admin/models/digits"),
        ("GET", "/admin/models/digits/kill"),
        ("GET", "/admin/models/digits/split"),
    ],
)
def test_admin_routes_refuse_the_wrong_method(harness, upstreams, tools, method, path) -> None:
    harness.start(tools.two_versions(upstreams))
    status, headers, body = harness.admin_call(method, path)
    assert status == 405 and headers["content-type"] == "application/json" and body["error"]


def test_a_malformed_body_in_a_model_location_is_json(harness, upstreams, tools) -> None:
    harness.start(tools.two_versions(upstreams))
    data = (
        b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\n"
        b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"
    )
    status, headers, body = _raw(harness.listen, data)
    assert status == 400 and headers["content-type"] == "application/json"
    assert "malformed chunked" in json.loads(body)["error"]
    assert int(headers["content-length"]) == len(body)
    assert upstreams["1"].count() + upstreams["2"].count() == 0


def test_the_sidecars_own_400_passes_with_its_message(harness, upstreams, tools) -> None:
    harness.start(tools.two_versions(upstreams))
    for version in ("1", "2"):
        upstreams[version].control(status=400)
    status, headers, body = harness.infer("digits")
    assert status == 400 and body == {"error": "told to answer 400"}
    assert headers["content-type"].startswith("application/json")
