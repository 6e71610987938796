"""Model metadata: name, versions, platform and the input/output signature."""

from __future__ import annotations

import falcon

from sidecar.http.resources.base import ModelResource
from sidecar.serving.dataplane import VERSION_HEADER


class ModelMetadata(ModelResource):
    def on_get(
        self, req: falcon.Request, resp: falcon.Response, model: str, version: str | None = None
    ) -> None:
        resp.media, answered = self.dataplane.model_metadata(model, version)
        resp.set_header(VERSION_HEADER, answered)
