"""What an event-loop server answers a whole request with: infer waits for its batch on the
loop, every other route is the Falcon application, called in place.

- `POST .../infer` is decoded, validated and queued on the loop, then awaits its batch
  (`DataPlane.infer_async`): a computing model holds no connection, no thread, and no other
  request.
- Health, metadata and the rest are Falcon's (`create_app`, the same routes and error
  mapping as under a WSGI server), called on the loop: each answers in microseconds.
  `/metrics` gathers every worker's files, so it runs on a thread instead, one render at a
  time (`MetricsRenders`).

The server, Weir's own HTTP/1.1 protocol (`sidecar.server.http_protocol`), reads the body
first, within `DataPlane.max_body_bytes` (see `drain_ceiling`), and writes the answer.
"""

from __future__ import annotations

import asyncio
import io
import logging
import sys
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from sidecar.errors import WeirError, internal_error_parts, response_parts
from sidecar.http.fastpath import parse_infer_path
from sidecar.serving.dataplane import DataPlane
from sidecar.serving.shadow import SHADOW_HEADER

log = logging.getLogger(__name__)

WsgiApp = Callable[..., Iterable[bytes]]
Parts = tuple[str, list[tuple[str, str]], bytes]
Headers = list[tuple[bytes, bytes]]  # lower-case names, as received
Infer = Coroutine[Any, Any, Parts]

METRICS_PATH = "/metrics"
# Infer paths parsed once: clients repeat a handful. Bounded, since clients choose the paths.
TARGETS_KEPT = 256
_SHADOW = SHADOW_HEADER.lower().encode()


class LoopFront:
    """Routes one read request to the data plane (infer) or Falcon (module docstring)."""

    def __init__(self, wsgi_app: WsgiApp, dataplane: DataPlane) -> None:
        self.wsgi_app = wsgi_app
        self.dataplane = dataplane
        self._targets: dict[str, tuple[str, str | None] | None] = {}
        self.renders = MetricsRenders(lambda environ: call_wsgi(wsgi_app, environ))

    def infer_target(self, method: str, path: str) -> tuple[str, str | None] | None:
        """(model, version or None) when this request is an infer, else None."""
        if method != "POST":
            return None
        try:
            return self._targets[path]
        except KeyError:
            target = infer_target(path)
            if len(self._targets) < TARGETS_KEPT:
                self._targets[path] = target
            return target

    async def infer(self, target: tuple[str, str | None], headers: Headers, body: bytes) -> Parts:
        """The answer to an infer request whose body has been read (within the limit), its
        bytes held against the worker's budget by the server (`DataPlane.hold`)."""
        try:
            result = await self.dataplane.infer_async(
                target[0],
                target[1],
                body,
                header(headers, b"inference-header-content-length"),
                header(headers, b"content-type"),
                header(headers, _SHADOW),
                held=True,  # the protocol holds the body's bytes until it has answered
            )
        except WeirError as exc:
            return response_parts(exc)
        except Exception:
            log.exception("unhandled error on infer of %s", target[0])
            return internal_error_parts()
        return "200 OK", result.headers, result.body

    def call(self, environ: dict[str, Any]) -> Parts | Coroutine[Any, Any, Parts]:
        """Any other route: Falcon's answer, or, for a scrape, an awaitable one (rendered on
        a thread, one render at a time, whatever its query string: the render reads none)."""
        if (
            environ["REQUEST_METHOD"] == "GET"
            and _routed_path(environ["PATH_INFO"]) == METRICS_PATH
        ):
            return self.renders.scrape(environ)
        return call_wsgi(self.wsgi_app, environ)


