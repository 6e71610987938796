"""Hostile bodies through a real sidecar: each is a client's mistake, so each is a 4xx in V2
JSON without the failure header; no server failure is counted and the sidecar serves on.
A real server failure (the model fails at run time) carries `X-Weir-Failure: server`."""

from __future__ import annotations

import json
import socket
import struct

import pytest
import requests

from sidecar.errors import FAILURE_HEADER, SERVER_FAILURE

ITEM = {"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0.5] * 64}
GOOD = json.dumps({"inputs": [ITEM]}).encode()
ITEM_JSON = json.dumps(ITEM)
SERVER_REASONS = ("internal", "inference_error", "unavailable", "queue_full")


def _deep(levels: int) -> str:
    return "[" * levels + "]" * levels


def _body(**envelope: str) -> bytes:
    """An envelope around the good input, fields given as raw JSON text."""
    fields = {"inputs": f"[{ITEM_JSON}]", **envelope}
    return ("{" + ",".join(f'"{k}":{v}' for k, v in fields.items()) + "}").encode()


def _item(**fields: str) -> bytes:
    raw = {k: json.dumps(v) for k, v in ITEM.items()} | fields
    return ("{" + '"inputs":[{' + ",".join(f'"{k}":{v}' for k, v in raw.items()) + "}]}").encode()


def _binary(size: str) -> tuple[bytes, dict[str, str]]:
    head = (
        '{"inputs":[{"name":"input","shape":[1,64],"datatype":"FP32",'
        f'"parameters":{{"binary_data_size":{size}}}}}]}}'
    ).encode()
    return head + b"\0" * 256, {"Inference-Header-Content-Length": str(len(head))}


# (what, body, extra headers, status, words the message must hold)
CASES = [
    ("surrogate in id", _body(id='"\\ud800"'), {}, 400, "surrogate"),
    ("low surrogate in id", _body(id='"\\udc00x"'), {}, 400, "surrogate"),
    ("surrogate in input name", _item(name='"\\ud800"'), {}, 400, "surrogate"),
    ("surrogate in parameters", _body(parameters='{"\\ud801": 1}'), {}, 400, "surrogate"),
    (
        "surrogate in BYTES data",
        _item(datatype='"BYTES"', data='["\\udfff"]', shape="[1]"),
        {},
        400,
        "surrogate",
    ),
    ("surrogate in output name", _body(outputs='[{"name": "\\ud800"}]'), {}, 400, "surrogate"),
    ("raw encoded surrogate", b'{"id":"\xed\xa0\x80",' + GOOD[1:], {}, 400, "UTF-8"),
    ("1100 levels in data", _item(data=_deep(1100)), {}, 400, "nested"),
    ("1100 levels in parameters", _body(parameters='{"a":' + _deep(1100) + "}"), {}, 400, "nested"),
    ("100 levels in parameters", _body(parameters='{"a":' + _deep(100) + "}"), {}, 400, "nested"),
    ("100 levels in an unknown field", _body(extra=_deep(100)), {}, 400, "nested"),
    (
        "100 levels in input parameters",
        _item(parameters='{"a":' + _deep(100) + "}"),
        {},
        400,
        "nested",
    ),
    ("100 levels in data", _item(data=_deep(100)), {}, 400, "nested"),
    (
        "100 levels in a binary flag",
        _body(parameters='{"binary_data_output":' + _deep(100) + "}"),
        {},
        400,
        "nested",
    ),
    ("60 levels as datatype", _item(datatype=_deep(60)), {}, 400, "unknown datatype a JSON array"),
    ("1e999 in data", _item(data="[1e999]"), {}, 400, "too large for a 64-bit float"),
    ("10^400 in data", _item(data="[1" + "0" * 400 + "]"), {}, 400, "too large for a 64-bit float"),
    ("10^400 in shape", _item(shape="[1, 1" + "0" * 400 + "]"), {}, 400, "too large"),
    ("10^20 in shape", _item(shape="[1, 100000000000000000000]"), {}, 400, "'shape'"),
    (
        "duplicate inputs key",
        _body(inputs=f"[{ITEM_JSON}]").replace(b"{", b'{"inputs":[],', 1),
        {},
        400,
        "appears twice",
    ),
    (
        "duplicate key in an input",
        _item(name='"input","name":"other"'),
        {},
        400,
        "'name' appears twice",
    ),
    (
        "duplicate key in parameters",
        _body(parameters='{"a":1,"a":2}'),
        {},
        400,
        "'a' appears twice",
    ),
    (
        "duplicate key, colon in id",
        _body(id='"a:b"', parameters='{"a":1,"a":2}'),
        {},
        400,
        "appears twice",
    ),
    ("array envelope", b"[]", {}, 400, "JSON object"),
    ("string envelope", b'"inputs"', {}, 400, "JSON object"),
    ("number envelope", b"1", {}, 400, "JSON object"),
    ("null envelope", b"null", {}, 400, "JSON object"),
    ("empty body", b"", {}, 400, "not valid JSON"),
    ("trailing garbage", GOOD + b"x", {}, 400, "not valid JSON"),
    ("two documents", GOOD + GOOD, {}, 400, "not valid JSON"),
    ("id a number", _body(id="1"), {}, 400, "'id' must be a string"),
    ("id an object", _body(id="{}"), {}, 400, "'id' must be a string"),
    ("parameters a list", _body(parameters="[]"), {}, 400, "'parameters' must be an object"),
    ("parameters a string", _body(parameters='"x"'), {}, 400, "'parameters' must be an object"),
    ("outputs an object", _body(outputs="{}"), {}, 400, "'outputs' must be a list"),
    ("outputs entry a number", _body(outputs="[1]"), {}, 400, "'outputs' needs a 'name'"),
    ("outputs name a number", _body(outputs='[{"name": 1}]'), {}, 400, "'outputs' needs a 'name'"),
    ("unknown output", _body(outputs='[{"name": "nope"}]'), {}, 400, "unknown output 'nope'"),
    ("inputs an object", b'{"inputs": {}}', {}, 400, "non-empty 'inputs'"),
    ("inputs entry a number", b'{"inputs": [1]}', {}, 400, "must be an object"),
    ("input name a number", _item(name="1"), {}, 400, "'name' string"),
    ("shape a string", _item(shape='"1,64"'), {}, 400, "'shape'"),
    ("negative dimension", _item(shape="[-1, 64]"), {}, 400, "'shape'"),
    ("fractional dimension", _item(shape="[1.5, 64]"), {}, 400, "'shape'"),
    ("boolean dimension", _item(shape="[true, 64]"), {}, 400, "'shape'"),
    ("datatype a number", _item(datatype="1"), {}, 400, "unknown datatype"),
    ("invalid UTF-8", b'{"id":"\xff",' + GOOD[1:], {}, 400, "UTF-8"),
    ("UTF-8 BOM", b"\xef\xbb\xbf" + GOOD, {}, 400, "byte order mark"),
    ("UTF-16 body", json.dumps({"inputs": [ITEM]}).encode("utf-16"), {}, 400, "not valid JSON"),
    ("NaN literal", _item(data="[NaN" + ",0.5" * 63 + "]"), {}, 400, "NaN or Inf"),
    ("-Infinity literal", _item(data="[-Infinity" + ",0.5" * 63 + "]"), {}, 400, "NaN or Inf"),
    ("NaN and a surrogate", _body(id='"\\ud800"', parameters='{"x": NaN}'), {}, 400, "surrogate"),
    ("NaN and 1100 levels", _body(id=_deep(1100), parameters='{"x": NaN}'), {}, 400, "nested"),
    ("NaN and 100 levels", _body(extra=_deep(100), parameters='{"x": NaN}'), {}, 400, "nested"),
    ("NaN and a duplicate", _body(parameters='{"x": NaN, "x": 1}'), {}, 400, "appears twice"),
    ("NaN and 1e999", _body(parameters='{"x": NaN, "y": 1e999}'), {}, 400, "64-bit float"),
    ("NaN and a BOM", b"\xef\xbb\xbf" + _body(parameters='{"x": NaN}'), {}, 400, "byte order mark"),
    ("control character", _body(id='"a\x01b"'), {}, 400, "not valid JSON"),
    ("header length not digits", GOOD, {"Inference-Header-Content-Length": "abc"}, 400, "digits"),
    ("header length negative", GOOD, {"Inference-Header-Content-Length": "-5"}, 400, "digits"),
    ("header length signed", GOOD, {"Inference-Header-Content-Length": "+12"}, 400, "digits"),
    (
        "header length zero",
        GOOD,
        {"Inference-Header-Content-Length": "0"},
        400,
        "length of the JSON",
    ),
    (
        "header length past the body",
        GOOD,
        {"Inference-Header-Content-Length": "99999"},
        400,
        "length of the JSON",
    ),
    (
        "header length 10^30",
        GOOD,
        {"Inference-Header-Content-Length": "1" + "0" * 30},
        400,
        "digits",
    ),
    (
        "header length mid-JSON",
        GOOD,
        {"Inference-Header-Content-Length": "10"},
        400,
        "not valid JSON",
    ),
    ("binary size negative", *_binary("-1"), 400, "binary_data_size"),
    ("binary size fractional", *_binary("1.5"), 400, "binary_data_size"),
    ("binary size a string", *_binary('"256"'), 400, "binary_data_size"),
    ("binary size boolean", *_binary("true"), 400, "binary_data_size"),
    ("binary size huge", *_binary("1000000000000000000"), 400, "runs past the end"),
    ("binary size 10^400", *_binary("1" + "0" * 400), 400, "64-bit float"),
    ("binary size short", *_binary("255"), 400, "not claimed"),
]


def _server_failures(sidecar) -> float:
    return sum(
        sidecar.metric("weir_inference_request_failure_total", reason=reason)
        for reason in SERVER_REASONS
    )


@pytest.mark.parametrize(
    ("what", "body", "headers", "status", "needle"), CASES, ids=[c[0] for c in CASES]
)
def test_each_hostile_body_is_a_client_error(sidecar, what, body, headers, status, needle):
    before = _server_failures(sidecar)
    resp = requests.post(
        f"{sidecar.url}/v2/models/digits/infer", data=body, headers=headers, timeout=10
    )
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"].startswith("application/json")
    assert FAILURE_HEADER not in resp.headers
    error = resp.json()["error"]
    assert needle in error, error
    assert "Traceback" not in error
    assert _server_failures(sidecar) == before
    ok = requests.post(f"{sidecar.url}/v2/models/digits/infer", data=GOOD, timeout=10)
    assert ok.status_code == 200, ok.text


def test_hostile_traffic_leaves_no_server_failure_and_serving_intact(sidecar):
    before = _server_failures(sidecar)
    with requests.Session() as session:
        for i in range(400):
            _, body, headers, status, _ = CASES[i % len(CASES)]
            resp = session.post(
                f"{sidecar.url}/v2/models/digits/infer", data=body, headers=headers, timeout=10
            )
            assert resp.status_code == status
        good = session.post(f"{sidecar.url}/v2/models/digits/infer", data=GOOD, timeout=10)
    assert good.status_code == 200
    assert good.json()["outputs"][0]["name"]
    assert _server_failures(sidecar) == before
    assert "Traceback" not in sidecar.log_text()


def test_a_client_error_never_carries_the_failure_header(sidecar):
    for model, status in (("digits", 400), ("nope", 404)):
        resp = requests.post(f"{sidecar.url}/v2/models/{model}/infer", data=b"{", timeout=10)
        assert resp.status_code == status
        assert FAILURE_HEADER not in resp.headers


def test_the_models_own_failure_is_a_500_marked_as_the_servers(spawn_sidecar, fragile_repository):
    proc = spawn_sidecar(fragile_repository, "--workers", "1")
    url = f"{proc.url}/v2/models/fragile/infer"
    bad = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}
    resp = requests.post(url, json=bad, timeout=10)
    assert resp.status_code == 500, resp.text
    assert resp.headers[FAILURE_HEADER] == SERVER_FAILURE
    assert "error" in resp.json()
    good = {"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [1]}]}
    ok = requests.post(url, json=good, timeout=10)
    assert ok.status_code == 200
    assert FAILURE_HEADER not in ok.headers


def _abort(port: int, request: bytes) -> None:
    """Send a request and reset the connection without waiting for the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.sendall(request)


def test_clients_that_go_away_are_counted_not_logged(spawn_sidecar, repository):
    proc = spawn_sidecar(repository, "--workers", "1")
    big = json.dumps({"inputs": [{**ITEM, "shape": [256, 64], "data": [0.5] * (256 * 64)}]})
    infer = (
        "POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(big)}\r\n\r\n{big}"
    ).encode()
    bad = b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n{"
    metadata = b"GET /v2/models/digits HTTP/1.1\r\nHost: x\r\n\r\n"
    for _ in range(30):
        for request in (infer, bad, metadata):
            _abort(proc.port, request)
    assert requests.post(f"{proc.url}/v2/models/digits/infer", data=GOOD, timeout=10).ok
    log = proc.log_text()
    assert "Broken pipe" not in log and "Connection reset" not in log, log
    assert "Traceback" not in log and "[ERROR]" not in log, log
    assert proc.metric("weir_client_disconnects_total") >= 1
