"""The Falcon app end to end with real ONNX Runtime sessions (threaded batching)."""

from __future__ import annotations

import json
from pathlib import Path

import falcon
import falcon.testing
import numpy as np
import onnxruntime as ort
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sidecar.errors import FAILURE_HEADER, SERVER_FAILURE
from sidecar.http.app import _http_error, create_app
from sidecar.server.assembly import load_dataplane
from sidecar.serving import dataplane
from sidecar.serving.batching import threaded_driver
from sidecar.settings import Settings


@pytest.fixture(scope="module")
def client(repository: Path) -> falcon.testing.TestClient:
    settings = Settings(models=str(repository), max_body_bytes=64 * 1024)
    return falcon.testing.TestClient(create_app(load_dataplane(settings, threaded_driver)))


def _ort(repository: Path, model: str, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(
        str(repository / model / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    return session.run(None, {"input": x})[0]


def test_health_and_server_metadata(client):
    assert client.simulate_get("/v2/health/live").status_code == 200
    assert client.simulate_get("/v2/health/ready").json == {"ready": True}
    meta = client.simulate_get("/v2").json
    assert meta["name"] == "weir" and "binary_tensor_data" in meta["extensions"]


def test_model_metadata_reports_signature_with_dynamic_dims(client):
    doc = client.simulate_get("/v2/models/cnn").json
    assert doc == {
        "name": "cnn",
        "versions": ["1"],
        "platform": "onnx_onnxv1",
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 3, 64, 64]}],
        "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}],
    }
    assert client.simulate_get("/v2/models/digits").json["versions"] == ["1", "2"]
    assert client.simulate_get("/v2/models/digits/versions/1/ready").json["ready"] is True


def test_json_infer_matches_onnx_runtime_and_names_the_version(client, repository):
    x = np.random.default_rng(1).random((3, 64), dtype=np.float32)
    body = {
        "id": "q7",
        "inputs": [{"name": "input", "shape": [3, 64], "datatype": "FP32", "data": x.tolist()}],
    }
    resp = client.simulate_post("/v2/models/digits/infer", json=body)
    assert resp.status_code == 200
    assert resp.headers["X-Weir-Model-Version"] == "2"
    doc = resp.json
    assert (doc["model_name"], doc["model_version"], doc["id"]) == ("digits", "2", "q7")
    got = np.array(doc["outputs"][0]["data"], dtype=np.float32).reshape(3, 10)
    np.testing.assert_array_equal(got, _ort(repository, "digits/2", x))


def test_binary_infer_round_trips_raw_tensors(client, repository):
    x = np.random.default_rng(2).random((1, 3, 64, 64), dtype=np.float32)
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": [1, 3, 64, 64],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": x.nbytes},
                }
            ],
            "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}],
        }
    ).encode()
    resp = client.simulate_post(
        "/v2/models/cnn/versions/1/infer",
        body=head + x.tobytes(),
        headers={
            "Inference-Header-Content-Length": str(len(head)),
            "Content-Type": "application/octet-stream",
        },
    )
    assert resp.status_code == 200
    n = int(resp.headers["Inference-Header-Content-Length"])
    meta = json.loads(resp.content[:n])
    assert meta["outputs"][0]["parameters"]["binary_data_size"] == 40
    got = np.frombuffer(resp.content[n:], dtype="<f4").reshape(1, 10)
    np.testing.assert_allclose(got, _ort(repository, "cnn/1", x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("path", "body", "status", "needle"),
    [
        ("/v2/models/digits/infer", b"{oops", 400, "not valid JSON"),
        ("/v2/models/nope/infer", b"{}", 404, "unknown model 'nope'"),
        ("/v2/models/digits/versions/9/infer", b"{}", 404, "no version '9'"),
        ("/v2/models/digits/infer", b"x" * (64 * 1024 + 1), 413, "over 65536 bytes"),
        ("/v2/nothing/here", b"", 404, "no such endpoint"),
    ],
)
def test_errors_are_json_with_their_status(client, path, body, status, needle):
    resp = client.simulate_post(path, body=body)
    assert resp.status_code == status
    assert needle in resp.json["error"]
    assert FAILURE_HEADER not in resp.headers  # a client's mistake, never the server's


def test_metrics_expose_the_sidecar_families(client):
    client.simulate_post(
        "/v2/models/digits/infer",
        json={
            "inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0.0] * 64}]
        },
    )
    text = client.simulate_get("/metrics").text
    for family in (
        "weir_inference_request_success_total",
        "weir_inference_request_failure_total",
        "weir_inference_count_total",
        "weir_inference_exec_count_total",
        "weir_request_duration_seconds_bucket",
        "weir_queue_duration_seconds_bucket",
        "weir_compute_duration_seconds_bucket",
        "weir_batch_size_bucket",
        "weir_prediction_confidence_bucket",
        "weir_queue_depth",
        "weir_model_load_seconds",
    ):
        assert family in text, family


def _post_without_length(app, path: str, body: bytes) -> tuple[str, bytes]:
    environ = falcon.testing.create_environ(path=path, method="POST", body=body)
    del environ["CONTENT_LENGTH"]  # as with Transfer-Encoding: chunked
    start = falcon.testing.StartResponseMock()
    data = b"".join(app(environ, start))
    return start.status, data


def test_bodies_without_content_length_are_read_and_bounded(client):
    good = json.dumps(
        {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0] * 64}]}
    ).encode()
    status, _ = _post_without_length(client.app, "/v2/models/digits/infer", good)
    assert status.startswith("200")
    status, data = _post_without_length(
        client.app, "/v2/models/digits/infer", b" " * (64 * 1024) + good
    )
    assert status.startswith("413") and b"over 65536 bytes" in data


