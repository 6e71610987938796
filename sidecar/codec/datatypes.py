"""V2 datatype names, their numpy dtypes and the ONNX tensor types they correspond to."""

from __future__ import annotations

import numpy as np

# V2 name -> numpy dtype. BYTES travels as numpy object arrays of bytes.
V2_TO_NUMPY: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(np.object_),
}

# onnxruntime's type strings ("tensor(float)") -> V2 name.
ONNX_TO_V2: dict[str, str] = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}

NUMPY_TO_V2: dict[np.dtype, str] = {dtype: name for name, dtype in V2_TO_NUMPY.items()}

# numpy dtype kinds a JSON list may decode to for each V2 type (int -> float widening). JSON
# integers decode to int64 (kind i) whatever their sign, so unsigned types accept i too; the
# values' range is checked in `tensors`. Booleans (kind b) are numbers only to BOOL.
ACCEPTED_KINDS: dict[str, str] = {
    **{name: "iuf" for name in ("FP16", "FP32", "FP64")},
    **{name: "iu" for name in ("INT8", "INT16", "INT32", "INT64")},
    **{name: "iu" for name in ("UINT8", "UINT16", "UINT32", "UINT64")},
    "BOOL": "b",
    "BYTES": "US",
}

FLOAT_TYPES = frozenset({"FP16", "FP32", "FP64"})


def v2_name(dtype: np.dtype) -> str:
    """V2 datatype name of a numpy dtype (strings map to BYTES)."""
    if dtype.kind in "OUS":
        return "BYTES"
    return NUMPY_TO_V2[dtype]
