"""Weir's HTTP/1.1 protocol (the default worker's), spoken to byte by byte: what HTTP clients
rely on that the requests library never shows (sidecar.server.http_protocol)."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import requests

from tests.integration.sidecar.test_server import (
    DIGITS,
    _header_int,
    _rows,
    _wait_for,
    _wide_request,
)

READY = b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n\r\n"


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _answers(data: bytes) -> list[tuple[bytes, bytes]]:
    """(head, body) of each answer in a stream, by Content-Length."""
    found = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        found.append((head, rest[:length]))
        data = rest[length:]
    return found


def _infer(extra: bytes = b"", body: bytes | None = None) -> bytes:
    body = json.dumps(DIGITS).encode() if body is None else body
    return (
        b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d\r\n\r\n"
        % (extra, len(body))
        + body
    )


def test_an_http_1_0_request_is_answered_and_closed(sidecar):
    with socket.create_connection(("127.0.0.1", sidecar.port), timeout=30) as sock:
        sock.sendall(b"GET /v2/health/ready HTTP/1.0\r\n\r\n")
        (head, _), = _answers(_read_all(sock))  # fmt: skip
    assert head.startswith(b"HTTP/1.1 200 ") and b"connection: close" in head.lower()


def test_expect_100_continue_gets_its_interim_answer_before_the_body_is_sent(sidecar):
    body = json.dumps(DIGITS).encode()
    with socket.create_connection(("127.0.0.1", sidecar.port), timeout=30) as sock:
        sock.sendall(
            b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        assert sock.recv(1024) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        (head, answer), = _answers(_read_all(sock))  # fmt: skip
    assert head.startswith(b"HTTP/1.1 200 ") and json.loads(answer)["outputs"]


def test_head_is_answered_without_a_body_and_the_connection_serves_on(sidecar):
    with socket.create_connection(("127.0.0.1", sidecar.port), timeout=30) as sock:
        sock.sendall(
            b"HEAD /v2/health/ready HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        data = _read_all(sock)
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head  # GET's answer, without its body
    # The next bytes are the second answer's head, not a body of the first.
    assert rest.startswith(b"HTTP/1.1 200 "), rest[:80]
    (got, body), = _answers(rest)  # fmt: skip
    assert _header_int(head, b"content-length") == _header_int(got, b"content-length")
    assert _header_int(got, b"content-length") == len(body) > 0  # HEAD declares GET's length


def test_two_thousand_requests_pipelined_behind_an_infer_are_answered_in_order(sidecar):
    # All wait while the infer computes, then are answered one after another.
    gets = b"".join(
        b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\nX-N: %d\r\n\r\n" % n for n in range(1998)
    )
    last = b"GET /v2/models/digits HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", sidecar.port), timeout=60) as sock:
        sock.sendall(_infer() + gets + last)
        answers = _answers(_read_all(sock))
    assert len(answers) == 2000
    assert all(head.startswith(b"HTTP/1.1 200 ") for head, _ in answers)
    assert json.loads(answers[0][1])["outputs"]
    assert json.loads(answers[-1][1])["name"] == "digits"


def test_a_body_in_one_byte_chunks_is_decoded_whole(sidecar):
    body = json.dumps(DIGITS).encode()
    chunked = b"".join(b"1\r\n%s\r\n" % body[i : i + 1] for i in range(len(body))) + b"0\r\n\r\n"
    with socket.create_connection(("127.0.0.1", sidecar.port), timeout=30) as sock:
        sock.sendall(
            b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + chunked
        )
        (head, answer), = _answers(_read_all(sock))  # fmt: skip
    assert head.startswith(b"HTTP/1.1 200 ") and json.loads(answer)["outputs"]


def test_a_body_over_the_limit_is_refused_413_and_the_connection_serves_on(
    spawn_sidecar, repository
):
    small = spawn_sidecar(repository, env={"WEIR_MAX_BODY_BYTES": "4096"})
    with socket.create_connection(("127.0.0.1", small.port), timeout=30) as sock:
        sock.sendall(_infer(body=b" " * 10_000) + _infer(b"Connection: close\r\n"))
        (refused, message), (served, answer) = _answers(_read_all(sock))
    assert refused.startswith(b"HTTP/1.1 413 ") and "4096" in json.loads(message)["error"]
    assert served.startswith(b"HTTP/1.1 200 ") and json.loads(answer)["outputs"]


def test_connections_beyond_the_limit_are_answered_503_in_json_and_the_rest_serve(
    spawn_sidecar, repository
):
    proc = spawn_sidecar(repository, "--workers", "1", env={"WEIR_MAX_CONNECTIONS": "4"})
    held = [socket.create_connection(("127.0.0.1", proc.port), timeout=30) for _ in range(4)]
    try:
        for sock in held:  # each is accepted and served, and stays open
            sock.sendall(READY)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        with socket.create_connection(("127.0.0.1", proc.port), timeout=30) as extra:
            (head, body), = _answers(_read_all(extra))  # fmt: skip
        assert head.startswith(b"HTTP/1.1 503 ") and b"retry-after: 1" in head
        assert "4 connections" in json.loads(body)["error"]
    finally:
        for sock in held:
            sock.close()
    # Closed connections free their places.
    deadline = time.monotonic() + 30
    while True:
        with socket.create_connection(("127.0.0.1", proc.port), timeout=30) as sock:
            sock.sendall(b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            if _read_all(sock).startswith(b"HTTP/1.1 200 "):
                break
        assert time.monotonic() < deadline, "no place freed within 30s"
        time.sleep(0.1)


def test_a_queued_request_whose_client_hangs_up_is_never_computed(spawn_sidecar, heavy_repository):
    proc = spawn_sidecar(heavy_repository, "--workers", "1")
    url = f"{proc.url}/v2/models/slow/infer"
    # Binary and under 1 MiB: decoded on the loop, so each is queued once it is in flight.
    # `slow` runs one request per batch: the one that hangs up waits behind two.
    rows = 4000
    tensor = np.full((rows, 64), 0.25, np.float32).tobytes()
    header = json.dumps(
        {"inputs": [{"name": "x", "shape": [rows, 64], "datatype": "FP32",
                     "parameters": {"binary_data_size": len(tensor)}}]}
    ).encode()  # fmt: skip
    binary = {"Inference-Header-Content-Length": str(len(header))}

    def in_flight() -> float:
        return proc.metric("weir_requests_in_flight", model="slow")

    with ThreadPoolExecutor(2) as pool:
        busy = []
        for n in (1, 2):
            busy.append(
                pool.submit(requests.post, url, data=header + tensor, headers=binary, timeout=300)
            )
            _wait_for(lambda n=n: in_flight() >= n, f"{n} busy")
        body = _rows("slow", 3)
        quitter = socket.create_connection(("127.0.0.1", proc.port), timeout=30)
        quitter.sendall(
            b"POST /v2/models/slow/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
            % len(body)
            + body
        )
        _wait_for(lambda: in_flight() >= 3, "queued")
        quitter.close()
        _wait_for(lambda: in_flight() <= 2, "withdrawn")
        assert [f.result().status_code for f in busy] == [200, 200]
    # Only the two busy requests' rows ran; the 3 rows of the one that hung up did not.
    assert proc.metric("weir_inference_count_total", model="slow") == 2 * rows
    assert requests.post(url, data=_rows("slow", 3), timeout=300).status_code == 200


def test_a_request_hidden_in_the_body_of_an_upgrade_request_is_never_served(sidecar):
    smuggled = b"GET /v2/models/digits HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(("127.0.0.1", sidecar.port), timeout=30) as sock:
        sock.sendall(
            b"POST /v2/health/live HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nContent-Length: %d\r\n\r\n" % len(smuggled)
        )
        time.sleep(0.2)  # the body in a later segment, as a smuggler sends it
        with contextlib.suppress(OSError):  # the server may already have closed
            sock.sendall(smuggled)
        answers = _answers(_read_all(sock))
    assert len(answers) == 1, answers  # one request, one answer, then the connection closed
    assert not answers[0][0].startswith(b"HTTP/1.1 200 ")


def test_a_header_line_that_never_ends_is_refused_431_before_it_grows(sidecar):
    with socket.create_connection(("127.0.0.1", sidecar.port), timeout=30) as sock:
        sock.sendall(b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\nX-Big: ")
        sent, answer = 0, b""
        with contextlib.suppress(OSError):  # refused and closed while we still send
            while sent < 4 << 20:
                sock.sendall(b"a" * 16384)
                sent += 16384
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert sent < 4 << 20  # refused long before 4 MiB of one header
    assert requests.get(f"{sidecar.url}/v2/health/ready", timeout=10).status_code == 200


def test_a_chunked_body_s_trailer_is_no_request_header(sidecar):
    body = json.dumps(DIGITS).encode()
    with socket.create_connection(("127.0.0.1", sidecar.port), timeout=30) as sock:
        sock.sendall(
            b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n"
            b"Inference-Header-Content-Length: 3\r\n\r\n" % (len(body), body)
        )
        (head, answer), = _answers(_read_all(sock))  # fmt: skip
    assert head.startswith(b"HTTP/1.1 200 ") and json.loads(answer)["outputs"]


def test_expect_100_continue_over_the_limit_is_refused_at_once(spawn_sidecar, repository):
    small = spawn_sidecar(repository, env={"WEIR_MAX_BODY_BYTES": "4096"})
    with socket.create_connection(("127.0.0.1", small.port), timeout=30) as sock:
        sock.sendall(
            b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
            b"Content-Length: 10000\r\n\r\n"
        )
        (head, message), = _answers(_read_all(sock))  # fmt: skip
    assert head.startswith(b"HTTP/1.1 413 ") and "4096" in json.loads(message)["error"]


def test_bodies_still_being_read_count_against_the_worker_s_byte_budget(spawn_sidecar, repository):
    """Slow bodies cannot hold more memory than the budget: past it, a body is read and
    dropped and answered 503 (the connection serves on); a hang-up gives its bytes back."""
    proc = spawn_sidecar(
        repository, "--workers", "1", env={"WEIR_MAX_IN_FLIGHT_BYTES": str(1 << 20)}
    )
    padded = json.dumps(DIGITS).encode() + b" " * 600_000  # valid JSON, 600 KB
    slow = socket.create_connection(("127.0.0.1", proc.port), timeout=30)
    try:
        # 700 KB of an 800 KB body, held while the rest never comes.
        slow.sendall(
            b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 800000\r\n\r\n"
            + b" " * 700_000
        )
        time.sleep(0.5)
        with socket.create_connection(("127.0.0.1", proc.port), timeout=30) as sock:
            sock.sendall(_infer(body=padded) + _infer(b"Connection: close\r\n"))
            (refused, message), (served, answer) = _answers(_read_all(sock))
        assert refused.startswith(b"HTTP/1.1 503 ") and b"retry-after:" in refused.lower()
        error = json.loads(message)["error"]
        assert "MiB of requests" in error and "Retry-After" in error
        assert served.startswith(b"HTTP/1.1 200 ") and json.loads(answer)["outputs"]
    finally:
        slow.close()
    # The hung-up body's bytes are given back: the large request is served now.
    deadline = time.monotonic() + 30
    while True:
        with socket.create_connection(("127.0.0.1", proc.port), timeout=30) as sock:
            sock.sendall(_infer(b"Connection: close\r\n", body=padded))
            head = _read_all(sock)
        if head.startswith(b"HTTP/1.1 200 "):
            break
        assert time.monotonic() < deadline, f"budget not given back: {head[:200]!r}"
        time.sleep(0.1)


def test_an_unparsable_target_gives_its_body_s_bytes_back(spawn_sidecar, repository):
    """llhttp takes `http://[::1/x` as a request target that httptools' URL parser refuses:
    such a request is a 400 before its body is read, and holds none of the worker's budget
    (refused after its body, the bytes were lost, and a few such requests locked the worker
    out of every infer with a body)."""
    proc = spawn_sidecar(
        repository, "--workers", "1", env={"WEIR_MAX_IN_FLIGHT_BYTES": str(1 << 20)}
    )
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", proc.port), timeout=30) as sock:
            sock.sendall(
                b"POST http://[::1/x HTTP/1.1\r\nHost: x\r\nContent-Length: 500000\r\n\r\n"
            )
            head, _, body = _read_all(sock).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400 "), head
        assert "not a valid path or URL" in json.loads(body)["error"]
    padded = json.dumps(DIGITS).encode() + b" " * 900_000
    answer = requests.post(
        f"{proc.url}/v2/models/digits/infer", data=padded, timeout=30,
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert answer.status_code == 200, answer.text


def test_a_slow_reader_of_a_long_answer_holds_no_request_bytes(spawn_sidecar, heavy_repository):
    """Once its answer is computed a request's body is gone: a client that takes its long
    answer slowly must not keep its body's bytes counted against everyone else's."""
    proc = spawn_sidecar(
        heavy_repository, "--workers", "1", env={"WEIR_MAX_IN_FLIGHT_BYTES": str(2 << 20)}
    )
    wide = json.loads(_wide_request(proc.port, 64).partition(b"\r\n\r\n")[2])  # 16 MiB out
    body = json.dumps(wide).encode() + b" " * 1_500_000  # 1.5 MB in
    with socket.socket() as slow:
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect(("127.0.0.1", proc.port))
        slow.sendall(
            b"POST /v2/models/wide/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
            % len(body)
            + body
        )
        slow.settimeout(30)
        assert slow.recv(64).startswith(b"HTTP/1.1 200 ")  # answered, then taken slowly
        padded = json.dumps(DIGITS).encode() + b" " * 900_000  # with 1.5 MB, over 2 MiB
        answer = requests.post(
            f"{proc.url}/v2/models/digits/infer", data=padded, timeout=30,
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        assert answer.status_code == 200, answer.text
