"""The V2 codec's decoding: envelopes, the binary extension's split, output selection."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sidecar.codec.decode import decode_request
from sidecar.codec.tensors import tensor_from_raw
from sidecar.errors import BadRequest


def _doc(**inputs_extra):
    item = {"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3, 4]}
    item.update(inputs_extra)
    return {"id": "r1", "inputs": [item]}


def test_json_request_keeps_id_inputs_and_data():
    req = decode_request(json.dumps(_doc()).encode(), None)
    assert req.id == "r1"
    assert [(t.name, t.datatype, t.shape, t.data) for t in req.inputs] == [
        ("x", "FP32", [2, 2], [1, 2, 3, 4])
    ]
    assert req.outputs is None


def test_binary_inputs_are_sliced_in_order_by_binary_data_size():
    a = np.arange(4, dtype=np.float32)
    b = np.arange(3, dtype=np.int64)
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "a",
                    "shape": [4],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": a.nbytes},
                },
                {
                    "name": "b",
                    "shape": [3],
                    "datatype": "INT64",
                    "parameters": {"binary_data_size": b.nbytes},
                },
            ]
        }
    ).encode()
    req = decode_request(head + a.tobytes() + b.tobytes(), str(len(head)))
    assert tensor_from_raw(req.inputs[0], 4).tolist() == a.tolist()
    assert tensor_from_raw(req.inputs[1], 3).tolist() == b.tolist()


@pytest.mark.parametrize(
    ("body", "header", "needle"),
    [
        (b"{not json", None, "not valid JSON"),
        (b"[1, 2]", None, "JSON object"),
        (b"{}", None, "non-empty 'inputs'"),
        (json.dumps(_doc(datatype="FLOAT")).encode(), None, "unknown datatype"),
        (json.dumps(_doc(shape=[2, -1])).encode(), None, "non-negative integers"),
        (json.dumps(_doc()).encode(), "abc", "digits only"),
        # unhashable or non-string datatypes are the client's mistake, not a 500
        (json.dumps(_doc(datatype=["FP32"])).encode(), None, "unknown datatype"),
        (json.dumps(_doc(datatype={"a": 1})).encode(), None, "unknown datatype"),
        (json.dumps(_doc(datatype=32)).encode(), None, "unknown datatype"),
        (json.dumps(_doc(parameters="x")).encode(), None, "'parameters' must be an object"),
        (
            json.dumps({**_doc(), "outputs": [{"name": "p", "parameters": "x"}]}).encode(),
            None,
            "output 'p': 'parameters' must be an object",
        ),
        (
            json.dumps({**_doc(), "outputs": [{"name": "p", "parameters": [1]}]}).encode(),
            None,
            "output 'p': 'parameters' must be an object",
        ),
        (json.dumps({**_doc(), "outputs": [1]}).encode(), None, "needs a 'name' string"),
        # flags are JSON booleans: "false" is not false
        (
            json.dumps({**_doc(), "parameters": {"binary_data_output": "false"}}).encode(),
            None,
            "binary_data_output must be true or false",
        ),
        (
            json.dumps({**_doc(), "parameters": {"binary_data_output": 1}}).encode(),
            None,
            "binary_data_output must be true or false",
        ),
        (
            json.dumps(
                {**_doc(), "outputs": [{"name": "p", "parameters": {"binary_data": "true"}}]}
            ).encode(),
            None,
            "binary_data must be true or false",
        ),
        (json.dumps(_doc()).encode(), "999999", "length of the JSON part"),
        (
            json.dumps(
                {
                    "inputs": [
                        {
                            "name": "x",
                            "shape": [1],
                            "datatype": "FP32",
                            "parameters": {"binary_data_size": 8},
                        }
                    ]
                }
            ).encode(),
            "LEN",
            "runs past the end",
        ),
        (
            json.dumps(
                {
                    "inputs": [
                        {
                            "name": "x",
                            "shape": [1],
                            "datatype": "BOOL",
                            "parameters": {"binary_data_size": True},
                        }
                    ]
                }
            ).encode()
            + b"\x01",
            "LEN-1",
            "binary_data_size must be a byte count",
        ),
    ],
)
def test_malformed_envelopes_say_what_is_wrong(body, header, needle):
    if header == "LEN":
        header = str(len(body))
    elif header == "LEN-1":
        header = str(len(body) - 1)
    with pytest.raises(BadRequest, match=needle):
        decode_request(body, header)


def test_unclaimed_binary_bytes_are_refused():
    head = json.dumps(_doc()).encode()
    with pytest.raises(BadRequest, match="not claimed"):
        decode_request(head + b"\0" * 8, str(len(head)))


def test_flags_and_sizes_take_real_booleans_and_integers():
    doc = {**_doc(), "parameters": {"binary_data_output": False}, "outputs": [{"name": "p"}]}
    req = decode_request(json.dumps(doc).encode(), None)
    assert req.binary_default is False and req.outputs == {"p": False}


def test_outputs_selection_and_binary_flags():
    doc = {
        "inputs": _doc()["inputs"],
        "parameters": {"binary_data_output": True},
        "outputs": [{"name": "p"}, {"name": "q", "parameters": {"binary_data": False}}],
    }
    req = decode_request(json.dumps(doc).encode(), None)
    assert req.outputs == {"p": True, "q": False}
