"""Liveness, readiness and server metadata."""

from __future__ import annotations

import falcon

from sidecar.errors import NotFound, Unavailable
from sidecar.state import ServerState

SERVER_NAME = "weir"
SERVER_VERSION = "0.1.0"
EXTENSIONS = ["binary_tensor_data"]


class Live:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"live": True}


class Ready:
    def __init__(self, state: ServerState) -> None:
        self.state = state

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self.state.draining:
            raise Unavailable("this sidecar is draining after SIGTERM; route to another one")
        if not self.state.ready:
            raise Unavailable("models are still loading")
        resp.media = {"ready": True}


class ServerMetadata:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": EXTENSIONS}


class ModelReady:
    def __init__(self, state: ServerState) -> None:
        self.state = state

    def on_get(
        self, req: falcon.Request, resp: falcon.Response, model: str, version: str | None = None
    ) -> None:
        found = self.state.repository.get(model, version)
        if self.state.draining:
            raise Unavailable("this sidecar is draining after SIGTERM")
        resp.media = {"name": found.name, "version": found.version, "ready": True}


def not_found(req: falcon.Request, resp: falcon.Response) -> None:
    raise NotFound(f"no such endpoint: {req.method} {req.path}; see the V2 protocol routes")
