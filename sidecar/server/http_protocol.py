"""Weir's HTTP/1.1 server protocol for the asyncio worker: httptools (llhttp) parses, this
module reads whole requests, hands them to `LoopFront` and writes the answers.

Why not uvicorn's protocol (which this replaced): per request it builds an ASGI scope, a
request-response cycle, an event and two checked `send` calls, and arms a keep-alive timer,
about 20 µs of a worker's CPU (`make bench`'s digits row is a few dozen). Weir's answers are
whole byte strings from `LoopFront`, so none of that is needed. uvicorn's `Server` still
runs the worker: its sockets, the gunicorn heartbeat and the graceful shutdown.

What a connection does:
- HEAD is answered as GET is, without the body.
- One request at a time, in order. Requests pipelined behind one being answered wait in
  order, reading paused; `Connection: close` and HTTP/1.0 close after their answer.
- The body is read within `DataPlane.max_body_bytes`. Over it, the body is read and
  discarded up to `drain_ceiling` and answered 413 (a proxy in front then gets the 413,
  not a reset); one declared or grown beyond the ceiling is refused at once and closed.
  `Expect: 100-continue` is honoured for bodies within the limit.
- Body bytes count against the worker's budget of request bytes (`DataPlane.hold`) as they
  arrive, until the request is answered or its client is gone: past the budget, what was
  kept of the body is dropped, the rest is read and discarded, and the answer is a 503
  (`queue_full`, Retry-After). Slow bodies cannot hold more memory than the budget.
- A request the parser refuses (a bad request line, an unknown method, a malformed header or
  chunk, a transfer coding other than chunked, an HTTP version other than 1.1 and 1.0) is
  answered in V2 JSON: 405 for an unknown
  method, 414 for a request line over `MAX_URL_BYTES`, 431 for headers over
  `MAX_HEADER_BYTES` or `MAX_HEADERS`, 400 otherwise, and the connection closes, as the
  stream cannot be trusted after it. Behind an answer under way, the requests read before
  it are answered, then the connection closes: nothing is spliced into an answer.
- Deadlines, one lazy timer per connection: a request must arrive whole within
  `read_timeout` seconds of connecting (the first request) or of its first byte (the next
  ones), else 408 and close; an idle
  keep-alive connection closes after `keep_alive` seconds. Moving a deadline is a store,
  not a timer: the timer re-arms itself when it fires early.
- A worker holds at most `max_connections` connections; one more is answered 503 and
  closed. A client that hangs up before its answer has its request cancelled: a queued
  infer leaves its batching queue uncomputed.
- An answer over `SLICE_BYTES` goes out in slices, each once the client took the previous
  ones; a client that takes nothing of what is queued for it (in the transport and in the
  kernel's socket buffer) for `write_timeout` seconds is reset (RST, the queued bytes
  discarded): it sees an error, never a cut body under a 200, and nobody else waits on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import socket
import struct
import termios
import urllib.parse
from collections import deque
from typing import Any

import httptools

from sidecar.errors import (
    FAILURE_HEADER,
    SERVER_FAILURE,
    WeirError,
    error_body,
    internal_error_parts,
    response_parts,
)
from sidecar.http.loop_front import Headers, LoopFront, Parts, wsgi_environ
from sidecar.metrics import CLIENT_GONE
from sidecar.serving.dataplane import drain_ceiling

log = logging.getLogger(__name__)

MAX_URL_BYTES = 8 * 1024
MAX_HEADER_BYTES = 64 * 1024
MAX_HEADERS = 100
SLICE_BYTES = 1 << 20
ANSWERS_PER_TURN = 16
_REASONS = {400: "Bad Request", 405: "Method Not Allowed", 408: "Request Timeout"}
_REASONS |= {413: "Request Entity Too Large", 414: "URI Too Long"}
_REASONS[431] = "Request Header Fields Too Large"
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_READ, _IDLE = "read", "idle"


class _Refused(Exception):
    """Raised from a parser callback: the request is over a limit (status, message)."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message


