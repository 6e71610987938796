"""Canaries for the rollout tests, built from the real digits v1 graph (logistic regression,
`input` FP32 [N,64] -> `probabilities` FP32 [N,10]):

- `healthy`: the same graph;
- `failing`: the same, but a request whose pixel 0 is set fails in ONNX Runtime (a Reshape to
  a width its output cannot take). Pixel 0 of scikit-learn's digits is always 0, so clients
  poison a request on purpose by setting it; alone in its batch, the sidecar answers it 500
  marked as its own failure;
- `no_three`: never predicts class 3 (its probability zeroed, the rest renormalised): fast,
  error-free, and wrong on every 3;
- `permuted`: the same answers with the classes moved round (`PERMUTATION`): its confidence
  and class histograms are the source's, its top-1 agrees with it on about 10% of the rows;
- `slow`: the same answers, after about 17 GFLOP of matrix products per row.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_digits

POISON_PIXEL = 0


def digits_bodies(poison_every: int | None = None) -> list[bytes]:
    """One V2 JSON infer body per digits row (scikit-learn's, scaled as the samples were
    trained); every `poison_every`-th one (the first included) with `POISON_PIXEL` set."""
    x, _ = load_digits(return_X_y=True)
    bodies = []
    for i, row in enumerate((x / 16).astype(np.float32)):
        data = row.tolist()
        if poison_every and i % poison_every == 0:
            data[POISON_PIXEL] = 1.0
        body = {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": data}]}
        bodies.append(json.dumps(body).encode())
    return bodies


def _base(source: Path) -> onnx.ModelProto:
    model = onnx.load(str(source))
    (out,) = [n for n in model.graph.node if "probabilities" in n.output]
    out.output[:] = ["p0"]
    return model


def _const(name: str, value: np.ndarray) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value, name=name))


def failing(source: Path) -> onnx.ModelProto:
    model = _base(source)
    model.graph.node.extend(
        [
            _const("starts", np.array([POISON_PIXEL], dtype=np.int64)),
            _const("ends", np.array([POISON_PIXEL + 1], dtype=np.int64)),
            _const("axes", np.array([1], dtype=np.int64)),
            helper.make_node("Slice", ["input", "starts", "ends", "axes"], ["pixel"]),
            helper.make_node("ReduceMax", ["pixel"], ["top"], keepdims=0),
            helper.make_node("Cast", ["top"], ["flag"], to=TensorProto.INT64),
            _const("wide", np.array(1000, dtype=np.int64)),
            _const("ten", np.array([10], dtype=np.int64)),
            _const("minus_one", np.array([-1], dtype=np.int64)),
            helper.make_node("Mul", ["flag", "wide"], ["extra"]),
            helper.make_node("Add", ["ten", "extra"], ["width"]),
            helper.make_node("Concat", ["minus_one", "width"], ["shape"], axis=0),
            helper.make_node("Reshape", ["p0", "shape"], ["probabilities"]),
        ]
    )
    onnx.checker.check_model(model)
    return model


def no_three(source: Path) -> onnx.ModelProto:
    model = _base(source)
    mask = np.ones((1, 10), dtype=np.float32)
    mask[0, 3] = 0.0
    model.graph.node.extend(
        [
            _const("mask", mask),
            helper.make_node("Mul", ["p0", "mask"], ["masked"]),
            _const("sum_axes", np.array([1], dtype=np.int64)),
            helper.make_node("ReduceSum", ["masked", "sum_axes"], ["total"], keepdims=1),
            helper.make_node("Div", ["masked", "total"], ["probabilities"]),
        ]
    )
    onnx.checker.check_model(model)
    return model


def write(model: onnx.ModelProto, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(folder / "model.onnx"))


# Output class j of `permuted` is class PERMUTATION[j] of the source: class 0 stays, the other
# nine move one place round a cycle. Its confidence and (on balanced traffic) its class
# histogram are the source's, and it agrees with it only where the answer is 0: about 10%.
PERMUTATION = [0, 2, 3, 4, 5, 6, 7, 8, 9, 1]


def permuted(source: Path) -> onnx.ModelProto:
    model = _base(source)
    model.graph.node.extend(
        [
            _const("permutation", np.array(PERMUTATION, dtype=np.int64)),
            helper.make_node("Gather", ["p0", "permutation"], ["probabilities"], axis=1),
        ]
    )
    onnx.checker.check_model(model)
    return model


# `slow` repeats each row SLOW_REPEATS times into 1024 columns and runs four 1024x1024 matrix
# products on them (about 17 GFLOP a row: a fifth of a second or more here), then
# adds 0 times their sum to the source's answer: the same answers, slowly.
SLOW_REPEATS = 2048


def slow(source: Path) -> onnx.ModelProto:
    model = _base(source)
    weight = np.random.default_rng(0).standard_normal((1024, 1024)).astype(np.float32) / 32
    model.graph.node.extend(
        [
            _const("repeats", np.array([SLOW_REPEATS, 16], dtype=np.int64)),
            helper.make_node("Tile", ["input", "repeats"], ["tiled"]),
            _const("w", weight),
            helper.make_node("MatMul", ["tiled", "w"], ["m1"]),
            helper.make_node("MatMul", ["m1", "w"], ["m2"]),
            helper.make_node("MatMul", ["m2", "w"], ["m3"]),
            helper.make_node("MatMul", ["m3", "w"], ["m4"]),
            helper.make_node("ReduceSum", ["m4"], ["total"], keepdims=0),
            _const("zero", np.array(0.0, dtype=np.float32)),
            helper.make_node("Mul", ["total", "zero"], ["nothing"]),
            helper.make_node("Add", ["p0", "nothing"], ["probabilities"]),
        ]
    )
    onnx.checker.check_model(model)
    return model
