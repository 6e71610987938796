"""Tensor data of a decoded request: JSON `data` or binary bytes into numpy arrays.

Values must fit the declared datatype: out-of-range values are refused by name, never
wrapped or turned into inf. NaN/Inf are the model's NaN policy's business (`validation`).
"""

from __future__ import annotations

import struct
import warnings
from typing import Any

import numpy as np

from sidecar.codec.datatypes import ACCEPTED_KINDS, V2_TO_NUMPY
from sidecar.codec.decode import InputTensor
from sidecar.errors import BadRequest

# FP32 inputs too large for FP32 become inf in astype, on purpose (see tensor_from_json): the
# request is then refused by name; numpy's warning about it would only be noise in the logs.
warnings.filterwarnings("ignore", "overflow encountered in cast", RuntimeWarning)


def tensor_from_json(tensor: InputTensor, count: int) -> np.ndarray:
    """Decode JSON `data` (flat or nested, row-major) into an array of `count` elements."""
    dtype = V2_TO_NUMPY[tensor.datatype]
    try:
        arr = np.array(tensor.data)
    except (ValueError, TypeError) as exc:
        if "maximum number of dimension" in str(exc):
            raise BadRequest(
                f"input '{tensor.name}': 'data' is nested deeper than numpy's 64 dimensions; "
                f"nest it exactly as the shape {tensor.shape} or send it flat"
            ) from None
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
        # From the JSON strings themselves: numpy's unicode arrays drop trailing NULs, and
        # would have turned numbers among the strings into text.
        values = _flatten(tensor.data)
        if not all(type(v) is str for v in values):
            raise BadRequest(f"input '{tensor.name}': BYTES data must be strings")
        return np.array([v.encode() for v in values], dtype=object).reshape(tensor.shape)
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
    """Row-major leaves of nested lists; iterative, whatever the nesting."""
    out: list[Any] = []
    stack = [iter((data,))]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            out.append(item)
        else:
            stack.pop()
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
