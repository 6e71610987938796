"""`handwriting` in a data plane: images in every way a client sends them, labels out, and a
clear 400 for every image it cannot read."""

from __future__ import annotations

import base64
import io
import json
import struct
from pathlib import Path

import pytest
import urllib3
from PIL import Image

from models import build_samples
from sidecar.errors import BadRequest
from sidecar.serving.batching import BatchPolicy, threaded_driver
from sidecar.serving.dataplane import DataPlane
from sidecar.serving.readiness import Readiness
from sidecar.serving.repository import Repository
from tests import images


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> DataPlane:
    root = build_samples.REPOSITORY
    if not (root / "handwriting" / "1" / "model.onnx").is_file():  # pragma: no cover
        pytest.skip("needs the sample models: make models")
    view = tmp_path_factory.mktemp("hw")
    (view / "handwriting").symlink_to(root / "handwriting")
    load = Repository.loader(BatchPolicy(8, 0.0, 16), "cpu", 1, threaded_driver)
    readiness = Readiness()
    readiness.mark_ready()
    return DataPlane(Repository.load(Path(view), load), readiness, 8 << 20)


def _infer(
    plane: DataPlane, body: bytes, content_type: str | None, header: str | None = None
) -> tuple[dict, list[tuple[str, str]]]:
    result = plane.infer(
        "handwriting", None, io.BytesIO(body).read, len(body), header, content_type
    )
    json_len = int(dict(result.headers).get("Inference-Header-Content-Length", len(result.body)))
    return json.loads(result.body[:json_len]), result.headers


def _outputs(doc: dict) -> dict[str, list]:
    return {o["name"]: o.get("data") for o in doc["outputs"]}


def test_metadata_says_images_in_and_labels_out(plane):
    doc, _ = plane.model_metadata("handwriting", None)
    assert doc["inputs"] == [{"name": "image", "datatype": "BYTES", "shape": [-1]}]
    assert [o["name"] for o in doc["outputs"]] == ["label", "confidence", "probabilities"]


def test_a_multipart_upload_of_several_files_answers_one_row_each(plane):
    files = [images.digit_file(i, style=i % 6) for i in range(6)]
    fields = [("image", (f"{i}.png", data, "image/png")) for i, (data, _) in enumerate(files)]
    body, content_type = urllib3.encode_multipart_formdata(fields)
    doc, _ = _infer(plane, body, content_type)
    out = _outputs(doc)
    assert out["label"] == [str(label) for _, label in files]
    assert all(0.0 < c <= 1.0 for c in out["confidence"])


def test_a_raw_png_body_answers_the_label_with_its_confidence(plane):
    doc, _ = _infer(plane, images.SEVEN.read_bytes(), "image/png")
    out = _outputs(doc)
    assert out["label"] == ["7"] and out["confidence"][0] > 0.9


def test_a_photo_taken_sideways_is_read_upright_by_its_exif_orientation(plane):
    with Image.open(images.SEVEN) as seven:
        stored = seven.convert("RGB").resize((300, 300)).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display": what a phone writes
    out = io.BytesIO()
    stored.save(out, "JPEG", exif=exif)
    doc, _ = _infer(plane, out.getvalue(), "image/jpeg")
    assert _outputs(doc)["label"] == ["7"]


def test_v2_json_carries_images_as_base64_and_binary_as_the_files_bytes(plane):
    seven = images.SEVEN.read_bytes()
    tensor = {"name": "image", "shape": [1], "datatype": "BYTES"}
    doc = {"inputs": [{**tensor, "data": [base64.b64encode(seven).decode()]}]}
    answer, _ = _infer(plane, json.dumps(doc).encode(), "application/json")
    assert _outputs(answer)["label"] == ["7"]
    raw = struct.pack("<I", len(seven)) + seven
    head = json.dumps(
        {
            "inputs": [{**tensor, "parameters": {"binary_data_size": len(raw)}}],
            "outputs": [{"name": "probabilities", "parameters": {"classification": 3}}],
        }
    ).encode()
    answer, _ = _infer(plane, head + raw, None, str(len(head)))
    (out,) = answer["outputs"]
    assert (out["name"], out["datatype"], out["shape"]) == ("probabilities", "BYTES", [1, 3])
    assert out["data"][0].endswith(":7:7")


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"GIF89a not what this model reads", "image is not a PNG or JPEG image"),
        (images.truncated(images.digit_file(3, style=3)[0]), "does not decode whole"),
        (images.png_declaring(40000, 40000), "image is 40000×40000"),  # noqa: RUF001
        (images.png(5000, 5000, 0), "is 5000×5000 (25000000 pixels), the limit is 16777216"),  # noqa: RUF001
        (images.png(64, 64, 200), "holds no digit"),
    ],
)
def test_every_unreadable_image_is_a_400_that_says_why(plane, data, needle):
    with pytest.raises(BadRequest) as err:
        _infer(plane, data, "image/png")
    assert needle in err.value.message


def test_a_bad_file_among_several_is_named_by_its_place(plane):
    good = images.SEVEN.read_bytes()
    fields = [("image", ("a.png", good, "image/png")), ("image", ("b.png", b"nope", "image/png"))]
    body, content_type = urllib3.encode_multipart_formdata(fields)
    with pytest.raises(BadRequest, match="image 2 is not a PNG or JPEG image"):
        _infer(plane, body, content_type)


def test_more_images_than_the_limit_are_refused_before_any_is_decoded(plane):
    fields = [("image", (f"{i}.png", b"never decoded", "image/png")) for i in range(65)]
    body, content_type = urllib3.encode_multipart_formdata(fields)
    with pytest.raises(BadRequest, match=r"65 images .* in one request, the limit is 64"):
        _infer(plane, body, content_type)


def test_a_file_over_the_models_byte_limit_is_refused(plane):
    big = images.png(2000, 2000, 0) + b"\0" * (4 << 20)  # trailing bytes: still over 4 MiB
    with pytest.raises(BadRequest, match="the limit is 4194304 bytes"):
        _infer(plane, big, "image/png")