class _Request:
    """One request read whole: what `LoopFront` needs to answer it."""

    __slots__ = (
        "body",
        "headers",
        "held",
        "http_version",
        "keep_alive",
        "method",
        "path",
        "query",
        "refusal",
    )

    def __init__(
        self,
        method: str,
        parsed: Any,  # httptools.parse_url's
        http_version: str,
        headers: Headers,
        body: bytes,
        keep_alive: bool,
        refusal: WeirError | None,
        held: int,
    ) -> None:
        path = parsed.path.decode("ascii")
        self.path = urllib.parse.unquote(path) if "%" in path else path
        self.query: bytes = parsed.query or b""
        self.method = method
        self.http_version = http_version
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive
        # Its body was read and dropped (over the limit, or the worker's budget): answered so.
        self.refusal = refusal
        self.held = held  # body bytes counted against the worker's budget until answered


class WeirHttpProtocol(asyncio.Protocol):
    """See the module docstring. Made by uvicorn's `Server` (its `http` protocol class) with
    the worker's `LoopFront` as the config's app; the timeouts are set by the worker."""

    write_timeout = 30.0
    read_timeout = 60.0
    max_connections = 4096
    _refused_logged_at = float("-inf")

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: Any = None,
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.front: LoopFront = config.app
        self.loop = _loop or asyncio.get_event_loop()
        self.server_state = server_state
        self.keep_alive_s = float(config.timeout_keep_alive)
        self.limit = self.front.dataplane.max_body_bytes
        self.ceiling = drain_ceiling(self.limit)
        self.parser = httptools.HttpRequestParser(self)
        with contextlib.suppress(AttributeError):  # httptools < 0.6.3
            # Let the answers to requests pipelined before a `Connection: close` go out.
            self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        self.transport: asyncio.Transport | None = None
        self.server: tuple[str, int] | None = None
        self.client: tuple[str, int] | None = None
        self.waiting: deque[_Request] = deque()  # read whole, not yet answered
        self.answering = False  # a request is being answered
        self.close_after = False  # close once the requests read so far are answered
        self.gone = False
        self._task: asyncio.Task[None] | None = None  # the answer under way, when it waits
        self._resume: asyncio.Handle | None = None  # `_next` again next turn (a long pipeline)
        # The request being read.
        self._url = b""
        self._parsed_url: Any = None
        self._headers: Headers = []
        self._header_bytes = 0
        self._body = bytearray()
        self._size = 0
        self._in_message = False  # between a request's first byte and its end
        self._in_head = False  # between a request's first byte and its headers' end
        self._head_bytes = 0  # bytes fed meanwhile
        self._unparsable = False  # the parser failed or stopped: nothing more is read
        self._keep_body = True
        self._held = 0  # bytes of the body being read counted against the worker's budget
        self._refusal: WeirError | None = None  # the budget refused the body being read
        self._current: _Request | None = None  # the request being answered
        # Deadlines (module docstring): the one timer fires at `_timer_at` or later.
        self._deadline = 0.0
        self._deadline_kind: str | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        # Writing: flow control and the watchdog of a reader that takes nothing.
        self._write_paused = False
        self._drained: asyncio.Future[None] | None = None
        self._watch: asyncio.TimerHandle | None = None
        self._unsent = 0
        self._dropped = False

    # The connection.

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        if len(self.server_state.connections) >= self.max_connections:
            self._refuse_connection()
            return
        self.server_state.connections.add(self)
        self.server = _address(transport.get_extra_info("sockname"))
        self.client = _address(transport.get_extra_info("peername"))
        self._set_deadline(self.read_timeout, _READ)

    def connection_lost(self, exc: Exception | None) -> None:
        self.gone = True
        self.server_state.connections.discard(self)
        for timer in (self._timer, self._watch):
            if timer is not None:
                timer.cancel()
        self._timer = self._watch = None
        self._deadline_kind = None
        if self.answering and not self._dropped:
            # Gone before its answer (an edge that timed out, a client that gave up): normal,
            # counted, not worth a log line each.
            CLIENT_GONE.inc()
        if self._resume is not None:
            self._resume.cancel()
            self._resume = None
        if self._task is not None and not self._task.done():
            self._task.cancel()  # nobody waits for it: a queued infer leaves its queue
        self._task = None
        self._release_reading()
        for request in (self._current, *self.waiting):
            if request is not None:
                self._release(request)
        self._current = None
        self.waiting.clear()
        self._wake_writer()

    def _refuse_connection(self) -> None:
        """Over `max_connections`: a 503 in V2 JSON, closed (each costs a file descriptor
        and memory; the read timeout closes idle ones, this bounds them meanwhile)."""
        self.gone = True
        now = self.loop.time()
        if now - WeirHttpProtocol._refused_logged_at >= 10:
            WeirHttpProtocol._refused_logged_at = now
            log.warning(
                "refusing connections: this worker holds %d, its limit (max_connections)",
                self.max_connections,
            )
        body = error_body(
            f"this sidecar worker holds {self.max_connections} connections, its limit; "
            "retry, or reuse connections (keep-alive)"
        )
        assert self.transport is not None
        self.transport.write(
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
            b"%s: %s\r\n"
            % (FAILURE_HEADER.encode(), SERVER_FAILURE.encode())
            + b"retry-after: 1\r\nconnection: close\r\ncontent-length: %d\r\n\r\n" % len(body)
            + body
        )
        self.transport.close()

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown: close now if idle, else after what was read."""
        self._close_after_answers()

    def _close_after_answers(self) -> None:
        self.close_after = True
        if not self.answering and not self.waiting and self.transport is not None:
            self.transport.close()
            self.gone = True

    def data_received(self, data: bytes) -> None:
        if self.gone or self._unparsable:  # what follows is not read
            return
        if self._in_head:
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # llhttp hands the bytes after an upgrade request to the new protocol, unparsed:
            # parsing on would take a body for a request (smuggling). Answered, then closed.
            self._unparsable = True
            if self._in_message:
                self._answer_error(400, "the sidecar switches to no other protocol (Upgrade)")
            else:  # the upgrade request was read whole: it is answered, then we close
                self._close_after_answers()
            return
        except httptools.HttpParserError as exc:
            self._unparsable = True
            self._refuse(exc)
            return
        # httptools keeps a header line to itself until it ends: bound it from the bytes fed.
        if self._in_head and self._head_bytes > MAX_URL_BYTES + MAX_HEADER_BYTES:
            self._unparsable = True
            self._answer_error(
                431, f"request headers are over {MAX_HEADER_BYTES} bytes or {MAX_HEADERS} fields"
            )

    def eof_received(self) -> bool | None:
        # The client is gone, as nginx judges a client's FIN during a request (its 499): what
        # it sent is not computed. Half-closing clients are rare; hung-up ones are not.
        return None

    # Parser callbacks (httptools).

    def on_message_begin(self) -> None:
        self._in_message = True
        self._url = b""
        self._headers = []
        self._header_bytes = 0
        self._in_head = True
        self._head_bytes = 0
        self._body = bytearray()
        self._size = 0
        self._keep_body = True
        self._refusal = None
        # A new connection's deadline already runs from its opening: the first byte does not
        # restart it (a client may not take twice `read_timeout` over its first request).
        if self._deadline_kind != _READ:
            self._set_deadline(self.read_timeout, _READ)

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > MAX_URL_BYTES:
            raise _Refused(414, f"the request line is over {MAX_URL_BYTES} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._in_head:
            return  # a chunked body's trailer: not headers of the request
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > MAX_HEADER_BYTES or len(self._headers) >= MAX_HEADERS:
            raise _Refused(
                431, f"request headers are over {MAX_HEADER_BYTES} bytes or {MAX_HEADERS} fields"
            )
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self._in_head = False
        declared = None
        expect = False
        version = self.parser.get_http_version()
        if version not in ("1.1", "1.0"):
            raise _Refused(400, f"HTTP/{version} is not spoken here: send HTTP/1.1")
        try:  # llhttp takes targets its own URL parser refuses (`http://[::1/x`)
            self._parsed_url = httptools.parse_url(self._url)
        except httptools.HttpParserInvalidURLError:
            raise _Refused(400, "the request target is not a valid path or URL") from None
        for name, value in self._headers:
            if name == b"content-length":
                declared = int(value)  # llhttp accepts digits only, and one value
            elif name == b"expect" and value.lower() == b"100-continue":
                expect = True
            elif name == b"transfer-encoding" and value.strip().lower() != b"chunked":
                # llhttp takes the chunked framing and would hand over the coded bytes.
                raise _Refused(
                    400,
                    f"Transfer-Encoding {value.decode('latin-1')[:60]!r} is not supported: "
                    "send the body as is (Content-Length) or chunked, without other codings",
                )
        if declared is not None and (declared > self.ceiling or (expect and declared > self.limit)):
            # Beyond the ceiling, or waiting for our go-ahead: refused before any body is sent.
            raise _Refused(413, self.front.dataplane.too_large().message)
        self._keep_body = declared is None or declared <= self.limit
        if (
            expect
            and version != "1.0"  # 1xx answers are HTTP/1.1's
            and not self.answering
            and not self.waiting
            and self.transport is not None
        ):
            self.transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._keep_body and self._size <= self.limit:
            if self.front.dataplane.hold(len(body)):
                self._held += len(body)
                self._body += body  # one buffer: a body of 1-byte chunks is not 28x its size
            else:  # the worker holds too many bytes already: drop, drain, answer 503
                self._refusal = self.front.dataplane.over_budget()
                self._keep_body = False
                self._body = bytearray()
                self._release_reading()
        elif self._size > self.ceiling:  # chunked, and past any size worth draining
            raise _Refused(413, self.front.dataplane.too_large().message)

    def on_message_complete(self) -> None:
        self._in_message = False
        parser = self.parser
        version = parser.get_http_version()
        body = bytes(self._body)
        self._body = bytearray()
        refusal = self._refusal
        if self._size > self.limit:
            refusal = self.front.dataplane.too_large()
        if refusal is not None:  # its body is dropped: nothing to hold for it
            self._release_reading()
        request = _Request(
            parser.get_method().decode("ascii"),
            self._parsed_url,
            version,
            self._headers,
            b"" if refusal is not None else body,
            version != "1.0" and parser.should_keep_alive(),
            refusal,
            self._held,
        )
        self._held = 0  # the request's now: released once it is answered, or its client gone
        self._deadline_kind = None
        self.waiting.append(request)
        if self.answering or self._write_paused or self._resume is not None:
            assert self.transport is not None
            self.transport.pause_reading()  # pipelined: read on once it is answered
        else:
            self._next()

    # Answering, one request at a time.

    def _next(self) -> None:
        """Answer the requests waiting, in order, until one must wait (for its batch, or for
        the client to take what it was sent); idle, read on. Never recursive: a thousand
        pipelined requests are a loop, not a call chain; and at most `ANSWERS_PER_TURN` of
        them per loop turn, so that one client's pipeline never holds the loop (its other
        connections, the gunicorn heartbeat) for longer than a few answers."""
        self._resume = None
        answered = 0
        while self.waiting and not self.answering and not self._write_paused and not self.gone:
            if answered == ANSWERS_PER_TURN:
                assert self.transport is not None
                self.transport.pause_reading()
                self._resume = self.loop.call_soon(self._next)
                return
            answered += 1
            request = self.waiting.popleft()
            self.answering = True
            self._current = request
            try:
                answer = self._answer(request)
            except Exception:
                log.exception("unhandled error on %s %s", request.method, request.path)
                answer = internal_error_parts()
            request.body = b""  # what answers it holds its own reference
            if isinstance(answer, tuple) and len(answer[2]) <= SLICE_BYTES:
                self._write_whole(request, answer)
                self._finished(request)
            else:
                # Kept: the loop holds its tasks weakly.
                self._task = self.loop.create_task(self._answer_later(request, answer))
        if not (self.answering or self.waiting or self._write_paused or self.gone):
            assert self.transport is not None
            self.transport.resume_reading()
            self._set_deadline(self.keep_alive_s, _IDLE)

    def _answer(self, request: _Request) -> Any:
        """Parts, or a coroutine of them."""
        if request.refusal is not None:
            return response_parts(request.refusal)
        target = self.front.infer_target(request.method, request.path)
        if target is not None:
            return self.front.infer(target, request.headers, request.body)
        environ = wsgi_environ(
            # HEAD is GET's answer without its body (the body is not written, `_write_whole`).
            "GET" if request.method == "HEAD" else request.method,
            request.path,
            request.query,
            request.http_version,
            request.headers,
            request.body,
            self.server,
            self.client,
        )
        return self.front.call(environ)

    async def _answer_later(self, request: _Request, answer: Any) -> None:
        parts: Parts = answer if isinstance(answer, tuple) else await answer
        # Answered: its body is gone, and a slow reader of a long answer holds no budget.
        self._release(request)
        if len(parts[2]) <= SLICE_BYTES:
            self._write_whole(request, parts)
        else:
            await self._write_slices(request, parts)
        self._task = None
        self._finished(request)
        self._next()

    def _write_whole(self, request: _Request, parts: Parts) -> None:
        if self.gone:
            return
        status, headers, body = parts
        assert self.transport is not None
        head = self._head(request, status, headers, len(body))
        self.transport.write(head + body if request.method != "HEAD" else head)

    async def _write_slices(self, request: _Request, parts: Parts) -> None:
        status, headers, body = parts
        if self.gone:
            return
        assert self.transport is not None
        self.transport.write(self._head(request, status, headers, len(body)))
        if request.method == "HEAD":
            return
        view = memoryview(body)
        for start in range(0, len(body), SLICE_BYTES):
            while self._write_paused and not self.gone:
                self._drained = self.loop.create_future()
                await self._drained
            if self.gone:
                return
            self.transport.write(view[start : start + SLICE_BYTES])

    def _head(
        self, request: _Request, status: str, headers: list[tuple[str, str]], length: int
    ) -> bytes:
        lines = [f"HTTP/1.1 {status}\r\n"]
        lines += [f"{name}: {value}\r\n" for name, value in headers]
        lines.append(f"content-length: {length}\r\n")
        if not request.keep_alive or self.close_after:
            lines.append("connection: close\r\n")
        default = b"".join(
            b"%s: %s\r\n" % pair for pair in self.server_state.default_headers
        )  # the date uvicorn's server keeps current
        return "".join(lines).encode("latin-1") + default + b"\r\n"

    def _release(self, request: _Request) -> None:
        request.body = b""  # whoever answers it took what they need
        if request.held:
            self.front.dataplane.release(request.held)
            request.held = 0

    def _release_reading(self) -> None:
        if self._held:
            self.front.dataplane.release(self._held)
            self._held = 0

    def _finished(self, request: _Request) -> None:
        """`request` is answered: close when it or the connection asks to."""
        self._release(request)
        self._current = None
        self.answering = False
        self.server_state.total_requests += 1
        if self.gone:
            return
        if not request.keep_alive or (self.close_after and not self.waiting):
            assert self.transport is not None
            self.transport.close()
            self.gone = True

    # Refusals.

    def _refuse(self, exc: httptools.HttpParserError) -> None:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, _Refused):
            status, message = cause.status, cause.message
        elif isinstance(exc, httptools.HttpParserInvalidMethodError):
            status, message = 405, "unknown HTTP method; the V2 protocol uses GET and POST"
        else:
            status, message = 400, f"malformed HTTP request: {_parser_words(exc)}"
        log.info("refused a request from %s: %s", self.client, message)
        self._answer_error(status, message)

    def _answer_error(self, status: int, message: str) -> None:
        """Answer `status` in V2 JSON and close; behind answers still owed on this connection,
        close once they are written instead, and splice nothing into them."""
        self._deadline_kind = None
        if self.transport is None or self.gone:
            return
        if self.answering or self.waiting:
            self.close_after = True
            self.transport.pause_reading()
            return
        body = error_body(message)
        head = (
            f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
            "content-type: application/json\r\n"
            f"content-length: {len(body)}\r\n"
            "connection: close\r\n\r\n"
        )
        self.transport.write(head.encode("ascii") + body)
        self.transport.close()
        self.gone = True

    # Deadlines.

    def _set_deadline(self, seconds: float, kind: str) -> None:
        at = self.loop.time() + seconds
        self._deadline, self._deadline_kind = at, kind
        if self._timer is None or self._timer_at > at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer, self._timer_at = self.loop.call_at(at, self._deadline_passed), at

    def _deadline_passed(self) -> None:
        self._timer = None
        kind = self._deadline_kind
        if kind is None or self.gone:
            return
        if self.loop.time() < self._deadline:  # moved since: wait for the new one
            self._timer, self._timer_at = (
                self.loop.call_at(self._deadline, self._deadline_passed),
                self._deadline,
            )
            return
        if kind == _IDLE:
            assert self.transport is not None
            self.transport.close()
            self.gone = True
            return
        log.info("closed %s: no whole request within %gs", self.client, self.read_timeout)
        self._answer_error(408, f"the request was not sent within {self.read_timeout:g}s")

    # Writing: flow control, and dropping a reader that takes nothing.

    def pause_writing(self) -> None:
        self._write_paused = True
        self._arm_watch()

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        self._wake_writer()
        if not self.answering and self._resume is None:
            self._next()  # requests held back while the client took nothing

    def _wake_writer(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._drained = None

    def _arm_watch(self) -> None:
        self._unsent = self._queued()
        self._watch = self.loop.call_later(self.write_timeout, self._check_progress)

    def _queued(self) -> int:
        """Bytes not yet taken by the client: in the transport and in the kernel's buffer."""
        assert self.transport is not None
        queued = self.transport.get_write_buffer_size()
        sock = self.transport.get_extra_info("socket")
        with contextlib.suppress(OSError, AttributeError, ValueError):
            raw = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
            queued += struct.unpack("i", raw)[0]
        return queued

    def _check_progress(self) -> None:
        self._watch = None
        if self.transport is None or self.transport.is_closing():
            return
        queued = self._queued()
        if queued < self._unsent:
            self._arm_watch()  # slow, but reading: keep going
            return
        CLIENT_GONE.inc()
        self._dropped = True
        log.info(
            "dropped %s: it took nothing of its answer for %gs (%d bytes unsent)",
            self.client,
            self.write_timeout,
            queued,
        )
        sock = self.transport.get_extra_info("socket")
        with contextlib.suppress(OSError, AttributeError):
            # A reset, not a FIN after the queued bytes: the kernel drops them at once.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()


def _address(name: Any) -> tuple[str, int] | None:
    if isinstance(name, tuple) and len(name) >= 2:
        return str(name[0]), int(name[1])
    return None


def _parser_words(exc: httptools.HttpParserError) -> str:
    """httptools' reason, as short as it is ("Invalid header value char")."""
    text = str(exc).strip() or type(exc).__name__
    return text[:200]
