"""Prometheus exposition."""

from __future__ import annotations

import falcon

from sidecar import metrics


class Metrics:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.data, resp.content_type = metrics.render()
