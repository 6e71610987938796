"""Load Weir with Locust, for teams that already use it.

    locust -f tests/load/locustfile.py --host http://127.0.0.1:8080 --headless -u 64 -r 16 -t 60s

Every simulated user carries a stable `X-User-Id`, so the edge's grey release keeps each user on
one version (the answering version is counted per task name). Tasks send the sample models'
inputs as V2 JSON and as binary tensors, and image files to `handwriting` the way a lab client
uploads them (`requests.post(url, files={"image": f})`: multipart/form-data, field `image`).
`WEIR_LOCUST_USER_HEADER` renames the sticky header.
"""

from __future__ import annotations

import io
import json
import os
import uuid
from pathlib import Path

import numpy as np
from locust import FastHttpUser, between, task
from PIL import Image, ImageOps
from urllib3 import encode_multipart_formdata

USER_HEADER = os.environ.get("WEIR_LOCUST_USER_HEADER", "X-User-Id")
_rng = np.random.default_rng(0)
DIGITS_ROWS = _rng.random((32, 64), dtype=np.float32)
CNN_IMAGE = _rng.random((1, 3, 64, 64), dtype=np.float32)


def v2_json(array: np.ndarray) -> bytes:
    tensor = {"name": "input", "shape": list(array.shape), "datatype": "FP32"}
    return json.dumps({"inputs": [{**tensor, "data": array.ravel().tolist()}]}).encode()


def v2_binary(array: np.ndarray) -> tuple[bytes, dict[str, str]]:
    raw = array.astype("<f4").tobytes()
    header = {
        "inputs": [
            {
                "name": "input",
                "shape": list(array.shape),
                "datatype": "FP32",
                "parameters": {"binary_data_size": len(raw)},
            }
        ],
        "parameters": {"binary_data_output": True},
    }
    head = json.dumps(header).encode()
    headers = {
        "Content-Type": "application/octet-stream",
        "Inference-Header-Content-Length": str(len(head)),
    }
    return head + raw, headers


CNN_BODY, CNN_HEADERS = v2_binary(CNN_IMAGE)
SEVEN = Path(__file__).resolve().parents[2] / "models" / "handwriting" / "seven.png"


def image_files() -> list[tuple[str, bytes, str]]:
    """The sample 7 as a few files a lab client might upload: its PNG, a large inverted
    JPEG, a small tinted PNG."""
    with Image.open(SEVEN) as seven:
        grey = seven.convert("L")
        variants = [("seven.png", SEVEN.read_bytes(), "image/png")]
        for name, image, fmt in (
            ("seven-dark.jpg", ImageOps.invert(grey).resize((400, 400)), "JPEG"),
            (
                "seven-blue.png",
                ImageOps.colorize(grey, "navy", "lightyellow").resize((48, 48)),
                "PNG",
            ),
        ):
            out = io.BytesIO()
            image.save(out, fmt)
            variants.append((name, out.getvalue(), f"image/{fmt.lower()}"))
    return variants


IMAGE_UPLOADS = [
    encode_multipart_formdata([("image", (name, data, mime))]) for name, data, mime in image_files()
]


class WeirUser(FastHttpUser):
    wait_time = between(0.0, 0.05)

    def on_start(self) -> None:
        self.user_id = uuid.uuid4().hex

    def _infer(self, model: str, body: bytes, headers: dict[str, str]) -> None:
        headers = {**headers, USER_HEADER: self.user_id}
        with self.client.post(
            f"/v2/models/{model}/infer", data=body, headers=headers, catch_response=True
        ) as response:
            version = response.headers.get("X-Weir-Model-Version", "?")
            fallback = response.headers.get("X-Weir-Fallback")
            response.request_meta["name"] = f"{model} v{version}" + (
                f" fallback={fallback}" if fallback else ""
            )
            if response.status_code != 200:
                response.failure(f"{response.status_code}: {response.text[:200]}")

    @task(8)
    def digits_json(self) -> None:
        row = DIGITS_ROWS[_rng.integers(len(DIGITS_ROWS))][None, :]
        self._infer("digits", v2_json(row), {"Content-Type": "application/json"})

    @task(2)
    def cnn_binary(self) -> None:
        self._infer("cnn", CNN_BODY, CNN_HEADERS)

    @task(2)
    def handwriting_upload(self) -> None:
        body, content_type = IMAGE_UPLOADS[int(_rng.integers(len(IMAGE_UPLOADS)))]
        self._infer("handwriting", body, {"Content-Type": content_type})
