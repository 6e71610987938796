"""Liveness, readiness and server metadata: the data plane's answers, sent as JSON."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import falcon

from sidecar.errors import NotFound
from sidecar.http.resources.base import ModelResource


class Document:
    """A GET the data plane answers without parameters: live, ready or server metadata."""

    def __init__(self, answer: Callable[[], dict[str, Any]]) -> None:
        self.answer = answer

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self.answer()


class ModelReady(ModelResource):
    def on_get(
        self, req: falcon.Request, resp: falcon.Response, model: str, version: str | None = None
    ) -> None:
        resp.media = self.dataplane.model_ready(model, version)


def not_found(req: falcon.Request, resp: falcon.Response, **params: Any) -> None:
    raise NotFound(f"no such endpoint: {req.method} {req.path}; see the V2 protocol routes")
