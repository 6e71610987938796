"""Check a decoded request against the model's own signature before the runtime sees it."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from sidecar.datatypes import FLOAT_TYPES
from sidecar.errors import BadRequest
from sidecar.protocol import InferRequest, InputTensor, tensor_from_json, tensor_from_raw
from sidecar.runtime import TensorSpec


def _fmt(shape: Sequence[int | None]) -> str:
    return "[" + ",".join("-1" if d is None else str(d) for d in shape) + "]"


def check_shape(tensor: InputTensor, spec: TensorSpec) -> None:
    if len(tensor.shape) != len(spec.shape):
        raise BadRequest(
            f"input '{spec.name}': shape {tensor.shape} has {len(tensor.shape)} dimensions, "
            f"the model expects {len(spec.shape)}: {_fmt(spec.shape)} (-1 = any size)"
        )
    for i, (got, want) in enumerate(zip(tensor.shape, spec.shape, strict=True)):
        if want is not None and got != want:
            raise BadRequest(
                f"input '{spec.name}': dimension {i} is {got}, the model expects {want}; "
                f"shape must match {_fmt(spec.shape)} (-1 = any size)"
            )


def build_feeds(
    request: InferRequest,
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
    nan_policy: str,
    batched: bool,
) -> tuple[dict[str, np.ndarray], int]:
    """Decoded arrays keyed by input name, and the request's row count (batch dimension)."""
    by_name = {spec.name: spec for spec in inputs}
    feeds: dict[str, np.ndarray] = {}
    for tensor in request.inputs:
        spec = by_name.get(tensor.name)
        if spec is None:
            raise BadRequest(
                f"unknown input '{tensor.name}': this model's inputs are "
                f"{', '.join(repr(n) for n in by_name)}"
            )
        if tensor.name in feeds:
            raise BadRequest(f"input '{tensor.name}' is given twice")
        if tensor.datatype != spec.datatype:
            raise BadRequest(
                f"input '{spec.name}': datatype is {tensor.datatype}, the model expects "
                f"{spec.datatype}"
            )
        check_shape(tensor, spec)
        count = math.prod(tensor.shape)
        arr = (
            tensor_from_raw(tensor, count)
            if tensor.raw is not None
            else (tensor_from_json(tensor, count))
        )
        if nan_policy == "reject" and spec.datatype in FLOAT_TYPES and not np.isfinite(arr).all():
            raise BadRequest(
                f"input '{spec.name}' holds NaN or Inf values, which this model refuses; "
                "send finite numbers"
            )
        feeds[spec.name] = arr
    missing = [name for name in by_name if name not in feeds]
    if missing:
        raise BadRequest(
            f"missing input(s) {', '.join(repr(n) for n in missing)}: this model needs "
            + ", ".join(f"'{s.name}' {s.datatype} {_fmt(s.shape)}" for s in inputs)
        )
    if request.outputs is not None:
        known = {spec.name for spec in outputs}
        for name in request.outputs:
            if name not in known:
                raise BadRequest(
                    f"unknown output '{name}': this model's outputs are "
                    f"{', '.join(repr(n) for n in sorted(known))}"
                )
    rows = 1
    if batched:
        sizes = {arr.shape[0] for arr in feeds.values()}
        if len(sizes) != 1:
            raise BadRequest(
                "all inputs must have the same size in dimension 0 (the batch dimension); "
                f"got {sorted(sizes)}"
            )
        rows = sizes.pop()
        if rows == 0:
            raise BadRequest("the batch dimension (dimension 0) must be at least 1")
    return feeds, rows
