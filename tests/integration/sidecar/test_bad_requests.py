"""Every bad input gets its 4xx and a message that says what to fix; the sidecar keeps serving
everyone else, with unchanged memory."""

from __future__ import annotations

import json

import pytest
import requests

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
