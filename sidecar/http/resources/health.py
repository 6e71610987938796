"""Liveness, readiness and server metadata: the data plane's answers, sent as JSON."""

from __future__ import annotations

import falcon

from sidecar.errors import NotFound
from sidecar.serving.dataplane import DataPlane


class Live:
    def __init__(self, dataplane: DataPlane) -> None:
        self.dataplane = dataplane

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self.dataplane.live()


class Ready:
    def __init__(self, dataplane: DataPlane) -> None:
        self.dataplane = dataplane

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self.dataplane.ready()


class ServerMetadata:
    def __init__(self, dataplane: DataPlane) -> None:
        self.dataplane = dataplane

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self.dataplane.server_metadata()


class ModelReady:
    def __init__(self, dataplane: DataPlane) -> None:
        self.dataplane = dataplane

    def on_get(
        self, req: falcon.Request, resp: falcon.Response, model: str, version: str | None = None
    ) -> None:
        resp.media = self.dataplane.model_ready(model, version)


def not_found(req: falcon.Request, resp: falcon.Response) -> None:
    raise NotFound(f"no such endpoint: {req.method} {req.path}; see the V2 protocol routes")
