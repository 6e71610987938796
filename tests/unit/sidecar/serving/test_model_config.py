"""config.yaml: batching overrides, labels with a post-processing hook, NaN policy, errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import falcon.testing
import pytest

from scripts.fleet.model_view import build_view
from scripts.release import parse_release
from sidecar.http.app import create_app
from sidecar.server.assembly import load_dataplane
from sidecar.serving.batching import threaded_driver
from sidecar.serving.model_config import Batching, ConfigError, load_model_config
from sidecar.settings import Settings

HOOK = """
import numpy as np

OUTPUTS = [{"name": "label", "datatype": "BYTES", "shape": [-1, 1]}]


def postprocess(outputs, labels):
    top = outputs["probabilities"].argmax(axis=1)
    return {"label": np.array([[labels[i].encode()] for i in top], dtype=object)}
"""

LABELS = [f"digit-{i}" for i in range(10)]


@pytest.fixture(scope="module")
def client(repository: Path, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("repo")
    (root / "digits" / "1").mkdir(parents=True)
    shutil.copy(repository / "digits/1/model.onnx", root / "digits/1/model.onnx")
    (root / "digits" / "hook.py").write_text(HOOK)
    (root / "digits" / "config.yaml").write_text(
        "batching: {max_batch_size: 8, max_queue_delay_ms: 1}\n"
        "versions: {'1': {max_queue_size: 3}}\n"
        "nan_policy: allow\n"
        f"labels: {LABELS}\n"
        "hook: hook.py\n"
    )
    dataplane = load_dataplane(Settings(models=str(root), max_body_bytes=1 << 20), threaded_driver)
    return dataplane, falcon.testing.TestClient(create_app(dataplane))


def test_version_overrides_and_model_defaults_combine(client):
    dataplane, _ = client
    policy = dataplane.repository.get("digits", "1").policy
    assert (policy.max_batch_size, policy.max_queue_delay, policy.max_queue_size) == (8, 0.001, 3)


def test_batching_declares_the_defaults_the_sidecar_settings_start_from():
    fields = ("max_batch_size", "max_queue_delay_ms", "max_queue_size")
    batching, settings = Batching(), Settings()
    assert [getattr(batching, f) for f in fields] == [64, 0.0, 256]
    assert [getattr(settings, f) for f in fields] == [getattr(batching, f) for f in fields]


def test_a_batching_field_counts_only_when_given_and_null_is_not_given(tmp_path):
    (tmp_path / "config.yaml").write_text(
        "batching: {max_batch_size: 8, max_queue_size: null}\n"
        "versions: {'2': {max_queue_delay_ms: 5}}\n"
    )
    config = load_model_config(tmp_path)
    assert config.batching.given("max_batch_size") == 8
    assert config.batching.given("max_queue_size") is None
    assert config.versions["2"].given("max_batch_size") is None
    assert config.versions["2"].given("max_queue_delay_ms") == 5


def test_what_config_yaml_leaves_out_comes_from_the_sidecar_settings(repository, tmp_path):
    shutil.copytree(repository / "digits" / "1", tmp_path / "digits" / "1")
    (tmp_path / "digits" / "config.yaml").write_text("versions: {'1': {max_batch_size: 4}}\n")
    settings = Settings(
        models=str(tmp_path),
        max_batch_size=16,
        max_queue_delay_ms=4,
        max_queue_size=7,
        repository_poll_seconds=0,
    )
    policy = load_dataplane(settings, threaded_driver).repository.get("digits", "1").policy
    assert (policy.max_batch_size, policy.max_queue_delay, policy.max_queue_size) == (4, 0.004, 7)


def test_hook_adds_its_declared_output_with_labels(client):
    _, http = client
    meta = http.simulate_get("/v2/models/digits").json
    assert meta["outputs"][-1] == {"name": "label", "datatype": "BYTES", "shape": [-1, 1]}
    body = {
        "inputs": [
            {
                "name": "input",
                "shape": [2, 64],
                "datatype": "FP32",
                "data": [0.0] * 64 + [16.0] * 64,
            }
        ],
        "outputs": [{"name": "label"}],
    }
    resp = http.simulate_post("/v2/models/digits/infer", json=body)
    assert resp.status_code == 200, resp.text
    (out,) = resp.json["outputs"]
    assert out["name"] == "label" and out["datatype"] == "BYTES" and out["shape"] == [2, 1]
    assert all(label in LABELS for label in out["data"])


def test_nan_policy_allow_lets_nan_through(client):
    _, http = client
    body = {
        "inputs": [
            {"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [float("nan")] * 64}
        ]
    }
    assert http.simulate_post("/v2/models/digits/infer", json=body).status_code == 200


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("batching: {max_batch_size: -1}", "batching.max_batch_size"),
        ("batching: {max_wait: 3}", "batching.max_wait"),
        ("nan_policy: sometimes", "nan_policy"),
        ("batching: [", "not valid YAML"),
    ],
)
def test_bad_config_names_the_file_and_key(tmp_path, text, needle):
    (tmp_path / "config.yaml").write_text(text)
    with pytest.raises(ConfigError, match=needle) as err:
        load_model_config(tmp_path)
    assert str(tmp_path / "config.yaml") in str(err.value)


def test_a_hook_serves_through_weir_ups_symlinked_view(tmp_path, repository):
    models = tmp_path / "models"
    (models / "digits" / "1").mkdir(parents=True)
    shutil.copy(repository / "digits/1/model.onnx", models / "digits/1/model.onnx")
    (models / "digits" / "hook.py").write_text(HOOK)
    (models / "digits" / "config.yaml").write_text(f"labels: {LABELS}\nhook: hook.py\n")
    view = build_view(
        parse_release('revision: 1\nmodels: {digits: {versions: {"1": {}}}}\n'),
        models,
        tmp_path / "view",
    )
    assert (view / "digits" / "hook.py").is_symlink()
    settings = Settings(models=str(view), repository_poll_seconds=0)
    assert (
        load_dataplane(settings, threaded_driver).repository.get("digits", "1").model_class
        is not None
    )


@pytest.mark.parametrize("name", ["../hook.py", "/etc/hostname"])
def test_a_hook_outside_the_model_folder_is_refused(tmp_path, repository, name):
    (tmp_path / "digits" / "1").mkdir(parents=True)
    shutil.copy(repository / "digits/1/model.onnx", tmp_path / "digits/1/model.onnx")
    (tmp_path / "hook.py").write_text(HOOK)
    (tmp_path / "digits" / "config.yaml").write_text(f"hook: {name}\n")
    settings = Settings(models=str(tmp_path), repository_poll_seconds=0, max_body_bytes=1 << 20)
    dataplane = load_dataplane(settings, threaded_driver)
    assert dataplane.repository.names() == []
    response = falcon.testing.TestClient(create_app(dataplane)).simulate_get(
        "/v2/models/digits/versions/1"
    )
    assert response.status_code == 404
    assert "must be a file inside" in response.json["error"]
