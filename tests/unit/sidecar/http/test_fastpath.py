"""The fast infer route answers exactly as the Falcon resource does, errors included."""

from __future__ import annotations

import json
from pathlib import Path

import falcon.testing
import numpy as np
import pytest

from sidecar.http.app import create_app, serving_app
from sidecar.http.fastpath import parse_infer_path
from sidecar.server.assembly import load_dataplane
from sidecar.serving.batching import threaded_driver
from sidecar.settings import Settings

LIMIT = 256 * 1024


@pytest.fixture(scope="module")
def clients(repository: Path):
    settings = Settings(models=str(repository), max_body_bytes=LIMIT)
    dataplane = load_dataplane(settings, threaded_driver)
    return (
        falcon.testing.TestClient(create_app(dataplane)),
        falcon.testing.TestClient(serving_app(dataplane)),
    )


def _json(shape, data, datatype="FP32", name="input", **extra):
    doc = {
        "id": "x",
        "inputs": [{"name": name, "shape": shape, "datatype": datatype, "data": data}],
        **extra,
    }
    return json.dumps(doc).encode(), {}


def _binary():
    x = np.linspace(0, 1, 64, dtype=np.float32).reshape(1, 64)
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": [1, 64],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 256},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    return head + x.tobytes(), {"Inference-Header-Content-Length": str(len(head))}


CASES = [
    ("/v2/models/digits/infer", *_json([1, 64], [0.5] * 64)),
    ("/v2/models/digits/versions/1/infer", *_binary()),
    ("/v2/models/digits/infer", b"{", {}),
    ("/v2/models/digits/infer", *_json([1, 63], [0.5] * 63)),
    ("/v2/models/digits/infer", *_json([1, 64], ["a"] * 64)),
    ("/v2/models/ghost/infer", *_json([1, 64], [0.5] * 64)),
    ("/v2/models/digits/versions/5/infer", *_json([1, 64], [0.5] * 64)),
    ("/v2/models/digits/infer", b" " * (LIMIT + 1), {}),
]


@pytest.mark.parametrize(("path", "body", "headers"), CASES)
def test_fast_route_and_falcon_resource_agree(clients, path, body, headers):
    via_falcon, via_fast = (c.simulate_post(path, body=body, headers=headers) for c in clients)
    assert via_fast.status == via_falcon.status
    assert via_fast.content == via_falcon.content
    for name in (
        "Content-Type",
        "X-Weir-Model-Version",
        "Inference-Header-Content-Length",
        "Retry-After",
    ):
        assert via_fast.headers.get(name) == via_falcon.headers.get(name), name


def test_other_routes_still_reach_falcon(clients):
    _, fast = clients
    assert fast.simulate_get("/v2/models/digits").json["name"] == "digits"
    assert fast.simulate_get("/v2/models/digits/infer").status_code == 405


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v2/models/m/infer", ("m", None)),
        ("/v2/models/m/versions/3/infer", ("m", "3")),
        ("/v2/models//infer", None),
        ("/v2/models/m/versions//infer", None),
        ("/v2/models/m/extra/3/infer", None),
        ("/v2/models/m/ready", None),
    ],
)
def test_infer_paths_are_recognised_exactly(path, expected):
    assert parse_infer_path(path) == expected


def test_parsed_infer_paths_are_kept_for_a_bounded_number_of_paths(monkeypatch):
    from sidecar.http import fastpath

    monkeypatch.setattr(fastpath, "TARGETS_KEPT", 2)
    seen = []

    class Plane:
        def infer(self, model, version, read, length, header_length, content_type=None):
            seen.append((model, version))
            raise fastpath.WeirError("stop here")

    class Body:
        read = None

    falcon_paths = []
    route = fastpath.InferRoute(
        lambda environ, start: falcon_paths.append(environ["PATH_INFO"]) or [b""], Plane()
    )
    paths = [f"/v2/models/m{i}/infer" for i in range(4)] + ["/v2/models/m0/versions/3/infer"]
    for path in [*paths, *paths, "/v2/models//infer", "/v2/health/ready"]:
        environ = {"REQUEST_METHOD": "POST", "PATH_INFO": path, "wsgi.input": Body}
        route(environ, lambda *a: None)
    route({"REQUEST_METHOD": "GET", "PATH_INFO": paths[0]}, lambda *a: None)
    expected = [("m0", None), ("m1", None), ("m2", None), ("m3", None), ("m0", "3")]
    assert seen == expected * 2
    assert route._targets == {paths[0]: ("m0", None), paths[1]: ("m1", None)}
    assert falcon_paths == ["/v2/models//infer", "/v2/health/ready", paths[0]]


@pytest.mark.parametrize("length", ["abc", "-1", "1e3", " 12"])
def test_a_malformed_content_length_is_a_client_error(clients, length):
    app = clients[1].app
    body, _ = _json([1, 64], [0.5] * 64)
    environ = falcon.testing.create_environ("/v2/models/digits/infer", method="POST", body=body)
    environ["CONTENT_LENGTH"] = length
    answered = []
    chunks = app(environ, lambda status, headers: answered.append((status, dict(headers))))
    status, headers = answered[0]
    assert status.startswith("400")
    assert "Content-Length" in json.loads(b"".join(chunks))["error"]
    assert "X-Weir-Failure" not in headers
