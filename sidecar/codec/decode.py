"""The Open Inference Protocol (KServe V2) codec: bytes in, decoded tensors out, and back.

Pure functions, no HTTP framework: the infer resource passes the raw body and headers. Shapes
and datatypes are checked against the model in `validation`; here only the wire format is.
"""

from __future__ import annotations

import struct
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sidecar import jsoncodec
from sidecar.datatypes import ACCEPTED_KINDS, V2_TO_NUMPY, v2_name
from sidecar.errors import BadRequest

# FP32 inputs too large for FP32 become inf in astype, on purpose (see tensor_from_json): the
# request is then refused by name; numpy's warning about it would only be noise in the logs.
warnings.filterwarnings("ignore", "overflow encountered in cast", RuntimeWarning)

HEADER_LENGTH = "Inference-Header-Content-Length"
JSON_TYPE = "application/json"
BINARY_TYPE = "application/octet-stream"


@dataclass(slots=True)
class InputTensor:
    """One request input as sent: shape and datatype as claimed, data still undecoded."""

    name: str
    datatype: str
    shape: list[int]
    data: Any = None
    raw: memoryview | None = None


@dataclass(slots=True)
class InferRequest:
    """A decoded request envelope."""

    id: str | None
    inputs: list[InputTensor]
    # None: every output, as JSON. Otherwise output name -> binary?
    outputs: dict[str, bool] | None = None
    binary_default: bool = False
    parameters: dict[str, Any] = field(default_factory=dict)


