"""uvicorn's httptools protocol with Weir's answers to what never reaches the app.

- A request the parser refuses (a bad request line, an unknown method, a malformed header or
  chunk, a path that is not ASCII) is answered in V2 JSON, not uvicorn's plain text: 405 for
  an unknown method, 414 for a request line over `MAX_URL_BYTES`, 431 for headers over
  `MAX_HEADER_BYTES` or `MAX_HEADERS` (httptools itself has no limit), 400 otherwise. Each
  closes the connection, as the stream cannot be trusted after it.
  A refusal of a request pipelined behind one still being answered is not written into
  that answer: the connection closes after it instead.
- `scope["extensions"]["weir.respond"]` writes a whole small answer in one write, for the
  infer route's answers (one per request on the hot path): uvicorn's `send`, called twice
  per answer, checks every header against its regular expressions on the way.
- A client that takes longer than `read_timeout` seconds to send a request (headers and
  body, from its first byte, or from connecting) is answered 408 and closed: slow senders
  cannot pile up connections and file descriptors.
- A client that stops reading its answer is dropped: when nothing of what is queued for it
  (in the transport and in the kernel's socket buffer) has been taken for `write_timeout`
  seconds, the connection is reset (RST, the queued bytes discarded). The client sees a
  connection closed before the declared Content-Length, i.e. an error, and nobody else
  waits on it (it holds no thread; the loop serves everyone else).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import logging
import socket
import struct
import termios
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from sidecar.errors import error_body
from sidecar.metrics import CLIENT_GONE

log = logging.getLogger(__name__)

MAX_URL_BYTES = 8 * 1024
MAX_HEADER_BYTES = 64 * 1024
MAX_HEADERS = 100
_REASONS = {400: "Bad Request", 405: "Method Not Allowed", 408: "Request Timeout"}
_REASONS[414] = "URI Too Long"
_REASONS[431] = "Request Header Fields Too Large"


class _Refused(Exception):
    """Raised from a parser callback: the request is over a limit (status, message)."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message


class WeirHttpProtocol(HttpToolsProtocol):
    """See the module docstring; `write_timeout` is set by the worker from its settings."""

    write_timeout = 30.0
    read_timeout = 60.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_bytes = 0
        self._watch: asyncio.TimerHandle | None = None
        self._reading: asyncio.TimerHandle | None = None
        self._unsent = 0
        self._dropped = False

    # Reading: a deadline per request.

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_read()

    def _arm_read(self) -> None:
        if self._reading is not None:
            self._reading.cancel()
        self._reading = self.loop.call_later(self.read_timeout, self._read_too_slow)

    def _read_too_slow(self) -> None:
        self._reading = None
        if self.transport.is_closing():
            return
        log.info("closed %s: no whole request within %gs", self.client, self.read_timeout)
        self._answer_error(408, f"the request was not sent within {self.read_timeout:g}s")

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.scope is self.scope:
            self.scope["extensions"] = {"weir.respond": functools.partial(self._respond, cycle)}

    def _respond(self, cycle: Any, status: bytes, head: bytes, body: bytes) -> bool:
        """Write a whole answer (`head`: header lines, each ending in CRLF, no length) for
        `cycle`, in one write; False when it cannot (an answer under way, a client gone or
        not reading): the caller then goes through ASGI's `send`."""
        if cycle.response_started or cycle.disconnected or self.flow.write_paused:
            return False
        cycle.response_started = True
        cycle.waiting_for_100_continue = False
        keep = cycle.keep_alive
        parts = [b"HTTP/1.1 ", status, b"\r\n"]
        for name, value in self.server_state.default_headers:
            parts += (name, b": ", value, b"\r\n")
        parts += (head, b"content-length: ", str(len(body)).encode(), b"\r\n")
        parts.append(b"\r\n" if keep else b"connection: close\r\n\r\n")
        parts.append(body)
        self.transport.write(b"".join(parts))
        cycle.response_complete = True
        cycle.message_event.set()
        if not keep:
            self.transport.close()
        cycle.on_response()
        return True

    def on_message_complete(self) -> None:
        super().on_message_complete()
        if self._reading is not None:
            self._reading.cancel()
            self._reading = None

    # Parsing: limits, and JSON for what the parser refuses.

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._arm_read()

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > MAX_URL_BYTES:
            raise _Refused(414, f"the request line is over {MAX_URL_BYTES} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > MAX_HEADER_BYTES or len(self.headers) > MAX_HEADERS:
            raise _Refused(
                431, f"request headers are over {MAX_HEADER_BYTES} bytes or {MAX_HEADERS} fields"
            )

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._unsupported_upgrade_warning()  # served as a plain request, as uvicorn does
        except httptools.HttpParserError as exc:
            self._refuse(exc)

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
        """Answer `status` in V2 JSON and close, unless an answer is under way on this
        connection: then the connection closes after it, and nothing is spliced into it."""
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            if not cycle.more_body or cycle.response_started:
                # That request was read whole (the failure is a later one's) or its answer
                # has begun: finish it, then close.
                cycle.keep_alive = False
                return
            # Its body is what failed: the app stops waiting for the rest, we answer.
            cycle.disconnected = True
            cycle.message_event.set()
        body = error_body(message)
        head = (
            f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
            "content-type: application/json\r\n"
            f"content-length: {len(body)}\r\n"
            "connection: close\r\n\r\n"
        )
        self.transport.write(head.encode("ascii") + body)
        self.transport.close()

    def send_400_response(self, msg: str) -> None:  # any other path uvicorn takes to a 400
        self._refuse(httptools.HttpParserError(msg))

    # Writing: drop a reader that takes nothing.

    def pause_writing(self) -> None:
        super().pause_writing()
        self._arm_watch()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._watch, self._reading):
            if timer is not None:
                timer.cancel()
        self._watch = self._reading = None
        if self.cycle is not None and not self.cycle.response_complete and not self._dropped:
            # Gone before its answer (an edge that timed out, a client that gave up): normal,
            # counted, not worth a log line each.
            CLIENT_GONE.inc()
        super().connection_lost(exc)

    def _arm_watch(self) -> None:
        self._unsent = self._queued()
        self._watch = self.loop.call_later(self.write_timeout, self._check_progress)

    def _queued(self) -> int:
        """Bytes not yet taken by the client: in the transport and in the kernel's buffer."""
        queued = self.transport.get_write_buffer_size()
        sock = self.transport.get_extra_info("socket")
        with contextlib.suppress(OSError, AttributeError, ValueError):
            raw = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
            queued += struct.unpack("i", raw)[0]
        return queued

    def _check_progress(self) -> None:
        self._watch = None
        if self.transport.is_closing():
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


def _parser_words(exc: httptools.HttpParserError) -> str:
    """httptools' reason, as short as it is ("Invalid header value char")."""
    text = str(exc).strip() or type(exc).__name__
    return text[:200]