def _sample(client, name: str, **labels: str) -> float | None:
    text = client.simulate_get("/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None


_DIGITS_ROW = {"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0.0] * 64}


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        ({"inputs": [{**_DIGITS_ROW, "datatype": ["FP32"]}]}, "unknown datatype"),
        ({"inputs": [{**_DIGITS_ROW, "datatype": {"a": 1}}]}, "unknown datatype"),
        (
            {"inputs": [_DIGITS_ROW], "outputs": [{"name": "probabilities", "parameters": "x"}]},
            "must be an object",
        ),
        (
            {"inputs": [_DIGITS_ROW], "outputs": [{"name": "probabilities", "parameters": [1]}]},
            "must be an object",
        ),
        (
            {"inputs": [_DIGITS_ROW], "parameters": {"binary_data_output": "false"}},
            "must be true or false",
        ),
        ({"inputs": [{**_DIGITS_ROW, "data": [True] * 64}]}, "must hold FP32 values"),
        ({"inputs": [{**_DIGITS_ROW, "data": [1e39] + [0.0] * 63}]}, "out of range for FP32"),
        (
            {"inputs": [{**_DIGITS_ROW, "shape": [2, 64], "data": [[0.0] * 32] * 4}]},
            "nested as [4, 32]",
        ),
    ],
)
def test_client_mistakes_answer_400_with_a_reason(client, doc, needle):
    before = _sample(
        client,
        "weir_inference_request_failure_total",
        model="digits",
        version="2",
        reason="bad_request",
    )
    resp = client.simulate_post("/v2/models/digits/infer", json=doc)
    assert resp.status_code == 400, resp.text
    assert needle in resp.json["error"]
    after = _sample(
        client,
        "weir_inference_request_failure_total",
        model="digits",
        version="2",
        reason="bad_request",
    )
    assert after == (before or 0) + 1


def test_unexpected_errors_are_counted_as_internal(client, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(dataplane, "encode_response", broken)
    labels = {"model": "digits", "version": "2", "reason": "internal"}
    before = _sample(client, "weir_inference_request_failure_total", **labels) or 0
    resp = client.simulate_post("/v2/models/digits/infer", json={"inputs": [_DIGITS_ROW]})
    assert resp.status_code == 500
    assert resp.headers[FAILURE_HEADER] == SERVER_FAILURE
    assert _sample(client, "weir_inference_request_failure_total", **labels) == before + 1


def test_queue_depth_reads_zero_once_requests_are_answered(client):
    for _ in range(3):
        resp = client.simulate_post("/v2/models/digits/infer", json={"inputs": [_DIGITS_ROW]})
        assert resp.status_code == 200
    assert _sample(client, "weir_queue_depth", model="digits", version="2") == 0.0


@pytest.mark.parametrize("headers", [{"Retry-After": "3"}, [("Retry-After", "3")]])
def test_falcon_errors_keep_their_headers_in_either_form(headers):
    class Slow:
        def on_get(self, req, resp):
            raise falcon.HTTPError(falcon.HTTP_429, title="slow down", headers=headers)

    app = falcon.App()
    app.add_route("/slow", Slow())
    app.add_error_handler(falcon.HTTPError, _http_error)
    result = falcon.testing.TestClient(app).simulate_get("/slow")
    assert result.status_code == 429
    assert result.headers["Retry-After"] == "3"
    assert result.json == {"error": "slow down"}


@pytest.mark.parametrize(("status", "ours"), [(falcon.HTTP_400, False), (falcon.HTTP_503, True)])
def test_falcon_errors_of_ours_carry_the_failure_header(status, ours):
    class Failing:
        def on_get(self, req, resp):
            raise falcon.HTTPError(status, title="no")

    app = falcon.App()
    app.add_route("/f", Failing())
    app.add_error_handler(falcon.HTTPError, _http_error)
    result = falcon.testing.TestClient(app).simulate_get("/f")
    assert (result.headers.get(FAILURE_HEADER) == SERVER_FAILURE) is ours
