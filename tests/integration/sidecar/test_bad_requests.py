"""Every bad input gets its 4xx and a message that says what to fix; the sidecar keeps serving
everyone else, with unchanged memory."""

from __future__ import annotations

import contextlib
import json
import socket

import pytest
import requests

from sidecar.serving.dataplane import drain_ceiling

GOOD = {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0.5] * 64}]}


def _with(**changes):
    item = {**GOOD["inputs"][0], **changes}
    return json.dumps({"inputs": [item]}).encode()


CASES = [
    ("malformed JSON", "digits", b'{"inputs": [', 400, "not valid JSON"),
    (
        "wrong datatype",
        "digits",
        _with(datatype="INT64", data=[1] * 64),
        400,
        "datatype is INT64, the model expects FP32",
    ),
    (
        "wrong shape",
        "digits",
        _with(shape=[1, 32], data=[0.5] * 32),
        400,
        "dimension 1 is 32, the model expects 64",
    ),
    ("wrong input name", "digits", _with(name="pixels"), 400, "unknown input 'pixels'"),
    ("missing inputs", "digits", b'{"inputs": []}', 400, "non-empty 'inputs'"),
    ("element count", "digits", _with(data=[0.5] * 63), 400, "needs 64 elements, 'data' has 63"),
    ("non-numeric", "digits", _with(data=["abc"] * 64), 400, "non-numeric"),
    ("NaN", "digits", _with(data=[float("nan")] * 64), 400, "NaN or Inf"),
    ("list datatype", "digits", _with(datatype=["FP32"]), 400, "unknown datatype"),
    ("object datatype", "digits", _with(datatype={"a": 1}), 400, "unknown datatype"),
    (
        "string output parameters",
        "digits",
        json.dumps({**GOOD, "outputs": [{"name": "probabilities", "parameters": "x"}]}).encode(),
        400,
        "'parameters' must be an object",
    ),
    (
        "string flag",
        "digits",
        json.dumps({**GOOD, "parameters": {"binary_data_output": "false"}}).encode(),
        400,
        "binary_data_output must be true or false",
    ),
    ("booleans as FP32", "digits", _with(data=[True] * 64), 400, "must hold FP32 values"),
    ("FP32 overflow", "digits", _with(data=[1e39] * 64), 400, "out of range for FP32"),
    (
        "nesting unlike the shape",
        "digits",
        _with(shape=[2, 64], data=[[0.5] * 32] * 4),
        400,
        "nested as [4, 32] but the shape is [2, 64]",
    ),
    ("unknown model", "nope", json.dumps(GOOD).encode(), 404, "unknown model 'nope'"),
    ("unknown version", "digits/versions/7", json.dumps(GOOD).encode(), 404, "no version '7'"),
    (
        "oversized body",
        "digits",
        b" " * (4 << 20) + json.dumps(GOOD).encode(),
        413,
        "over 4194304 bytes",
    ),
]


@pytest.mark.parametrize(
    ("what", "model", "body", "status", "needle"), CASES, ids=[c[0] for c in CASES]
)
def test_each_bad_request_gets_its_status_and_message(sidecar, what, model, body, status, needle):
    resp = requests.post(f"{sidecar.url}/v2/models/{model}/infer", data=body, timeout=10)
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"].startswith("application/json")
    error = resp.json()["error"]
    assert needle in error
    assert "Traceback" not in error


def test_bad_traffic_leaves_serving_and_memory_intact(sidecar):
    url = f"{sidecar.url}/v2/models/digits/infer"
    small_cases = [c for c in CASES if c[0] != "oversized body"]
    with requests.Session() as session:
        for _ in range(20):  # settle allocator pools before measuring
            session.post(url, json=GOOD, timeout=10)
        before = sidecar.rss_bytes()
        for i in range(1500):
            _, model, body, status, _ = small_cases[i % len(small_cases)]
            resp = session.post(f"{sidecar.url}/v2/models/{model}/infer", data=body, timeout=10)
            assert resp.status_code == status
        good = session.post(url, json=GOOD, timeout=10)
        after = sidecar.rss_bytes()
    assert good.status_code == 200
    assert after - before < 16 << 20, f"RSS grew by {(after - before) >> 20} MiB"


def _status_line(port: int, head: bytes, body: bytes) -> tuple[bytes, bytes, bool]:
    """Send one raw request; the response's status line and headers, and whether the whole
    body could be sent (False: refused unread, the connection reset under the sender)."""
    sent = True
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        try:
            sock.sendall(body)
        except OSError:  # refused before the body was read: still answered
            sent = False
        data = b""
        with contextlib.suppress(OSError):
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
    status, _, headers = data.partition(b"\r\n")
    return status, headers.lower(), sent


def test_oversized_bodies_are_read_then_refused_413_json_up_to_the_drain_ceiling(sidecar):
    """As documented in sidecar/README.md: a body over the limit is read to its end (so a
    proxy in front gets the 413, not a reset) up to the drain ceiling."""
    limit = 4 << 20
    ceiling = drain_ceiling(limit)
    for size in (limit + 1, limit + (1 << 20) + 1, ceiling):
        head = (
            f"POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: application/json\r\nContent-Length: {size}\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        status, headers, sent = _status_line(sidecar.port, head, b" " * size)
        assert status.split(b" ")[1] == b"413", (size, status)
        assert b"content-type: application/json" in headers, (size, headers)
        assert sent, f"the body of {size} bytes was not read to its end"
    requests.post(f"{sidecar.url}/v2/models/digits/infer", json=GOOD, timeout=10).raise_for_status()


def test_bodies_beyond_the_drain_ceiling_are_refused_unread_in_json_and_closed(sidecar):
    size = drain_ceiling(4 << 20) + 1
    head = (
        f"POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n"
    ).encode()
    status, headers, _ = _status_line(sidecar.port, head, b" " * (1 << 20))
    assert status == b"HTTP/1.1 413 Request Entity Too Large", status
    assert b"content-type: application/json" in headers, headers
    assert b"connection: close" in headers, headers
