"""Model metadata: name, versions, platform and the input/output signature."""

from __future__ import annotations

import falcon

from sidecar.state import ServerState


class ModelMetadata:
    def __init__(self, state: ServerState) -> None:
        self.state = state

    def on_get(
        self, req: falcon.Request, resp: falcon.Response, model: str, version: str | None = None
    ) -> None:
        found = self.state.repository.get(model, version)
        doc = found.metadata()
        if version is None:
            doc["versions"] = self.state.repository.versions(model)
        resp.media = doc
        resp.set_header("X-Weir-Model-Version", found.version)
