"""Properties of the V2 codec (Hypothesis): whatever bytes arrive, decoding either succeeds or
raises `BadRequest`, never anything else; valid requests of every datatype round-trip through
decode and encode; deep, huge and surrogate inputs are client errors.

Short by default (`make test`); `WEIR_FUZZ=long` runs a hundred times as many cases.
"""

from __future__ import annotations

import json
import math
import os
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sidecar.codec import json_backend
from sidecar.codec.datatypes import V2_TO_NUMPY
from sidecar.codec.decode import decode_request
from sidecar.codec.encode import encode_response
from sidecar.codec.tensors import tensor_from_json, tensor_from_raw
from sidecar.errors import BadRequest

LONG = os.environ.get("WEIR_FUZZ") == "long"
FUZZ = settings(
    max_examples=20_000 if LONG else 200,
    deadline=None,
    database=None,  # nothing written into the worktree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _decode_all(body: bytes, header: str | None) -> None:
    """The whole decode entry point: envelope, then every tensor's data."""
    request = decode_request(body, header)
    for tensor in request.inputs:
        count = math.prod(tensor.shape)
        if count > 1 << 20:  # validation refuses such shapes against the model first
            continue
        if tensor.raw is not None:
            tensor_from_raw(tensor, count)
        else:
            tensor_from_json(tensor, count)


def _only_client_errors(body: bytes, header: str | None = None) -> None:
    try:
        _decode_all(body, header)
    except BadRequest as exc:
        assert exc.status in (400, 413) and exc.message


# JSON values, with strings that may hold any code point, lone surrogates included (written
# as \u escapes, the only way JSON text can carry them).
_code_points = st.integers(0, 0x10FFFF)


@st.composite
def _json_strings(draw: st.DrawFn) -> str:
    points = draw(st.lists(_code_points, max_size=8))
    return '"' + "".join(f"\\u{p:04x}" if p <= 0xFFFF else chr(p) for p in points) + '"'


_scalars = st.one_of(
    st.sampled_from(["null", "true", "false", "NaN", "Infinity", "-Infinity", "1e999", "-0"]),
    st.integers().map(str),
    st.integers(-(10**400), 10**400).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    _json_strings(),
)


def _containers(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    keys = st.one_of(_json_strings(), st.sampled_from(['"inputs"', '"name"', '"parameters"']))
    return st.one_of(
        st.lists(children, max_size=4).map(lambda xs: "[" + ",".join(xs) + "]"),
        st.lists(st.tuples(keys, children), max_size=4).map(
            lambda kvs: "{" + ",".join(f"{k}:{v}" for k, v in kvs) + "}"
        ),
    )


_json_text = st.recursive(_scalars, _containers, max_leaves=20)

_FIELDS = {
    "name": st.one_of(st.just('"x"'), _json_text),
    "datatype": st.one_of(st.sampled_from([f'"{t}"' for t in V2_TO_NUMPY]), _json_text),
    "shape": st.one_of(st.just("[2]"), st.just("[1,2]"), _json_text),
    "data": st.one_of(st.just("[1,2]"), st.just('["a","b"]'), _json_text),
    "parameters": st.one_of(
        st.just('{"binary_data_size":8}'), st.just('{"binary_data_size":-1}'), _json_text
    ),
}


@st.composite
def _envelopes(draw: st.DrawFn) -> bytes:
    """Request-shaped JSON whose every field may be anything."""
    item = {k: draw(v) for k, v in _FIELDS.items() if draw(st.booleans())}
    inputs = "[{" + ",".join(f'"{k}":{v}' for k, v in item.items()) + "}]"
    fields = {"inputs": inputs}
    for key in ("id", "parameters", "outputs"):
        if draw(st.booleans()):
            fields[key] = draw(_json_text)
    return ("{" + ",".join(f'"{k}":{v}' for k, v in fields.items()) + "}").encode()


@FUZZ
@given(st.binary(max_size=512))
def test_any_bytes_decode_or_are_a_client_error(body):
    _only_client_errors(body)


@FUZZ
@given(_envelopes(), st.one_of(st.none(), st.text(max_size=6), st.integers(-5, 400).map(str)))
def test_any_envelope_decodes_or_is_a_client_error(head, header):
    _only_client_errors(head + b"\0" * 16, header)


@FUZZ
@given(_json_text)
def test_any_json_value_decodes_or_is_a_client_error(text):
    body = text.encode("utf-8", "surrogatepass")
    _only_client_errors(body)
    _only_client_errors(b'{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","data":' + body)


# Round trips: one input of each datatype, JSON or binary, decoded then encoded as an output.
_DTYPES = [t for t in V2_TO_NUMPY if t != "BYTES"]


def _elements(datatype: str) -> st.SearchStrategy:
    dtype = V2_TO_NUMPY[datatype]
    if dtype.kind == "f":
        return st.floats(width=dtype.itemsize * 8, allow_nan=False, allow_infinity=False)
    return hnp.from_dtype(dtype)


@st.composite
def _tensors(draw: st.DrawFn) -> tuple[str, np.ndarray]:
    datatype = draw(st.sampled_from([*_DTYPES, "BYTES"]))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    if datatype == "BYTES":
        text = st.text(max_size=6)  # no surrogates: those are refused (below)
        values = draw(st.lists(text, min_size=math.prod(shape), max_size=math.prod(shape)))
        return datatype, np.array([v.encode() for v in values], dtype=object).reshape(shape)
    arr = draw(hnp.arrays(V2_TO_NUMPY[datatype], shape, elements=_elements(datatype)))
    return datatype, arr


def _raw(arr: np.ndarray) -> bytes:
    if arr.dtype == object:
        return b"".join(struct.pack("<I", len(b)) + b for b in arr.ravel())
    return arr.astype(arr.dtype.newbyteorder("<")).tobytes()


def _json_data(arr: np.ndarray) -> list:
    if arr.dtype == object:
        return [b.decode() for b in arr.ravel()]
    return arr.tolist()  # nested as the shape


def _decoded_output(body: bytes, json_length: int | None) -> tuple[dict, bytes]:
    if json_length is None:
        return json_backend.loads(body), b""
    return json_backend.loads(body[:json_length]), body[json_length:]


@FUZZ
@given(_tensors(), st.booleans(), st.booleans(), st.text(max_size=8))
def test_valid_requests_round_trip_for_every_datatype(tensor, binary_in, binary_out, request_id):
    datatype, arr = tensor
    item = {"name": "x", "shape": list(arr.shape), "datatype": datatype}
    if binary_in:
        blob = _raw(arr)
        item["parameters"] = {"binary_data_size": len(blob)}
        head = json.dumps({"id": request_id, "inputs": [item]}).encode()
        request = decode_request(head + blob, str(len(head)))
        decoded = tensor_from_raw(request.inputs[0], arr.size)
    else:
        item["data"] = _json_data(arr)
        request = decode_request(json.dumps({"id": request_id, "inputs": [item]}).encode(), None)
        decoded = tensor_from_json(request.inputs[0], arr.size)
    assert request.id == request_id
    assert decoded.shape == arr.shape
    assert decoded.tolist() == arr.tolist()

    body, json_length = encode_response("m", "1", request.id, [("y", decoded)], {"y": binary_out})
    doc, blobs = _decoded_output(body, json_length)
    assert doc["id"] == request_id
    (out,) = doc["outputs"]
    assert (out["name"], out["datatype"], out["shape"]) == ("y", datatype, list(arr.shape))
    if binary_out:
        assert out["parameters"]["binary_data_size"] == len(blobs) == len(_raw(arr))
        assert blobs == _raw(arr)
    else:
        # What a client reads: the JSON values taken as the datatype.
        if datatype == "BYTES":
            assert out["data"] == [b.decode() for b in arr.ravel()]
        else:
            assert np.array_equal(np.array(out["data"], dtype=arr.dtype), arr.ravel())


# Hostile inputs: each is a client error, whatever field it is in.
_WRAPPERS = [
    lambda v: '{"id":' + v + ',"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}',
    lambda v: '{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[' + v + "]}]}",
    lambda v: (
        '{"parameters":{"p":' + v + '},"inputs":[{"name":"x","shape":[1],"datatype":"FP32",'
        '"data":[1]}]}'
    ),
    lambda v: '{"inputs":[{"name":' + v + ',"shape":[1],"datatype":"BYTES","data":["a"]}]}',
    lambda v: '{"inputs":[{"name":"x","shape":[1],"datatype":"BYTES","data":[' + v + "]}]}",
    lambda v: (
        '{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}],"outputs":['
        '{"name":' + v + "}]}"
    ),
]


def _hostile(wrap_index: int, value: str, nan: bool) -> bytes:
    text = _WRAPPERS[wrap_index](value)
    if nan:  # the stdlib's second parse must answer alike
        text = text[:-1] + ',"n":NaN}'
    return text.encode("utf-8", "surrogatepass")


@FUZZ
@given(
    st.integers(0, len(_WRAPPERS) - 1),
    st.integers(0xD800, 0xDFFF),
    st.booleans(),
    st.booleans(),
)
def test_lone_surrogates_anywhere_are_client_errors(where, point, nan, raw):
    # Escaped (\ud800) or as the surrogate's own bytes (UTF-8 forbids them).
    value = f'"a{chr(point)}"' if raw else f'"a\\u{point:04x}"'
    with pytest.raises(BadRequest, match=r"surrogate|UTF-8"):
        decode_request(_hostile(where, value, nan), None)


@FUZZ
@given(st.integers(0, len(_WRAPPERS) - 1), st.integers(65, 3000), st.booleans(), st.booleans())
def test_deep_nesting_anywhere_is_a_client_error(where, depth, nan, objects):
    value = '{"a":' * depth + "1" + "}" * depth if objects else "[" * depth + "]" * depth
    # Parameters are held to the depth bound; tensor data to numpy's dimensions (arrays) or
    # to its datatype (objects); the other fields to their own types.
    says = "nested" if where == 2 or (where in (1, 4) and not objects) or depth > 1024 else None
    with pytest.raises(BadRequest, match=says):
        _decode_all(_hostile(where, value, nan), None)


@FUZZ
@given(
    st.integers(0, len(_WRAPPERS) - 1),
    st.one_of(st.integers(309, 5000).map(lambda e: f"1e{e}"), st.integers(310, 6000)),
    st.booleans(),
)
def test_numbers_beyond_a_double_are_client_errors(where, number, nan):
    value = number if isinstance(number, str) else "9" * number
    with pytest.raises(BadRequest, match="64-bit float"):
        decode_request(_hostile(where, value, nan), None)


@FUZZ
@given(st.integers(0, len(_WRAPPERS) - 1), st.booleans())
def test_duplicate_keys_are_client_errors(where, nan):
    body = _hostile(where, '{"k":1,"k":2}', nan)
    # In fields that may hold objects, the duplicate is what is refused; elsewhere the type.
    with pytest.raises(BadRequest, match="'k' appears twice" if where in (1, 2, 4) else None):
        decode_request(body, None)
