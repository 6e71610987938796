"""The Falcon application: routes over the data plane, and one error mapping.

`create_app(dataplane)` takes its collaborator (tests pass one over a real repository);
`serving_app(dataplane)` puts the fast infer route in front of it. The server layer builds the
data plane in each worker, after fork, and wraps the result as its HTTP server needs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import falcon

from sidecar.errors import (
    WeirError,
    error_body,
    failure_headers,
    internal_error_parts,
    response_parts,
)
from sidecar.http.fastpath import InferRoute
from sidecar.http.resources import health, infer, metadata
from sidecar.http.resources import metrics as metrics_resource
from sidecar.serving.dataplane import DataPlane

log = logging.getLogger(__name__)


def _send(resp: falcon.Response, parts: tuple[str, list[tuple[str, str]], bytes]) -> None:
    resp.status, headers, resp.data = parts
    for name, value in headers:
        resp.set_header(name, value)


def _weir_error(req: falcon.Request, resp: falcon.Response, exc: WeirError, params: Any) -> None:
    _send(resp, response_parts(exc))


def _http_error(
    req: falcon.Request, resp: falcon.Response, exc: falcon.HTTPError, params: Any
) -> None:
    resp.status = exc.status
    resp.content_type = falcon.MEDIA_JSON
    text = exc.title or "error"
    if exc.description:
        text = f"{text}: {exc.description}"
    resp.data = error_body(text)
    headers = exc.headers or {}
    # Falcon keeps whichever form the raiser gave: a mapping or (name, value) pairs.
    for name, value in headers.items() if isinstance(headers, Mapping) else headers:
        resp.set_header(name, value)
    for name, value in failure_headers(int(resp.status_code)):
        resp.set_header(name, value)


def _internal_error(
    req: falcon.Request, resp: falcon.Response, exc: Exception, params: Any
) -> None:
    log.exception("unhandled error on %s %s", req.method, req.path)
    _send(resp, internal_error_parts())


def create_app(dataplane: DataPlane) -> falcon.App:
    app = falcon.App()
    app.req_options.strip_url_path_trailing_slash = True
    model_meta, model_ready = metadata.ModelMetadata(dataplane), health.ModelReady(dataplane)
    infer_res = infer.Infer(dataplane)
    app.add_route("/v2/health/live", health.Document(dataplane.live))
    app.add_route("/v2/health/ready", health.Document(dataplane.ready))
    app.add_route("/v2", health.Document(dataplane.server_metadata))
    app.add_route("/v2/models/{model}", model_meta)
    app.add_route("/v2/models/{model}/versions/{version}", model_meta)
    app.add_route("/v2/models/{model}/ready", model_ready)
    app.add_route("/v2/models/{model}/versions/{version}/ready", model_ready)
    app.add_route("/v2/models/{model}/infer", infer_res)
    app.add_route("/v2/models/{model}/versions/{version}/infer", infer_res)
    app.add_route("/metrics", metrics_resource.Metrics())
    app.add_sink(health.not_found, "/")
    app.add_error_handler(Exception, _internal_error)
    app.add_error_handler(falcon.HTTPError, _http_error)
    app.add_error_handler(WeirError, _weir_error)
    return app


def serving_app(dataplane: DataPlane) -> InferRoute:
    """The Falcon app behind the fast infer route (see `sidecar.http.fastpath`)."""
    return InferRoute(create_app(dataplane), dataplane)
