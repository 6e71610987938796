"""The V2 codec's tensor data: JSON and binary into arrays, ranges and the FP32 overflow."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from sidecar.codec.datatypes import V2_TO_NUMPY
from sidecar.codec.decode import InputTensor
from sidecar.codec.tensors import check_fp32_range, tensor_from_json, tensor_from_raw
from sidecar.errors import BadRequest


@pytest.mark.parametrize("data", [[1, 2, 3, 4], [[1, 2], [3, 4]]])
def test_flat_and_nested_data_decode_row_major(data):
    tensor = InputTensor("x", "FP32", [2, 2], data)
    arr = tensor_from_json(tensor, 4)
    assert arr.dtype == np.float32
    assert arr.tolist() == [[1, 2], [3, 4]]


def test_bytes_tensors_decode_from_length_prefixed_binary():
    payload = b"".join(struct.pack("<I", len(s)) + s for s in (b"ab", b"", b"xyz"))
    tensor = InputTensor("s", "BYTES", [3], raw=memoryview(payload))
    assert tensor_from_raw(tensor, 3).tolist() == [b"ab", b"", b"xyz"]


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


def test_binary_size_must_match_shape_and_datatype():
    tensor = InputTensor("x", "FP32", [2, 2], raw=memoryview(b"\0" * 12))
    with pytest.raises(BadRequest, match="needs 16 bytes"):
        tensor_from_raw(tensor, 4)


def test_bytes_data_keeps_trailing_nuls_and_refuses_numbers():
    """Found by the property tests: numpy's unicode arrays drop trailing NULs."""
    tensor = InputTensor("x", "BYTES", [1, 2], [["\x00", "a\x00"]])
    assert tensor_from_json(tensor, 2).tolist() == [[b"\x00", b"a\x00"]]
    with pytest.raises(BadRequest, match="BYTES data must be strings"):
        tensor_from_json(InputTensor("x", "BYTES", [2], ["a", 1]), 2)
