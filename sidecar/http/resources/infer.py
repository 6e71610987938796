"""POST .../infer through Falcon: a thin adapter over the data plane."""

from __future__ import annotations

import falcon

from sidecar.codec.wire import HEADER_LENGTH
from sidecar.serving.dataplane import DataPlane


class Infer:
    def __init__(self, dataplane: DataPlane) -> None:
        self.dataplane = dataplane

    def on_post(
        self, req: falcon.Request, resp: falcon.Response, model: str, version: str | None = None
    ) -> None:
        result = self.dataplane.infer(
            model, version, req.stream.read, req.content_length, req.get_header(HEADER_LENGTH)
        )
        resp.data = result.body
        for name, value in result.headers:
            resp.set_header(name, value)
