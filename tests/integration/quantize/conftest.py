"""Real `weir quantize` runs on copies of the sample models, in temporary repositories."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.integration.sidecar import conftest as sidecar_tests

ROOT = Path(__file__).resolve().parents[3]
SAMPLES = sidecar_tests.SAMPLES
# The sample repository, built into a temporary one when `make models` has not run.
repository = sidecar_tests.repository


def copy_samples(samples: Path, target: Path) -> Path:
    """A repository of copies (not links: quantize writes beside them)."""
    for sample in SAMPLES:
        (target / sample).mkdir(parents=True)
        shutil.copy(samples / sample / "model.onnx", target / sample / "model.onnx")
    return target


def quantize(repo: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """`weir quantize ARGV --repository REPO`, as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "scripts.cli", "quantize", *argv, "--repository", str(repo)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def fragile_under_int8(tmp_path: Path) -> tuple[Path, Path]:
    """`fragile` v1 and a labelled calibration file that int8 must fail on: input column 0
    is noise of ±1000 the model ignores, columns 1-3 (±1) decide the class. One int8 scale for
    the whole input (per-tensor activations) is ~8, so the deciding columns round to 0."""
    from onnx import TensorProto, checker, helper, numpy_helper, save

    weights = np.vstack([np.zeros((1, 3)), np.eye(3)]).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Gemm", ["input", "w", "b"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
        ],
        "fragile",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 3])],
        [
            numpy_helper.from_array(weights, "w"),
            numpy_helper.from_array(np.zeros(3, np.float32), "b"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    checker.check_model(model)
    root = tmp_path / "fragile-repo"
    (root / "fragile" / "1").mkdir(parents=True)
    save(model, root / "fragile" / "1" / "model.onnx")
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (400, 4)).astype(np.float32)
    x[:, 0] *= 1000
    data = tmp_path / "fragile.npz"
    np.savez(data, input=x, labels=x[:, 1:].argmax(axis=1))
    return root, data
