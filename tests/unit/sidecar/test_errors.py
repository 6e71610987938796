"""The one mapping from domain errors to responses: whose failure it is, in a header."""

from __future__ import annotations

import json

import pytest

from sidecar.errors import (
    FAILURE_HEADER,
    SERVER_FAILURE,
    BadRequest,
    InferenceFailed,
    NotFound,
    PayloadTooLarge,
    QueueFull,
    Unavailable,
    Unprocessable,
    WeirError,
    internal_error_parts,
    response_parts,
)

OURS = (FAILURE_HEADER, SERVER_FAILURE)


@pytest.mark.parametrize(
    ("error", "ours"),
    [
        (BadRequest("x"), False),
        (PayloadTooLarge("x"), False),
        (NotFound("x"), False),
        (Unprocessable("x"), False),  # a poison request: the client's, status 422
        (Unavailable("x"), True),
        (QueueFull("x"), True),
        (InferenceFailed("x"), True),
        (WeirError("x"), True),
    ],
)
def test_only_the_servers_own_failures_carry_the_header(error, ours):
    status, headers, body = response_parts(error)
    assert (OURS in headers) is ours
    assert int(status.split()[0]) == error.status
    assert json.loads(body) == {"error": "x"}


def test_unavailable_keeps_retry_after_beside_the_header():
    _, headers, _ = response_parts(QueueFull("full", retry_after=2))
    assert ("Retry-After", "2") in headers and OURS in headers


def test_an_internal_error_is_ours():
    status, headers, _ = internal_error_parts()
    assert status.startswith("500") and OURS in headers
