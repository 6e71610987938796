"""Encode a V2 infer response: JSON outputs, or the binary extension's raw tensors."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from sidecar.codec import json_backend
from sidecar.codec.datatypes import v2_name


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
    header = json_backend.dumps(head)
    if not blobs:
        return header, None
    return header + b"".join(blobs), len(header)
