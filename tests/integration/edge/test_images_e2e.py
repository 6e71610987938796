"""Image uploads through the edge to a real `weir sidecar` serving `handwriting`: curl -F and
tritonclient get labels; the body limit, rate limit, fallbacks and breaker treat uploads
exactly as they treat tensors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as triton
import urllib3

from tests import images

ROOT = Path(__file__).resolve().parents[3]
MODELS = ROOT / "models"

if not (MODELS / "handwriting" / "1" / "model.onnx").exists():  # pragma: no cover
    pytest.skip("needs the sample models (make models)", allow_module_level=True)


@pytest.fixture
def sidecar(socket_sidecar):
    return socket_sidecar


def _start(harness, tools, process, rate: str = "1000r/s", burst: int = 100) -> None:
    models = {
        "handwriting": {
            "versions": {"1": {}},
            "rate_limit": {"rate": rate, "burst": burst, "key": "global"},
            "breaker": {"failures": 3, "window": "10s", "open_for": "5s", "probes": 1},
            "fallback": {"status": 503, "body": {"error": "handwriting is resting"}},
            "timeout": "5s",
        },
    }
    harness.start(models, max_body="1m")
    deadline = time.monotonic() + 90
    while tools.request("GET", harness.listen, "/v2/health/ready")[0] != 200:
        assert process.poll() is None, (harness.tmp / "sidecar.log").read_text()[-3000:]
        assert time.monotonic() < deadline, (harness.tmp / "sidecar.log").read_text()[-3000:]
        time.sleep(0.2)


def _upload(harness, tools, data: bytes, name: str = "digit.png") -> tuple[int, dict, object]:
    body, content_type = urllib3.encode_multipart_formdata([("image", (name, data, "image/png"))])
    return tools.request(
        "POST", harness.listen, "/v2/models/handwriting/infer", body, {"Content-Type": content_type}
    )


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_curl_uploads_an_image_and_gets_its_label_with_its_confidence(harness, tools, sidecar):
    _start(harness, tools, sidecar)
    head_file = harness.tmp / "curl-head.txt"
    body = subprocess.run(
        [
            "curl",
            "-s",
            "-D",
            str(head_file),
            "-F",
            f"image=@{images.SEVEN}",
            f"http://{harness.listen}/v2/models/handwriting/infer",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    head = head_file.read_bytes().decode().split("\r\n\r\n")[-2]  # after any 100 Continue
    assert head.startswith("HTTP/1.1 200") and "X-Weir-Model-Version: 1" in head, (head, body)
    outputs = {o["name"]: o["data"] for o in json.loads(body)["outputs"]}
    assert outputs["label"] == ["7"] and outputs["confidence"][0] > 0.9


def test_tritonclient_sends_bytes_and_asks_for_the_top_3(harness, tools, sidecar):
    _start(harness, tools, sidecar)
    client = triton.InferenceServerClient(harness.listen)
    files = [images.SEVEN.read_bytes(), images.digit_file(0, style=1)[0]]
    image = triton.InferInput("image", [2], "BYTES")
    image.set_data_from_numpy(np.array(files, dtype=object))
    top = triton.InferRequestedOutput("probabilities", class_count=3)
    result = client.infer("handwriting", [image], outputs=[top])
    ranked = result.as_numpy("probabilities")
    assert ranked.shape == (2, 3)
    score, index, label = ranked[0][0].decode().split(":")
    assert (index, label) == ("7", "7") and float(score) > 0.9
    assert ranked[1][0].decode().split(":")[2] == str(images.digit_file(0, style=1)[1])


def test_the_edges_body_limit_applies_to_uploads(harness, tools, sidecar):
    _start(harness, tools, sidecar)
    status, _, data = _upload(harness, tools, b"\x89PNG" + os.urandom(2 << 20))
    assert status == 413 and "error" in data, data
    assert harness.breaker("handwriting", "1") == "closed"


def test_unreadable_images_are_the_clients_400s_and_never_open_the_breaker(harness, tools, sidecar):
    _start(harness, tools, sidecar)
    bad = [
        (b"not an image", "not a PNG or JPEG image"),
        (images.truncated(images.digit_file(0, style=3)[0]), "does not decode whole"),
        (images.png_declaring(40000, 40000), "40000×40000"),  # noqa: RUF001
    ]
    for _ in range(3):
        for data, needle in bad:
            status, headers, answer = _upload(harness, tools, data)
            assert status == 400 and needle in answer["error"], answer
            assert "x-weir-fallback" not in headers
    assert harness.breaker("handwriting", "1") == "closed"
    assert _upload(harness, tools, images.SEVEN.read_bytes())[0] == 200


def test_uploads_are_rate_limited_like_tensors(harness, tools, sidecar):
    _start(harness, tools, sidecar, rate="1r/m", burst=2)
    seven = images.SEVEN.read_bytes()
    statuses = [_upload(harness, tools, seven)[0] for _ in range(6)]
    assert statuses[0] == 200 and 429 in statuses, statuses
    status, headers, data = _upload(harness, tools, seven)
    assert status == 429 and headers.get("retry-after") and "error" in data


def test_a_killed_image_model_answers_its_fallback(harness, tools, sidecar):
    _start(harness, tools, sidecar)
    seven = images.SEVEN.read_bytes()
    harness.admin_call("POST", "/admin/models/handwriting/kill")
    status, headers, data = _upload(harness, tools, seven)
    assert (status, data) == (503, {"error": "handwriting is resting"})
    assert headers["x-weir-fallback"] == "killed"
