"""The ASGI front of the asyncio worker: infer requests wait for their batch on the event loop,
every other route is the Falcon application, called in place.

- `POST .../infer` is read (the body limit applied as it arrives), decoded, validated and
  queued on the loop, then awaits its batch (`DataPlane.infer_async`): a computing model
  holds no connection, no thread, and no other request.
- Health, metadata and the rest are Falcon's (`create_app`, the same routes and error
  mapping as under a WSGI server), called on the loop: each answers in microseconds.
  `/metrics` gathers every worker's files, so it runs on a thread instead.
- A response is written in slices: each waits for the client to take the previous ones
  (flow control), so an answer of any size goes out at the speed the reader takes it; a
  reader that takes nothing is dropped by the protocol's write watchdog
  (`sidecar.server.http_protocol`), never answered with a cut body under a 200.
"""

from __future__ import annotations

import asyncio
import io
import logging
import sys
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from sidecar.errors import WeirError, internal_error_parts, response_parts
from sidecar.http.fastpath import content_length, parse_infer_path
from sidecar.serving.dataplane import DataPlane, drain_ceiling

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
WsgiApp = Callable[..., Iterable[bytes]]
Parts = tuple[str, list[tuple[str, str]], bytes]

# A response goes out in slices of this size; each waits for the client's socket to drain.
SLICE_BYTES = 1 << 20
THREADED_PREFIXES = ("/metrics",)


class ClientGone(Exception):
    """The client closed its connection before its request was read."""


class AsgiFront:
    """ASGI callable over one worker's data plane and its Falcon app (module docstring)."""

    def __init__(self, wsgi_app: WsgiApp, dataplane: DataPlane) -> None:
        self.wsgi_app = wsgi_app
        self.dataplane = dataplane

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan is off; websockets are not served
            return
        try:
            parts, close = await self._answer(scope, receive)
        except ClientGone:
            return
        respond = scope.get("extensions", {}).get("weir.respond")
        if respond is not None and not close and len(parts[2]) <= SLICE_BYTES:
            status, headers, body = parts
            head = "".join(f"{name}: {value}\r\n" for name, value in headers)
            if respond(status.encode("latin-1"), head.encode("latin-1"), body):
                return
        await send_response(send, parts, close)

    async def _answer(self, scope: Scope, receive: Receive) -> tuple[Parts, bool]:
        """The response, and whether to close the connection after it (a body left unread)."""
        target = infer_target(scope["path"]) if scope["method"] == "POST" else None
        raw = scope["headers"]
        try:
            length = content_length(_header(raw, b"content-length"))
            if target is not None:
                header_length = _header(raw, b"inference-header-content-length")
                # The body goes straight in: the data plane drops it once decoded.
                content_type = _header(raw, b"content-type")
                result = await self.dataplane.infer_async(
                    target[0],
                    target[1],
                    await self._read_body(receive, length),
                    header_length,
                    content_type,
                )
                return ("200 OK", result.headers, result.body), False
            body = await self._read_body(receive, length)
        except _Unread as exc:
            return response_parts(exc.error), True
        except WeirError as exc:
            return response_parts(exc), False
        except ClientGone:
            raise
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            return internal_error_parts(), False
        environ = _environ(scope, _headers(scope), body)
        if scope["path"].startswith(THREADED_PREFIXES):
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(None, _call_wsgi, self.wsgi_app, environ), False
        return _call_wsgi(self.wsgi_app, environ), False

    async def _read_body(self, receive: Receive, length: int | None) -> bytes:
        """The body, refusing more than the limit (413). A body over it is read and discarded
        up to `drain_ceiling` so that a proxy in front gets the 413 rather than a reset;
        beyond that it is left unread and the connection closed after the answer."""
        limit = self.dataplane.max_body_bytes
        if length is not None and length > drain_ceiling(limit):
            raise _Unread(self.dataplane.too_large())
        chunks: list[bytes] = []
        size = 0
        keep = length is None or length <= limit  # a body declared over the limit is dropped
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if keep and size <= limit:
                chunks.append(chunk)
            elif size > drain_ceiling(limit):  # chunked, and past any size worth draining
                raise _Unread(self.dataplane.too_large())
            if not message.get("more_body", False):
                break
        if size > limit:
            raise self.dataplane.too_large()
        return b"".join(chunks) if len(chunks) != 1 else chunks[0]


class _Unread(Exception):
    """A refusal sent before the body was read: the connection closes after it."""

    def __init__(self, error: WeirError) -> None:
        self.error = error


async def send_response(send: Send, parts: Parts, close: bool = False) -> None:
    status, headers, body = parts
    raw = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]
    raw.append((b"content-length", str(len(body)).encode("ascii")))
    if close:
        raw.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": int(status[:3]), "headers": raw})
    if len(body) <= SLICE_BYTES:
        await send({"type": "http.response.body", "body": body})
        return
    view = memoryview(body)
    for start in range(0, len(body), SLICE_BYTES):
        end = start + SLICE_BYTES
        await send(
            {"type": "http.response.body", "body": view[start:end], "more_body": end < len(body)}
        )


def infer_target(path: str) -> tuple[str, str | None] | None:
    """`parse_infer_path` after the normalisation Falcon's router applies (repeated and
    trailing slashes), so that every path Falcon would route to infer is served here."""
    target = parse_infer_path(path)
    if target is None and ("//" in path or path.endswith("/")):
        target = parse_infer_path("/" + "/".join(part for part in path.split("/") if part))
    return target


def _header(raw: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    """One request header (uvicorn gives lower-case names); repeated ones joined by commas."""
    found = [value for key, value in raw if key == name]
    if not found:
        return None
    return b",".join(found).decode("latin-1")


def _headers(scope: Scope) -> dict[str, str]:
    """Request headers by lower-case name; repeated ones joined with commas (RFC 9110)."""
    found: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
        found[name] = f"{found[name]},{value}" if name in found else value
    return found


def _environ(scope: Scope, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """The WSGI environ (PEP 3333) of an ASGI request whose body has been read."""
    server = scope.get("server") or ("localhost", 0)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": "",
        # PEP 3333: the path's bytes as latin-1 characters.
        "PATH_INFO": scope["path"].encode("utf-8").decode("latin-1"),
        "QUERY_STRING": scope["query_string"].decode("latin-1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1] or 0),
        "SERVER_PROTOCOL": f"HTTP/{scope['http_version']}",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "CONTENT_LENGTH": str(len(body)),
    }
    if scope.get("client"):
        environ["REMOTE_ADDR"] = str(scope["client"][0])
    for name, value in headers.items():
        if name == "content-type":
            environ["CONTENT_TYPE"] = value
        elif name != "content-length":
            environ["HTTP_" + name.upper().replace("-", "_")] = value
    return environ


def _call_wsgi(app: WsgiApp, environ: dict[str, Any]) -> Parts:
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
