"""Domain errors: each carries its HTTP status, so the mapping to responses lives in one place.

Messages are written for the client: what was wrong and what to do. Internal failures never
leak `str(exc)`; they are logged and answered with a fixed message.
"""

from __future__ import annotations

import json
from http import HTTPStatus

# On every answer for the sidecar's OWN failure (500, 503), never on a 4xx: the edge's breaker
# counts a 5xx only when it carries this header, so no client mistake can open a breaker.
# One value for all of them: the edge needs "ours or not", the status says which.
FAILURE_HEADER = "X-Weir-Failure"
SERVER_FAILURE = "server"
_OURS = (FAILURE_HEADER, SERVER_FAILURE)


class WeirError(Exception):
    """A failure the client should see, with the HTTP status it maps to."""

    status: int = 500
    reason: str = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def headers(self) -> dict[str, str]:
        return {}

    def failure_headers(self) -> list[tuple[str, str]]:
        """`headers()`, and the failure header when the status says the fault is ours."""
        return [*self.headers().items(), _OURS] if self.status >= 500 else [*self.headers().items()]


class BadRequest(WeirError):
    """The request itself is wrong: the client must change it."""

    status = 400
    reason = "bad_request"


class PayloadTooLarge(BadRequest):
    """The body is over the configured limit."""

    status = 413
    reason = "too_large"


class NotFound(WeirError):
    """Unknown model or version."""

    status = 404
    reason = "not_found"


class Unavailable(WeirError):
    """Overloaded or not ready: retry later."""

    status = 503
    reason = "unavailable"

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class QueueFull(Unavailable):
    """The model version's batching queue is at its bound."""

    reason = "queue_full"


class Unprocessable(WeirError):
    """Well-formed and valid against the signature, but the model cannot compute its values
    (it failed alone while the session works): the client's, never marked as the server's.

    422, not 400: 400 says the request is malformed (JSON, shapes, datatypes: fix how it is
    written); 422 says it was understood and validated, and its *values* are outside what
    the model computes (an index out of range, a size it cannot reshape): fix the data.
    """

    status = 422
    reason = "unprocessable"


class InferenceFailed(WeirError):
    """The runtime failed on a batch; the message is ours, never the runtime's."""

    status = 500
    reason = "inference_error"


def _status_line(code: int) -> str:
    return f"{code} {HTTPStatus(code).phrase}"


def error_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


def response_parts(exc: WeirError) -> tuple[str, list[tuple[str, str]], bytes]:
    """The one mapping from a domain error to (status line, headers, JSON body)."""
    headers = [("Content-Type", "application/json"), *exc.failure_headers()]
    return _status_line(exc.status), headers, error_body(exc.message)


def failure_headers(status: int) -> list[tuple[str, str]]:
    """The failure header for a status Weir did not raise itself (Falcon's own errors)."""
    return [_OURS] if status >= 500 else []


def internal_error_parts() -> tuple[str, list[tuple[str, str]], bytes]:
    """Our own failure: a fixed message, never the exception's text."""
    body = error_body("internal error in the sidecar; it has been logged")
    return _status_line(500), [("Content-Type", "application/json"), _OURS], body
