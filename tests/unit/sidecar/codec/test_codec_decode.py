"""The V2 codec: envelopes, JSON and binary tensors, and the response encoding."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from sidecar.datatypes import V2_TO_NUMPY
from sidecar.errors import BadRequest
from sidecar.protocol import (
    InputTensor,
    check_fp32_range,
    decode_request,
    encode_response,
    tensor_from_json,
    tensor_from_raw,
)


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


@pytest.mark.parametrize("data", [[1, 2, 3, 4], [[1, 2], [3, 4]]])
def test_flat_and_nested_data_decode_row_major(data):
    tensor = InputTensor("x", "FP32", [2, 2], data)
    arr = tensor_from_json(tensor, 4)
    assert arr.dtype == np.float32
    assert arr.tolist() == [[1, 2], [3, 4]]


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


def test_bytes_tensors_decode_from_length_prefixed_binary():
    payload = b"".join(struct.pack("<I", len(s)) + s for s in (b"ab", b"", b"xyz"))
    tensor = InputTensor("s", "BYTES", [3], raw=memoryview(payload))
    assert tensor_from_raw(tensor, 3).tolist() == [b"ab", b"", b"xyz"]


@pytest.mark.parametrize(
    ("body", "header", "needle"),
    [
        (b"{not json", None, "not valid JSON"),
        (b"[1, 2]", None, "JSON object"),
        (b"{}", None, "non-empty 'inputs'"),
        (json.dumps(_doc(datatype="FLOAT")).encode(), None, "unknown datatype"),
        (json.dumps(_doc(shape=[2, -1])).encode(), None, "non-negative integers"),
        (json.dumps(_doc()).encode(), "abc", "must be an integer"),
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


@pytest.mark.parametrize(
    ("datatype", "data", "needle"),
    [
        ("FP32", ["a", "b", "c", "d"], "non-numeric"),
        ("INT32", [1.5, 2, 3, 4], "INT32"),
        ("FP32", [[1, 2], [3]], "ragged|elements"),
        ("FP32", [1, 2, 3], "needs 4 elements"),
        ("BOOL", [1, 0, 1, 0], "BOOL"),
        # booleans are numbers only to BOOL
        ("FP32", [True, False, True, False], "FP32"),
        ("INT64", [True, False, True, True], "INT64"),
        ("UINT8", [[True, False], [True, False]], "UINT8"),
        # out-of-range values are refused, naming the input, the value, the range, the type
        ("INT8", [300, -200, 0, 0], r"input 'x': value -200 is out of range for INT8 .*-128 to 1"),
        ("INT32", [2**40, 0, 0, 0], r"value 1099511627776 is out of range for INT32"),
        ("UINT8", [256, 0, 0, 0], r"value 256 is out of range for UINT8 .*0 to 255"),
        ("UINT32", [-1, 0, 0, 0], r"value -1 is out of range for UINT32"),
        ("UINT64", [-1, 0, 0, 0], r"value -1 is out of range for UINT64"),
        # beyond int64, numpy decodes to float64 or object: still exact, or out of range
        ("INT64", [2**63, 0, 0, 0], r"value 9223372036854775808 is out of range for INT64"),
        ("UINT64", [2**64, 0, 0, 0], r"value 18446744073709551616 is out of range for UINT64"),
        ("INT8", [2**70, 0, 0, 0], r"value 1180591620717411303424 is out of range for INT8"),
        ("UINT64", [2**64 - 1, 1.5, 0, 0], "UINT64"),
        ("FP16", [1e6, 0, 0, 0], r"value 1000000.0 is out of range for FP16 .*65504"),
        ("FP16", [70000, 0, 0, 0], r"value 70000 is out of range for FP16"),
        # nested data must be nested as the shape says (flat data is fine)
        ("FP32", [[1, 2, 3, 4]], r"nested as \[1, 4\] but the shape is \[2, 2\]"),
        ("FP32", [[[1], [2]], [[3], [4]]], r"nested as \[2, 2, 1\]"),
    ],
)
def test_bad_json_data_is_refused(datatype, data, needle):
    with pytest.raises(BadRequest, match=needle):
        tensor_from_json(InputTensor("x", datatype, [2, 2], data), 4)


@pytest.mark.parametrize(
    ("datatype", "data", "expected"),
    [
        # JSON integers decode to int64: unsigned types take them when they are in range
        ("UINT8", [0, 1, 254, 255], [0, 1, 254, 255]),
        ("UINT16", [0, 1, 2, 65535], [0, 1, 2, 65535]),
        ("UINT32", [0, 1, 2, 2**32 - 1], [0, 1, 2, 2**32 - 1]),
        ("UINT64", [0, 1, 2, 2**63 - 1], [0, 1, 2, 2**63 - 1]),
        ("UINT64", [0, 1, 2**63, 2**64 - 1], [0, 1, 2**63, 2**64 - 1]),
        ("UINT64", [[0, 2**64 - 1], [1, 2]], [0, 2**64 - 1, 1, 2]),
        ("INT64", [-(2**63), 2**63 - 1, 0, 1], [-(2**63), 2**63 - 1, 0, 1]),
        ("INT8", [-128, 127, 0, 1], [-128, 127, 0, 1]),
        ("FP16", [65504, -65504, 0.5, 1], [65504, -65504, 0.5, 1]),
        ("BOOL", [True, False, True, False], [True, False, True, False]),
    ],
)
def test_json_data_in_range_decodes_exactly(datatype, data, expected):
    arr = tensor_from_json(InputTensor("x", datatype, [2, 2], data), 4)
    assert arr.dtype == V2_TO_NUMPY[datatype]
    assert arr.ravel().tolist() == expected


@pytest.mark.parametrize("datatype", ["FP16", "FP32"])
def test_nan_and_inf_pass_the_range_check_for_the_nan_policy(datatype):
    data = [float("nan"), float("inf"), -float("inf"), 1.0]
    arr = tensor_from_json(InputTensor("x", datatype, [2, 2], data), 4)
    assert np.isnan(arr[0, 0]) and arr[0, 1] == np.inf and arr[1, 0] == -np.inf


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ([1e39, 0, 0, 0], r"input 'x': value 1e\+39 is out of range for FP32"),
        ([-1e39, float("inf"), 0, 0], r"value -1e\+39 is out of range for FP32"),
    ],
)
def test_fp32_overflow_is_named_once_the_decoded_array_is_not_finite(data, needle):
    tensor = InputTensor("x", "FP32", [2, 2], data)
    assert np.isinf(tensor_from_json(tensor, 4)).any()  # what astype makes of it
    with pytest.raises(BadRequest, match=needle):
        check_fp32_range(tensor)


def test_nan_and_inf_sent_as_such_are_no_fp32_overflow():
    check_fp32_range(InputTensor("x", "FP32", [2, 2], [float("nan"), float("inf"), 3e38, 0]))


def test_flags_and_sizes_take_real_booleans_and_integers():
    doc = {**_doc(), "parameters": {"binary_data_output": False}, "outputs": [{"name": "p"}]}
    req = decode_request(json.dumps(doc).encode(), None)
    assert req.binary_default is False and req.outputs == {"p": False}


def test_binary_size_must_match_shape_and_datatype():
    tensor = InputTensor("x", "FP32", [2, 2], raw=memoryview(b"\0" * 12))
    with pytest.raises(BadRequest, match="needs 16 bytes"):
        tensor_from_raw(tensor, 4)


def test_outputs_selection_and_binary_flags():
    doc = {
        "inputs": _doc()["inputs"],
        "parameters": {"binary_data_output": True},
        "outputs": [{"name": "p"}, {"name": "q", "parameters": {"binary_data": False}}],
    }
    req = decode_request(json.dumps(doc).encode(), None)
    assert req.outputs == {"p": True, "q": False}


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
