"""Test models of known cost, built locally: what the light sample models cannot show.

- `slow`: `x` FP32 [N, 64] → `y` [N, 1], four 1024x1024 matrix products per row (N = 2048
  rows: about 17 GFLOP, seconds on 2 cores);
- `wide`: `x` [N, 64] → `y` [N, 65536] (256 KiB of FP32 out per row: big answers from small
  requests).

Each runs one request per batch (`max_batch_size: 0`): the sizes above are per request.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from onnx import GraphProto, TensorProto, checker, helper, numpy_helper, save

WIDE_COLUMNS = 65536


def _graphs() -> dict[str, GraphProto]:
    weight = np.random.default_rng(0).standard_normal((1024, 1024)).astype(np.float32) / 32
    matmuls = [
        helper.make_node("MatMul", [a, "w"], [b])
        for a, b in (("t", "m1"), ("m1", "m2"), ("m2", "m3"), ("m3", "m4"))
    ]
    return {
        "slow": helper.make_graph(
            [
                helper.make_node("Tile", ["x", "repeats16"], ["t"]),
                *matmuls,
                helper.make_node("ReduceSum", ["m4", "axis1"], ["y"], keepdims=1),
            ],
            "slow",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])],
            [
                numpy_helper.from_array(np.array([1, 16], dtype=np.int64), "repeats16"),
                numpy_helper.from_array(weight, "w"),
                numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
            ],
        ),
        "wide": helper.make_graph(
            [helper.make_node("Tile", ["x", "repeats"], ["y"])],
            "wide",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", WIDE_COLUMNS])],
            [numpy_helper.from_array(np.array([1, WIDE_COLUMNS // 64], dtype=np.int64), "repeats")],
        ),
    }


def build_heavy_models(root: Path, names: tuple[str, ...] = ("slow", "wide")) -> Path:
    """`root/<name>/1/model.onnx` and its `config.yaml` for each of `names`."""
    graphs = _graphs()
    for name in names:
        model = helper.make_model(graphs[name], opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        checker.check_model(model)
        (root / name / "1").mkdir(parents=True)
        save(model, root / name / "1" / "model.onnx")
        (root / name / "config.yaml").write_text("batching: {max_batch_size: 0}\n")
    return root
