"""POST .../infer through Falcon: a thin adapter over the data plane."""

from __future__ import annotations

import falcon

from sidecar.codec.wire import HEADER_LENGTH
from sidecar.http.resources.base import ModelResource


class Infer(ModelResource):
    def on_post(
        self, req: falcon.Request, resp: falcon.Response, model: str, version: str | None = None
    ) -> None:
        result = self.dataplane.infer(
            model,
            version,
            req.stream.read,
            req.content_length,
            req.get_header(HEADER_LENGTH),
            req.content_type,
        )
        resp.data = result.body
        for name, value in result.headers:
            resp.set_header(name, value)
