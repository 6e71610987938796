"""A stock V2 client (tritonclient.http) gets exactly what in-process ONNX Runtime returns."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as httpclient


@pytest.fixture(scope="module")
def triton(sidecar):
    client = httpclient.InferenceServerClient(url=sidecar.url.removeprefix("http://"))
    yield client
    client.close()


def _ort(repository, model, x):
    session = ort.InferenceSession(
        str(repository / model / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    return session.run(None, {"input": x})[0]


def test_health_and_metadata(triton):
    assert triton.is_server_live() and triton.is_server_ready()
    assert triton.is_model_ready("digits") and triton.is_model_ready("cnn", "1")
    meta = triton.get_model_metadata("digits", "1")
    assert meta["platform"] == "onnx_onnxv1"
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}]
    assert triton.get_model_metadata("cnn")["outputs"][0]["shape"] == [-1, 10]
    assert "binary_tensor_data" in triton.get_server_metadata()["extensions"]


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize(
    ("model", "version", "shape"),
    [("digits", "2", (3, 64)), ("digits", "1", (1, 64)), ("cnn", "1", (2, 3, 64, 64))],
)
def test_infer_matches_in_process_onnx_runtime(triton, repository, model, version, shape, binary):
    x = np.random.default_rng(sum(shape)).random(shape, dtype=np.float32)
    inp = httpclient.InferInput("input", list(shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    out = httpclient.InferRequestedOutput("probabilities", binary_data=binary)
    result = triton.infer(model, [inp], model_version=version, outputs=[out], request_id="r-1")
    response = result.get_response()
    assert response["model_version"] == version and response["id"] == "r-1"
    got = result.as_numpy("probabilities")
    np.testing.assert_array_equal(got, _ort(repository, f"{model}/{version}", x))


def test_infer_without_version_uses_the_highest(triton):
    inp = httpclient.InferInput("input", [1, 64], "FP32")
    inp.set_data_from_numpy(np.zeros((1, 64), dtype=np.float32))
    assert triton.infer("digits", [inp]).get_response()["model_version"] == "2"


def test_wrong_input_surfaces_as_a_client_error(triton):
    inp = httpclient.InferInput("pixels", [1, 64], "FP32")
    inp.set_data_from_numpy(np.zeros((1, 64), dtype=np.float32))
    with pytest.raises(Exception, match="unknown input 'pixels'"):
        triton.infer("digits", [inp])
