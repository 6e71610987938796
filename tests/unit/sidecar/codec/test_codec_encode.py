"""The V2 codec's encoding: JSON outputs and the binary extension's raw tensors."""

from __future__ import annotations

import json

import numpy as np

from sidecar.codec.encode import encode_response


def test_json_response_shape():
    body, header_len = encode_response(
        "m", "3", "r1", [("p", np.array([[0.25, 0.75]], dtype=np.float32))], {"p": False}
    )
    assert header_len is None
    assert json.loads(body) == {
        "model_name": "m",
        "model_version": "3",
        "id": "r1",
        "outputs": [{"name": "p", "datatype": "FP32", "shape": [1, 2], "data": [0.25, 0.75]}],
    }


def test_binary_response_puts_raw_tensor_after_json_header():
    arr = np.array([[1.5, 2.5]], dtype=np.float32)
    body, header_len = encode_response("m", "1", None, [("p", arr)], {"p": True})
    head = json.loads(body[:header_len])
    assert "id" not in head
    assert head["outputs"][0]["parameters"] == {"binary_data_size": 8}
    assert np.frombuffer(body[header_len:], dtype="<f4").tolist() == [1.5, 2.5]
