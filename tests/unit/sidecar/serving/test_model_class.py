"""Model classes: the signature clients see, preprocess before batching, postprocess after,
and Triton's classification extension; the model's own failures are 500s, a client's 400s."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from sidecar.errors import BadRequest, InferenceFailed
from sidecar.serving.batching import BatchPolicy, threaded_driver
from sidecar.serving.dataplane import DataPlane
from sidecar.serving.processing import classify
from sidecar.serving.readiness import Readiness
from sidecar.serving.repository import Repository

MODEL_CLASS = """
import numpy as np
from sidecar.serving.model_class import BadRequest


class Model:
    inputs = [{"name": "pixels", "datatype": "UINT8", "shape": [-1, 64]}]
    outputs = [{"name": "top", "datatype": "INT64", "shape": [-1]},
               {"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}]

    def __init__(self, context):
        self.context = context

    def preprocess(self, inputs):
        pixels = inputs["pixels"]
        if pixels.max() == 99:
            raise BadRequest("99 is not a pixel value here")
        if pixels.max() == 98:
            raise ValueError("a bug in the model class, with a secret path /srv/x")
        if pixels.max() == 97:
            return {"input": pixels.astype(np.float64)}  # not what the ONNX model takes
        return {"input": pixels.astype(np.float32) / 16.0}

    def postprocess(self, outputs):
        p = outputs["probabilities"]
        return {"top": p.argmax(axis=1), "probabilities": p}
"""


def _plane(root: Path) -> DataPlane:
    load = Repository.loader(BatchPolicy(4, 0.0, 8), "cpu", 1, threaded_driver)
    readiness = Readiness()
    readiness.mark_ready()
    return DataPlane(Repository.load(root, load), readiness, 1 << 20)


@pytest.fixture(scope="module")
def plane(repository: Path, tmp_path_factory: pytest.TempPathFactory) -> DataPlane:
    root = tmp_path_factory.mktemp("classes")
    (root / "digits" / "1").mkdir(parents=True)
    shutil.copy(repository / "digits/1/model.onnx", root / "digits/1/model.onnx")
    (root / "digits" / "model.py").write_text(MODEL_CLASS)
    (root / "digits" / "config.yaml").write_text(
        "model_class: model.py\nlabels: [zero, one, two, three, four, five, six, seven, "
        "eight, nine]\n"
    )
    return _plane(root)


def _infer(plane: DataPlane, doc: dict, model: str = "digits") -> dict:
    body = json.dumps(doc).encode()
    result = plane.infer(model, None, io.BytesIO(body).read, len(body), None)
    return json.loads(result.body)


def _pixels(value: int, rows: int = 2, outputs: list | None = None) -> dict:
    doc: dict = {
        "inputs": [
            {
                "name": "pixels",
                "shape": [rows, 64],
                "datatype": "UINT8",
                "data": [value] * 64 * rows,
            }
        ]
    }
    if outputs is not None:
        doc["outputs"] = outputs
    return doc


def test_metadata_reports_the_signature_the_model_class_declares(plane):
    doc, _ = plane.model_metadata("digits", "1")
    assert doc["inputs"] == [{"name": "pixels", "datatype": "UINT8", "shape": [-1, 64]}]
    assert [o["name"] for o in doc["outputs"]] == ["top", "probabilities"]


def test_clients_send_the_declared_inputs_and_get_what_postprocess_returns(plane):
    doc = _infer(plane, _pixels(8))
    assert [(o["name"], o["shape"]) for o in doc["outputs"]] == [
        ("top", [2]),
        ("probabilities", [2, 10]),
    ]


def test_requests_are_validated_against_the_declared_inputs_not_the_onnx_ones(plane):
    tensor = {"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0.0] * 64}
    with pytest.raises(BadRequest, match=r"unknown input 'input'.*'pixels'"):
        _infer(plane, {"inputs": [tensor]})
    with pytest.raises(BadRequest, match="datatype is UINT16, the model expects UINT8"):
        _infer(plane, {"inputs": [{**_pixels(1)["inputs"][0], "datatype": "UINT16"}]})


def test_a_bad_input_refused_by_preprocess_is_a_400_with_its_message(plane):
    with pytest.raises(BadRequest, match="99 is not a pixel value here"):
        _infer(plane, _pixels(99))


def test_a_failing_or_wrong_preprocess_is_the_models_500_and_leaks_nothing(plane):
    with pytest.raises(InferenceFailed) as err:
        _infer(plane, _pixels(98))
    assert (
        "/srv/x" not in err.value.message
        and "pre-processing of model 'digits'" in err.value.message
    )
    with pytest.raises(InferenceFailed, match="produced inputs its ONNX model does not take"):
        _infer(plane, _pixels(97))


def test_classification_answers_score_index_label_for_the_top_k(plane):
    outputs = [{"name": "probabilities", "parameters": {"classification": 3}}]
    (out,) = _infer(plane, _pixels(8, rows=2, outputs=outputs))["outputs"]
    assert (out["datatype"], out["shape"]) == ("BYTES", [2, 3])
    score, index, label = out["data"][0].split(":")
    assert 0.0 <= float(score) <= 1.0
    assert (
        label
        == ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"][
            int(index)
        ]
    )


def test_classification_with_a_bad_k_is_a_400(plane):
    with pytest.raises(BadRequest, match="classification must be the number of top classes"):
        _infer(plane, _pixels(8, outputs=[{"name": "top", "parameters": {"classification": 0}}]))


def test_classify_clamps_k_and_leaves_labels_out_when_there_are_none():
    scores = np.array([[0.1, 0.7, 0.2]], dtype=np.float32)
    assert classify(scores, 5, None).tolist() == [[b"0.700000:1", b"0.200000:2", b"0.100000:0"]]
    assert classify(scores[0], 1, ["a", "b", "c"]).tolist() == [b"0.700000:1:b"]


def test_a_model_class_with_its_own_inputs_but_no_preprocess_does_not_load(repository, tmp_path):
    (tmp_path / "digits" / "1").mkdir(parents=True)
    shutil.copy(repository / "digits/1/model.onnx", tmp_path / "digits/1/model.onnx")
    (tmp_path / "digits" / "model.py").write_text(
        'class Model:\n    inputs = [{"name": "x", "datatype": "FP32", "shape": [-1, 64]}]\n'
        "    def __init__(self, context):\n        pass\n"
    )
    (tmp_path / "digits" / "config.yaml").write_text("model_class: model.py\n")
    plane = _plane(tmp_path)
    with pytest.raises(Exception, match="needs preprocess"):
        plane.model_metadata("digits", "1")


def test_uploads_to_a_tensor_model_are_refused_saying_what_it_takes(repository, tmp_path):
    (tmp_path / "digits").symlink_to(repository / "digits")
    load = Repository.loader(BatchPolicy(8, 0.0, 16), "cpu", 1, threaded_driver)
    plane = DataPlane(Repository.load(tmp_path, load), Readiness(), 1 << 20)
    body = b"\x89PNG\r\n\x1a\n not decoded: refused first"
    with pytest.raises(BadRequest, match=r"takes no image uploads.*'input' FP32 \[-1,64\]"):
        plane.infer("digits", None, io.BytesIO(body).read, len(body), None, "image/png")