def _load_json(raw: bytes | memoryview) -> Any:
    try:
        return jsoncodec.loads(bytes(raw) if isinstance(raw, memoryview) else raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest(
            "request body is not valid JSON: send a V2 inference request "
            '{"inputs": [{"name", "shape", "datatype", "data"}]}'
        ) from None


def _shape(value: Any, name: str) -> list[int]:
    if not isinstance(value, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value
    ):
        raise BadRequest(f"input '{name}': 'shape' must be a list of non-negative integers")
    return value


def _params(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"{where} must be an object, got {type(value).__name__}")
    return value


def _flag(params: dict[str, Any], key: str, default: bool, where: str) -> bool:
    value = params.get(key, default)
    if not isinstance(value, bool):
        raise BadRequest(f"{where}: {key} must be true or false, got {value!r}")
    return value


def decode_request(body: bytes, header_length: str | None) -> InferRequest:
    """Split JSON and binary parts and check the envelope's structure."""
    view = memoryview(body)
    if header_length is not None:
        try:
            json_len = int(header_length)
        except ValueError:
            raise BadRequest(f"{HEADER_LENGTH} must be an integer, got {header_length!r}") from None
        if not 0 < json_len <= len(body):
            raise BadRequest(
                f"{HEADER_LENGTH} is {json_len} but the body has {len(body)} bytes: "
                "it must be the length of the JSON part that starts the body"
            )
        doc = _load_json(view[:json_len])
        rest = view[json_len:]
    else:
        doc = _load_json(body)
        rest = view[len(body) :]
    if not isinstance(doc, dict):
        raise BadRequest("request body must be a JSON object with an 'inputs' list")
    raw_inputs = doc.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise BadRequest("request needs a non-empty 'inputs' list")
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest("'id' must be a string")
    params = _params(doc.get("parameters"), "'parameters'")

    inputs: list[InputTensor] = []
    offset = 0
    for item in raw_inputs:
        if not isinstance(item, dict):
            raise BadRequest("each entry of 'inputs' must be an object")
        name = item.get("name")
        if not isinstance(name, str):
            raise BadRequest("each input needs a 'name' string")
        datatype = item.get("datatype")
        if not isinstance(datatype, str) or datatype not in V2_TO_NUMPY:
            raise BadRequest(
                f"input '{name}': unknown datatype {datatype!r}; "
                f"use one of {', '.join(V2_TO_NUMPY)}"
            )
        tensor = InputTensor(name, datatype, _shape(item.get("shape"), name))
        iparams = _params(item.get("parameters"), f"input '{name}': 'parameters'")
        size = iparams.get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise BadRequest(
                    f"input '{name}': binary_data_size must be a byte count (a non-negative "
                    f"integer), got {size!r}"
                )
            if offset + size > len(rest):
                raise BadRequest(
                    f"input '{name}': binary_data_size {size} runs past the end of the body "
                    f"({len(rest) - offset} bytes left after the JSON header)"
                )
            tensor.raw = rest[offset : offset + size]
            offset += size
        elif "data" not in item:
            raise BadRequest(f"input '{name}' has no 'data' and no binary_data_size")
        else:
            tensor.data = item["data"]
        inputs.append(tensor)
    if offset != len(rest):
        raise BadRequest(
            f"{len(rest) - offset} bytes of binary data are not claimed by any input's "
            "binary_data_size"
        )

    outputs = None
    raw_outputs = doc.get("outputs")
    binary_default = _flag(params, "binary_data_output", False, "'parameters'")
    if raw_outputs is not None:
        if not isinstance(raw_outputs, list):
            raise BadRequest("'outputs' must be a list of {name, parameters}")
        outputs = {}
        for out in raw_outputs:
            if not isinstance(out, dict) or not isinstance(out.get("name"), str):
                raise BadRequest("each entry of 'outputs' needs a 'name' string")
            where = f"output '{out['name']}': 'parameters'"
            oparams = _params(out.get("parameters"), where)
            outputs[out["name"]] = _flag(oparams, "binary_data", binary_default, where)
    return InferRequest(request_id, inputs, outputs, binary_default, params)


def tensor_from_json(tensor: InputTensor, count: int) -> np.ndarray:
    """Decode JSON `data` (flat or nested, row-major) into an array of `count` elements."""
    dtype = V2_TO_NUMPY[tensor.datatype]
    try:
        arr = np.array(tensor.data)
    except (ValueError, TypeError):
        raise BadRequest(
            f"input '{tensor.name}': 'data' is ragged; nest it exactly as the shape "
            f"{tensor.shape} or send it flat"
        ) from None
    if arr.size != count:
        raise BadRequest(
            f"input '{tensor.name}': shape {tensor.shape} needs {count} elements, "
            f"'data' has {arr.size}"
        )
    if arr.ndim > 1 and list(arr.shape) != tensor.shape:
        raise BadRequest(
            f"input '{tensor.name}': 'data' is nested as {list(arr.shape)} but the shape is "
            f"{tensor.shape}; nest it exactly as the shape or send it flat"
        )
    if arr.dtype.kind not in ACCEPTED_KINDS[tensor.datatype] and arr.size:
        exact = _big_integers(tensor, arr) if dtype.kind in "iu" else None
        if exact is not None:
            return exact.reshape(tensor.shape)
        if tensor.datatype == "BYTES":
            raise BadRequest(f"input '{tensor.name}': BYTES data must be strings")
        raise BadRequest(
            f"input '{tensor.name}': 'data' must hold {tensor.datatype} values "
            f"({_describe(tensor.datatype)}); found non-numeric or wrong-kind values"
        )
    if tensor.datatype == "BYTES":
        return np.array(
            [s.encode() if isinstance(s, str) else s for s in arr.ravel()], dtype=object
        ).reshape(tensor.shape)
    if arr.dtype != dtype and arr.size:
        # FP32, the common case, is not looked at here: a value too large for it becomes inf,
        # which the finite check `validation` makes anyway finds (then `check_fp32_range`).
        # FP64 holds whatever JSON decodes to.
        limits = _LIMITS.get(tensor.datatype)
        if limits is not None:
            _check_range(tensor, arr, limits)
    return arr.astype(dtype, copy=False).reshape(tensor.shape)


def _big_integers(tensor: InputTensor, arr: np.ndarray) -> np.ndarray | None:
    """Integers beyond int64 make numpy decode JSON to float64 (lossy) or object arrays: take
    them exactly for UINT64 up to 2**64 - 1, refuse them as out of range otherwise. None when
    the data is not all integers (then refused by kind)."""
    values = arr.ravel().tolist() if arr.dtype.kind == "O" else _flatten(tensor.data)
    if not values or not all(type(v) is int for v in values):
        return None
    low, high = _LIMITS[tensor.datatype]
    for bad in (min(values), max(values)):
        if not low <= bad <= high:
            raise BadRequest(
                f"input '{tensor.name}': value {bad!r} is out of range for {tensor.datatype} "
                f"(values from {low!r} to {high!r})"
            )
    return np.array(values, dtype=V2_TO_NUMPY[tensor.datatype])


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    out: list[Any] = []
    for item in data:
        out.extend(_flatten(item) if isinstance(item, list) else (item,))
    return out


def check_fp32_range(tensor: InputTensor) -> None:
    """An FP32 JSON input decoded to non-finite values: 400 if a finite value sent was beyond
    FP32's range (the conversion made it inf); otherwise NaN/Inf were sent as such."""
    arr = np.array(tensor.data)
    if arr.dtype.kind == "f":
        _check_range(tensor, arr, _FP32_LIMITS)


# V2 type -> (lowest, highest) value it holds.
_LIMITS: dict[str, tuple[Any, Any]] = {
    name: (int(info.min), int(info.max))
    for name in ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")
    for info in [np.iinfo(V2_TO_NUMPY[name])]
} | {
    "FP16": (float(np.finfo(np.float16).min), float(np.finfo(np.float16).max)),
}
_FP32_LIMITS = (float(np.finfo(np.float32).min), float(np.finfo(np.float32).max))


def _check_range(tensor: InputTensor, arr: np.ndarray, limits: tuple[Any, Any]) -> None:
    """Refuse values the target type cannot hold instead of letting astype wrap them.

    Only finite values count: NaN and Inf are the NaN policy's business. Integer targets
    only see integer arrays here (ACCEPTED_KINDS), float targets integers or floats.
    """
    low, high = limits
    lo, hi = arr.min(), arr.max()
    if lo >= low and hi <= high:  # False for NaN: look closer below
        return
    if arr.dtype.kind == "f":
        finite = arr[np.isfinite(arr)]
        if not finite.size:
            return
        lo, hi = finite.min(), finite.max()
        if lo >= low and hi <= high:
            return
    bad = lo if lo < low else hi
    raise BadRequest(
        f"input '{tensor.name}': value {bad.item()!r} is out of range for {tensor.datatype} "
        f"(values from {low!r} to {high!r})"
    )


def tensor_from_raw(tensor: InputTensor, count: int) -> np.ndarray:
    """Decode little-endian binary data (BYTES: 4-byte length-prefixed items)."""
    raw = tensor.raw
    assert raw is not None
    if tensor.datatype == "BYTES":
        items: list[bytes] = []
        pos = 0
        while pos < len(raw):
            if pos + 4 > len(raw):
                raise BadRequest(f"input '{tensor.name}': truncated BYTES length prefix")
            (n,) = struct.unpack_from("<I", raw, pos)
            items.append(bytes(raw[pos + 4 : pos + 4 + n]))
            pos += 4 + n
        if len(items) != count or pos != len(raw):
            raise BadRequest(
                f"input '{tensor.name}': shape {tensor.shape} needs {count} BYTES items, "
                f"binary data holds {len(items)}"
            )
        return np.array(items, dtype=object).reshape(tensor.shape)
    dtype = V2_TO_NUMPY[tensor.datatype].newbyteorder("<")
    expected = count * dtype.itemsize
    if len(raw) != expected:
        raise BadRequest(
            f"input '{tensor.name}': shape {tensor.shape} of {tensor.datatype} needs "
            f"{expected} bytes, binary_data_size is {len(raw)}"
        )
    return np.frombuffer(raw, dtype=dtype).reshape(tensor.shape)


def _describe(datatype: str) -> str:
    if datatype == "BOOL":
        return "true/false"
    if datatype.startswith(("INT", "UINT")):
        return "integers"
    return "numbers"


def _bytes_payload(arr: np.ndarray) -> bytes:
    parts = []
    for item in arr.ravel():
        b = item if isinstance(item, bytes) else str(item).encode()
        parts.append(struct.pack("<I", len(b)))
        parts.append(b)
    return b"".join(parts)


def _json_data(arr: np.ndarray) -> Any:
    if arr.dtype.kind in "OUS":
        return [x.decode(errors="replace") if isinstance(x, bytes) else str(x) for x in arr.ravel()]
    # A flat contiguous view: the JSON codec writes numpy arrays without a Python list.
    return np.ascontiguousarray(arr).reshape(-1)


def encode_response(
    model_name: str,
    model_version: str,
    request_id: str | None,
    outputs: list[tuple[str, np.ndarray]],
    binary: dict[str, bool],
) -> tuple[bytes, int | None]:
    """Serialize outputs. Returns (body, JSON header length or None when all JSON)."""
    out_docs = []
    blobs: list[bytes] = []
    for name, arr in outputs:
        doc: dict[str, Any] = {
            "name": name,
            "datatype": v2_name(arr.dtype),
            "shape": list(arr.shape),
        }
        if binary.get(name, False):
            blob = (
                _bytes_payload(arr)
                if arr.dtype.kind in "OUS"
                else np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()
            )
            doc["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            doc["data"] = _json_data(arr)
        out_docs.append(doc)
    head: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request_id is not None:
        head["id"] = request_id
    head["outputs"] = out_docs
    header = jsoncodec.dumps(head)
    if not blobs:
        return header, None
    return header + b"".join(blobs), len(header)
