"""Check a decoded request against the model's own signature before the runtime sees it."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from sidecar.codec.datatypes import FLOAT_TYPES
from sidecar.codec.decode import InferRequest, InputTensor
from sidecar.codec.tensors import check_fp32_range, tensor_from_json, tensor_from_raw
from sidecar.errors import BadRequest
from sidecar.serving.onnx_session import TensorSpec

_isfinite = np.isfinite


def _fmt(shape: Sequence[int | None]) -> str:
    return "[" + ",".join("-1" if d is None else str(d) for d in shape) + "]"


def describe(specs: Sequence[TensorSpec]) -> str:
    """Inputs or outputs for an error message: 'input' FP32 [-1,64], ..."""
    return ", ".join(f"'{s.name}' {s.datatype} {_fmt(s.shape)}" for s in specs)


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


def _all_finite(arr: np.ndarray) -> bool:
    return bool(_isfinite(arr).all())


class Signature:
    """A model's inputs and outputs, prepared once, and the checks every request goes through."""

    def __init__(
        self,
        inputs: Sequence[TensorSpec],
        outputs: Sequence[TensorSpec],
        nan_policy: str,
        batched: bool,
    ) -> None:
        self.inputs = list(inputs)
        self.by_name = {spec.name: spec for spec in inputs}
        self.output_names = frozenset(spec.name for spec in outputs)
        self.check_nan = nan_policy == "reject"
        self.batched = batched
        # (rank, [(axis, size)] of fixed dimensions) per input: the hot path compares ints.
        self._fixed = {
            spec.name: (
                len(spec.shape),
                [(i, d) for i, d in enumerate(spec.shape) if d is not None],
            )
            for spec in inputs
        }

    def feeds(self, request: InferRequest) -> tuple[dict[str, np.ndarray], int]:
        """Decoded arrays keyed by input name, and the request's row count (batch dimension)."""
        feeds: dict[str, np.ndarray] = {}
        for tensor in request.inputs:
            spec = self.by_name.get(tensor.name)
            if spec is None:
                raise BadRequest(
                    f"unknown input '{tensor.name}': this model's inputs are "
                    f"{', '.join(repr(n) for n in self.by_name)}"
                )
            if tensor.name in feeds:
                raise BadRequest(f"input '{tensor.name}' is given twice")
            if tensor.datatype != spec.datatype:
                raise BadRequest(
                    f"input '{spec.name}': datatype is {tensor.datatype}, the model expects "
                    f"{spec.datatype}"
                )
            shape = tensor.shape
            rank, fixed = self._fixed[spec.name]
            if len(shape) != rank or any(shape[i] != d for i, d in fixed):
                check_shape(tensor, spec)  # raises with the details
            count = math.prod(shape)
            if tensor.raw is not None:
                arr = tensor_from_raw(tensor, count)
                fp32_json = False
            else:
                arr = tensor_from_json(tensor, count)
                fp32_json = spec.datatype == "FP32"
            # One finite check serves the NaN policy and FP32 overflow (JSON numbers too large
            # for FP32 decode to inf); models that allow NaN pay it for FP32 JSON inputs only.
            check_nan = self.check_nan and spec.datatype in FLOAT_TYPES
            if (check_nan or fp32_json) and not _all_finite(arr):
                if fp32_json:
                    check_fp32_range(tensor)  # raises when a finite value overflowed
                if check_nan:
                    raise BadRequest(
                        f"input '{spec.name}' holds NaN or Inf values, which this model "
                        "refuses; send finite numbers"
                    )
            feeds[spec.name] = arr
        if len(feeds) != len(self.by_name):
            missing = [name for name in self.by_name if name not in feeds]
            raise BadRequest(
                f"missing input(s) {', '.join(repr(n) for n in missing)}: this model needs "
                + describe(self.inputs)
            )
        if request.outputs is not None:
            for name in request.outputs:
                if name not in self.output_names:
                    raise BadRequest(
                        f"unknown output '{name}': this model's outputs are "
                        f"{', '.join(repr(n) for n in sorted(self.output_names))}"
                    )
        if not self.batched:
            return feeds, 1
        rows = -1
        for arr in feeds.values():
            if rows != arr.shape[0]:
                if rows != -1:
                    sizes = sorted({a.shape[0] for a in feeds.values()})
                    raise BadRequest(
                        "all inputs must have the same size in dimension 0 (the batch "
                        f"dimension); got {sizes}"
                    )
                rows = arr.shape[0]
        if rows == 0:
            raise BadRequest("the batch dimension (dimension 0) must be at least 1")
        return feeds, rows
