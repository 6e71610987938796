"""Requests are checked against the model's own signature before the runtime sees them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sidecar.codec.decode import decode_request
from sidecar.errors import BadRequest
from sidecar.serving.onnx_session import TensorSpec
from sidecar.serving.validation import Signature, _all_finite

INPUTS = [TensorSpec("input", "FP32", (None, 4))]
OUTPUTS = [TensorSpec("probabilities", "FP32", (None, 10))]


def build_feeds(request, inputs, outputs, nan_policy, batched):
    return Signature(inputs, outputs, nan_policy, batched).feeds(request)


def _request(inputs, outputs=None):
    doc = {"inputs": inputs}
    if outputs is not None:
        doc["outputs"] = outputs
    return decode_request(json.dumps(doc).encode(), None)


def _input(**kw):
    item = {"name": "input", "shape": [2, 4], "datatype": "FP32", "data": list(range(8))}
    item.update(kw)
    return item


def test_valid_request_gives_typed_feeds_and_row_count():
    feeds, rows = build_feeds(_request([_input()]), INPUTS, OUTPUTS, "reject", True)
    assert rows == 2
    assert feeds["input"].dtype == np.float32
    assert feeds["input"].shape == (2, 4)


@pytest.mark.parametrize(
    ("item", "needle"),
    [
        (_input(name="pixels"), "unknown input 'pixels'.*'input'"),
        (_input(datatype="FP64"), "datatype is FP64, the model expects FP32"),
        (_input(shape=[2, 5], data=list(range(10))), "dimension 1 is 5, the model expects 4"),
        (_input(shape=[8]), "1 dimensions, the model expects 2"),
        (_input(data=list(range(6))), "needs 8 elements, 'data' has 6"),
        (_input(data=[1, 2, 3, float("nan"), 5, 6, 7, 8]), "NaN or Inf"),
        (_input(data=["x"] * 8), "non-numeric"),
        (_input(shape=[0, 4], data=[]), "at least 1"),
    ],
)
def test_each_mistake_is_named(item, needle):
    with pytest.raises(BadRequest, match=needle):
        build_feeds(_request([item]), INPUTS, OUTPUTS, "reject", True)


def test_missing_input_lists_what_the_model_needs():
    two = [TensorSpec("a", "FP32", (None, 4)), TensorSpec("b", "INT64", (None,))]
    with pytest.raises(BadRequest, match=r"missing input\(s\) 'b'.*'b' INT64 \[-1\]"):
        build_feeds(_request([_input(name="a")]), two, OUTPUTS, "reject", True)


def test_nan_passes_when_the_model_allows_it():
    item = _input(data=[float("inf")] * 8)
    feeds, _ = build_feeds(_request([item]), INPUTS, OUTPUTS, "allow", True)
    assert np.isinf(feeds["input"]).all()


def test_unknown_output_is_refused():
    with pytest.raises(BadRequest, match="unknown output 'logits'"):
        build_feeds(_request([_input()], [{"name": "logits"}]), INPUTS, OUTPUTS, "reject", True)


def test_inputs_must_agree_on_the_batch_dimension():
    two = [TensorSpec("a", "FP32", (None, 4)), TensorSpec("b", "FP32", (None, 4))]
    items = [_input(name="a"), _input(name="b", shape=[1, 4], data=[0] * 4)]
    with pytest.raises(BadRequest, match=r"same size in dimension 0.*\[1, 2\]"):
        build_feeds(_request(items), two, OUTPUTS, "reject", True)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.parametrize("nan_policy", ["reject", "allow"])
def test_fp32_json_values_beyond_its_range_are_refused_whatever_the_nan_policy(nan_policy):
    request = _request([_input(data=[1e39] + [0] * 7)])
    with pytest.raises(BadRequest, match=r"value 1e\+39 is out of range for FP32"):
        build_feeds(request, INPUTS, OUTPUTS, nan_policy, True)


def test_nan_allowed_still_passes_nan_and_inf():
    request = decode_request(
        b'{"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32", '
        b'"data": [NaN, Infinity, -Infinity, 1, 2, 3, 4, 5]}]}',
        None,
    )
    feeds, _ = build_feeds(request, INPUTS, OUTPUTS, "allow", True)
    assert np.isnan(feeds["input"][0, 0]) and np.isinf(feeds["input"][0, 1:3]).all()


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["max", "max", 1, 1], True),  # the largest finite value is finite
        (["-max", 0, 0, 0], True),
        ([1, np.inf, 1, 1], False),
        ([np.nan, 1, 1, 1], False),
        ([-np.inf, np.inf, 0, 0], False),
        ([0, 0, 0, np.nan], False),
    ],
)
def test_nan_and_inf_are_found_in_every_float_width(dtype, values, expected):
    big = np.finfo(dtype).max
    values = [big if v == "max" else -big if v == "-max" else v for v in values]
    assert _all_finite(np.array(values, dtype=dtype)) is expected, values
