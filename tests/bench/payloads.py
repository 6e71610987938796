"""V2 infer request bodies (JSON and binary tensor extension) and a check of the answers.

Each payload carries one sample, as a client would send it, and the output in-process ONNX
Runtime gives for that sample, so a server that answers 200 with the wrong numbers is caught
before its speed is measured.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

HEADER_LENGTH = "Inference-Header-Content-Length"


@dataclass(frozen=True)
class Payload:
    """One request, replayed by wrk: POST `body` with `headers` to `path`."""

    model: str
    version: str
    encoding: str  # "json" | "binary"
    body: bytes
    headers: dict[str, str]
    expected: np.ndarray = field(repr=False)

    @property
    def path(self) -> str:
        return f"/v2/models/{self.model}/versions/{self.version}/infer"

    @property
    def key(self) -> str:
        return f"{self.model}/v{self.version}/{self.encoding}"


def _sample(model: str, shape: list[int]) -> np.ndarray:
    rng = np.random.default_rng(2)
    if model == "digits":  # pixel intensities 0..16, scaled like the training data
        return (rng.integers(0, 17, shape) / 16.0).astype(np.float32)
    return (rng.integers(0, 256, shape) / 255.0).astype(np.float32)  # image-like


def make_payload(models_dir: Path, model: str, version: str, encoding: str) -> Payload:
    session = ort.InferenceSession(
        str(models_dir / model / version / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    inp = session.get_inputs()[0]
    shape = [1, *(int(d) for d in inp.shape[1:])]
    x = _sample(model, shape)
    expected = session.run(None, {inp.name: x})[0]
    tensor: dict[str, object] = {"name": inp.name, "shape": shape, "datatype": "FP32"}
    if encoding == "json":
        body = json.dumps({"id": "bench", "inputs": [{**tensor, "data": x.ravel().tolist()}]})
        return Payload(
            model, version, encoding, body.encode(), {"Content-Type": "application/json"}, expected
        )
    raw = x.astype("<f4").tobytes()
    header = json.dumps(
        {
            "id": "bench",
            "inputs": [{**tensor, "parameters": {"binary_data_size": len(raw)}}],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    headers = {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(len(header))}
    return Payload(model, version, encoding, header + raw, headers, expected)


def decode_output(body: bytes, header_length: str | None) -> np.ndarray:
    """The first output of a V2 response, JSON or binary."""
    if header_length is None:
        out = json.loads(body)["outputs"][0]
        return np.asarray(out["data"], dtype=np.float32).reshape(out["shape"])
    n = int(header_length)
    out = json.loads(body[:n])["outputs"][0]
    size = int(out.get("parameters", {}).get("binary_data_size", len(body) - n))
    return np.frombuffer(body[n : n + size], dtype="<f4").reshape(out["shape"])


def check(base_url: str, payload: Payload, timeout: float = 30.0) -> None:
    """One request; raise with what was wrong unless the server answers what ORT computes."""
    req = urllib.request.Request(
        base_url + payload.path, data=payload.body, headers=payload.headers, method="POST"
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        got = decode_output(resp.read(), resp.headers.get(HEADER_LENGTH))
    if got.shape != payload.expected.shape or not np.allclose(got, payload.expected, atol=1e-4):
        raise AssertionError(
            f"{base_url}{payload.path} ({payload.encoding}) answered {got.ravel()[:4]}..., "
            f"in-process ORT gives {payload.expected.ravel()[:4]}..."
        )
