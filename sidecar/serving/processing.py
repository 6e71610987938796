"""A request's way into its batch and out of it, for every transport and driver.

In: the body is a V2 request (JSON, or with the binary extension) or an upload (multipart
image files, a raw `image/*` body: `sidecar.codec.uploads`), validated against the signature
clients see, then turned into ONNX feeds by the model class's `preprocess` (timed:
`weir_preprocess_duration_seconds`). Out: the model class's `postprocess`, then Triton's
classification extension on the outputs that asked for it.
"""

from __future__ import annotations

import time

import numpy as np

from sidecar.codec.decode import InferRequest, decode_request
from sidecar.codec.uploads import is_upload, upload_request
from sidecar.errors import BadRequest
from sidecar.serving.batching import Pending
from sidecar.serving.model import ModelVersion
from sidecar.serving.validation import describe

perf_counter = time.perf_counter


def upload_input(found: ModelVersion) -> str:
    """The input an upload's images go to: the model's one BYTES input."""
    names = [spec.name for spec in found.client_inputs if spec.datatype == "BYTES"]
    if len(names) != 1 or len(found.client_inputs) != 1:
        raise BadRequest(
            f"model '{found.name}' takes no image uploads (multipart or image/* bodies): its "
            f"inputs are {describe(found.client_inputs)}; send a V2 JSON request"
        )
    return names[0]


def prepare(
    found: ModelVersion, body: bytes, header_length: str | None, content_type: str | None
) -> tuple[InferRequest, Pending]:
    """Decode, validate and pre-process: the request, and its rows for the batcher."""
    if is_upload(content_type):
        assert content_type is not None
        request = upload_request(body, content_type, upload_input(found))
    else:
        request = decode_request(body, header_length)
    feeds, rows = found.signature.feeds(request)
    # The tensors are in `feeds` now: the decoded JSON lists (and the raw binary views
    # into the body) would hold ~10x the body's size while the request waits its batch.
    request.inputs = []
    if request.classification:
        _check_classification(found, request.classification)
    model_class = found.model_class
    if model_class is not None and model_class.preprocesses:
        files = sum(arr.size for arr in feeds.values() if arr.dtype == object)
        limit = found.config.images.max_images
        if files > limit:
            raise BadRequest(
                f"{files} images (BYTES elements) in one request, the limit is {limit}; send "
                "fewer per request"
            )
        started = perf_counter()
        feeds = model_class.preprocess(feeds)
        found.preprocess_seconds.observe(perf_counter() - started)
        if found.batchable:
            rows = next(iter(feeds.values())).shape[0]
    return request, Pending(feeds, rows)


def client_outputs(
    found: ModelVersion, request: InferRequest, outputs: list[np.ndarray]
) -> list[tuple[str, np.ndarray]]:
    """What the client gets: post-processed, then classified where asked."""
    pairs = [(spec.name, outputs[i]) for i, spec in enumerate(found.outputs)]
    if found.model_class is not None:
        pairs = found.model_class.postprocess(pairs)
    if request.classification:
        labels = found.config.labels
        pairs = [
            (name, classify(arr, request.classification[name], labels))
            if name in request.classification
            else (name, arr)
            for name, arr in pairs
        ]
    return pairs


def _check_classification(found: ModelVersion, wanted: dict[str, int]) -> None:
    for spec in found.client_outputs:
        if spec.name in wanted and spec.datatype in ("BYTES", "BOOL"):
            raise BadRequest(
                f"output '{spec.name}' is {spec.datatype}: classification ranks the scores "
                "of a numeric output (e.g. the class probabilities)"
            )


def classify(scores: np.ndarray, k: int, labels: list[str] | None) -> np.ndarray:
    """Triton's classification extension: per row, the top `k` classes (at most as many as
    there are) as BYTES "score:index:label" ("score:index" without labels), best first."""
    rows = scores.reshape(scores.shape[0], -1) if scores.ndim > 1 else scores.reshape(1, -1)
    k = min(k, rows.shape[1])
    top = np.argsort(-rows, axis=1, kind="stable")[:, :k]
    out = np.empty((rows.shape[0], k), dtype=object)
    for r, indexes in enumerate(top.tolist()):
        for c, index in enumerate(indexes):
            text = f"{float(rows[r, index]):f}:{index}"
            if labels is not None and index < len(labels):
                text += f":{labels[index]}"
            out[r, c] = text.encode()
    return out if scores.ndim > 1 else out.reshape(k)
