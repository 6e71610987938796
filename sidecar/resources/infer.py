"""POST .../infer: read, decode, validate, queue for batching, encode."""

from __future__ import annotations

import time

import falcon

from sidecar.batching import Pending
from sidecar.errors import PayloadTooLarge, WeirError
from sidecar.metrics import unknown_model_failure
from sidecar.protocol import BINARY_TYPE, HEADER_LENGTH, JSON_TYPE, decode_request, encode_response
from sidecar.state import ServerState

perf_counter = time.perf_counter


class Infer:
    def __init__(self, state: ServerState, max_body_bytes: int) -> None:
        self.state = state
        self.max_body_bytes = max_body_bytes

    def on_post(
        self, req: falcon.Request, resp: falcon.Response, model: str, version: str | None = None
    ) -> None:
        started = perf_counter()
        try:
            found = self.state.repository.get(model, version)
        except WeirError as exc:
            unknown_model_failure(exc.reason)
            raise
        metrics = found.metrics
        try:
            length = req.content_length
            if length is None:  # chunked: read up to one byte past the limit
                body = req.stream.read(self.max_body_bytes + 1)
                length = len(body)
            elif length <= self.max_body_bytes:
                body = req.stream.read(length)
            if length > self.max_body_bytes:
                raise PayloadTooLarge(
                    f"request body is over {self.max_body_bytes} bytes, the limit; "
                    "send fewer rows per request"
                )
            request = decode_request(body, req.get_header(HEADER_LENGTH))
            feeds, rows = found.signature.feeds(request)
            item = Pending(feeds, rows)
            found.driver.infer(item)
            if item.error is not None:
                raise item.error
            outputs = item.outputs
            assert outputs is not None
            pairs = [(spec.name, outputs[i]) for i, spec in enumerate(found.outputs)]
            if found.hook is not None:
                pairs = found.hook.apply(pairs)
            wanted = request.outputs
            if wanted is not None:
                pairs = [(name, arr) for name, arr in pairs if name in wanted]
                binary = wanted
            else:
                binary = dict.fromkeys((name for name, _ in pairs), request.binary_default)
            data, header_length = encode_response(
                found.name, found.version, request.id, pairs, binary
            )
        except WeirError as exc:
            metrics.failure(exc.reason)
            raise
        resp.data = data
        resp.set_header("X-Weir-Model-Version", found.version)
        if header_length is None:
            resp.content_type = JSON_TYPE
        else:
            resp.content_type = BINARY_TYPE
            resp.set_header(HEADER_LENGTH, str(header_length))
        metrics.succeeded(perf_counter() - started)
