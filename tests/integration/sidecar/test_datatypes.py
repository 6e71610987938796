"""Integer and half-precision inputs over JSON, through a real sidecar: exact or refused."""

from __future__ import annotations

import pytest
import requests


@pytest.fixture
def identity(spawn_sidecar, identity_repository):
    return spawn_sidecar(identity_repository, "--workers", "1")


def _infer(proc, model: str, datatype: str, data: list) -> requests.Response:
    body = {"inputs": [{"name": "x", "shape": [1, len(data)], "datatype": datatype, "data": data}]}
    return requests.post(f"{proc.url}/v2/models/{model}/infer", json=body, timeout=30)


def test_integer_and_half_inputs_round_trip_or_are_refused(identity):
    ok = _infer(identity, "u8", "UINT8", [0, 7, 255])
    assert ok.status_code == 200, ok.text
    out = ok.json()["outputs"][0]
    assert (out["datatype"], out["data"]) == ("UINT8", [0, 7, 255])

    ok = _infer(identity, "i8", "INT8", [-128, 0, 127])
    assert ok.status_code == 200, ok.text
    assert ok.json()["outputs"][0]["data"] == [-128, 0, 127]

    for model, datatype, data, needle in [
        ("u8", "UINT8", [256, 0, 0], "value 256 is out of range for UINT8"),
        ("u8", "UINT8", [-1, 0, 0], "value -1 is out of range for UINT8"),
        ("i8", "INT8", [300, -200, 0], "out of range for INT8"),
        ("h16", "FP16", [1e6, 0, 0], "value 1000000.0 is out of range for FP16"),
        ("echo", "FP32", [True, False, True], "must hold FP32 values"),
    ]:
        resp = _infer(identity, model, datatype, data)
        assert resp.status_code == 400, (model, data, resp.text)
        assert needle in resp.json()["error"]