class MetricsRenders:
    """`/metrics` rendered one at a time, on a thread: a scrape that arrives while a render
    runs waits for the next one, which starts when that one ends and answers every scrape
    that waited for it. Each scrape still sees everything answered before it was sent (the
    render under way might not), and a flood of scrapes costs one render thread, not one per
    scrape (eight clients scraping in a loop had raised health p99 to 141 ms)."""

    def __init__(self, render: Callable[[dict[str, Any]], Parts]) -> None:
        self.render = render
        self._running: asyncio.Future[Parts] | None = None
        self._next: asyncio.Future[Parts] | None = None
        self._next_environ: dict[str, Any] = {}

    async def scrape(self, environ: dict[str, Any]) -> Parts:
        if self._running is None:
            self._running = self._start(environ)
            waited = self._running
        else:
            if self._next is None:
                self._next = asyncio.get_running_loop().create_future()
                self._next_environ = environ
            waited = self._next
        # Shielded: a scraper that hangs up must not cancel what the others wait for.
        return await asyncio.shield(waited)

    def _start(self, environ: dict[str, Any]) -> asyncio.Future[Parts]:
        running = asyncio.get_running_loop().run_in_executor(None, self.render, environ)
        running.add_done_callback(self._ended)
        return running

    def _ended(self, ended: asyncio.Future[Parts]) -> None:
        self._running = None
        waiting, self._next = self._next, None
        if waiting is None:
            return
        self._running = self._start(self._next_environ)
        self._running.add_done_callback(lambda done: _pass_on(done, waiting))


def _pass_on(done: asyncio.Future[Parts], to: asyncio.Future[Parts]) -> None:
    if to.done():
        return
    if done.cancelled():
        to.cancel()
    elif (error := done.exception()) is not None:
        to.set_exception(error)
    else:
        to.set_result(done.result())


def infer_target(path: str) -> tuple[str, str | None] | None:
    """`parse_infer_path` after the normalisation Falcon's router applies (repeated and
    trailing slashes), so that every path Falcon would route to infer is served here."""
    target = parse_infer_path(path)
    if target is None and ("//" in path or path.endswith("/")):
        target = parse_infer_path(_routed_path(path))
    return target


def _routed_path(path: str) -> str:
    """`path` as Falcon's router sees it (repeated and trailing slashes dropped)."""
    if "//" not in path and not path.endswith("/"):
        return path
    return "/" + "/".join(part for part in path.split("/") if part)


def header(raw: Headers, name: bytes) -> str | None:
    """One request header (lower-case name); repeated ones joined by commas."""
    found = [value for key, value in raw if key == name]
    if not found:
        return None
    return b",".join(found).decode("latin-1")


def header_dict(raw: Headers) -> dict[str, str]:
    """Request headers by lower-case name; repeated ones joined with commas (RFC 9110)."""
    found: dict[str, str] = {}
    for raw_name, raw_value in raw:
        name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
        found[name] = f"{found[name]},{value}" if name in found else value
    return found


def wsgi_environ(
    method: str,
    path: str,
    query: bytes,
    http_version: str,
    raw_headers: Headers,
    body: bytes,
    server: tuple[str, int] | None,
    client: tuple[str, int] | None,
) -> dict[str, Any]:
    """The WSGI environ (PEP 3333) of a request whose body has been read."""
    host, port = server or ("localhost", 0)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        # PEP 3333: the path's bytes as latin-1 characters.
        "PATH_INFO": path.encode("utf-8").decode("latin-1"),
        "QUERY_STRING": query.decode("latin-1"),
        "SERVER_NAME": str(host),
        "SERVER_PORT": str(port or 0),
        "SERVER_PROTOCOL": f"HTTP/{http_version}",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "CONTENT_LENGTH": str(len(body)),
    }
    if client:
        environ["REMOTE_ADDR"] = str(client[0])
    for name, value in header_dict(raw_headers).items():
        if name == "content-type":
            environ["CONTENT_TYPE"] = value
        elif name != "content-length":
            environ["HTTP_" + name.upper().replace("-", "_")] = value
    return environ


def call_wsgi(app: WsgiApp, environ: dict[str, Any]) -> Parts:
    """Run a WSGI app to completion: its status, headers and whole body."""
    started: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        started[:] = (status, headers)

    try:
        result = app(environ, start_response)
        try:
            body = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
    except Exception:
        log.exception("unhandled error on %s %s", environ["REQUEST_METHOD"], environ["PATH_INFO"])
        return internal_error_parts()
    status, headers = started
    kept = [(n, v) for n, v in headers if n.lower() not in ("content-length", "connection")]
    return status, kept, body
