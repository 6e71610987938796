"""ONNX Runtime sessions on the sample models: signature, providers, run, warmup, threads."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from sidecar.serving.onnx_session import (
    Session,
    TensorSpec,
    default_intra_op_threads,
    gpu_present,
    providers_for,
)


def test_the_signature_is_the_models_own_with_dynamic_dimensions_as_none(repository: Path):
    session = Session(str(repository / "cnn/1/model.onnx"), "cpu", 1)
    assert session.inputs == [TensorSpec("input", "FP32", (None, 3, 64, 64))]
    assert session.outputs == [TensorSpec("probabilities", "FP32", (None, 10))]
    assert session.output_names == ["probabilities"]
    assert session.providers == ["CPUExecutionProvider"]


def test_metadata_writes_dynamic_dimensions_as_minus_one():
    spec = TensorSpec("input", "FP32", (None, 64))
    assert spec.metadata() == {"name": "input", "datatype": "FP32", "shape": [-1, 64]}


def test_run_answers_what_onnx_runtime_itself_answers(repository: Path):
    path = str(repository / "digits/2/model.onnx")
    x = np.random.default_rng(3).random((5, 64), dtype=np.float32)
    (ours,) = Session(path, "cpu", 1).run({"input": x})
    (reference,) = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(
        None, {"input": x}
    )
    assert ours.shape == (5, 10)
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("batch", [0, 1, 8])
def test_warmup_runs_the_model_at_the_batch_size_and_at_one_row(repository: Path, batch):
    session = Session(str(repository / "digits/1/model.onnx"), "cpu", 1)
    seen = []
    run = session.run
    session.run = lambda feeds: seen.append(feeds["input"].shape) or run(feeds)  # type: ignore[method-assign]
    session.warmup(batch)
    assert seen == sorted({(max(1, batch), 64), (1, 64)}, reverse=True)


def test_providers_pin_the_gpu_this_process_sees_as_device_0():
    assert providers_for("cpu") == ["CPUExecutionProvider"]
    assert providers_for("3") == [
        ("CUDAExecutionProvider", {"device_id": 0}),
        "CPUExecutionProvider",
    ]


@pytest.mark.skipif(gpu_present(), reason="this machine has a GPU")
def test_a_gpu_session_without_a_gpu_fails_instead_of_running_on_the_cpu(repository: Path):
    with pytest.raises(RuntimeError, match="CUDA execution provider did not start"):
        Session(str(repository / "digits/1/model.onnx"), "0", 1)


def test_intra_op_threads_share_the_cpus_between_workers():
    cpus = len(os.sched_getaffinity(0))
    assert default_intra_op_threads(1) == cpus
    assert default_intra_op_threads(cpus * 4) == 1
    assert default_intra_op_threads(0) == cpus  # never a division by zero
