"""The sidecar's HTTP server: inference off the I/O path, V2 JSON for what never reaches the
app, and whole answers at the speed the reader takes them (uvicorn worker, the default)."""

from __future__ import annotations

import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests

DIGITS = {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0.5] * 64}]}
SLOW_ROWS = 4096  # about 34 GFLOP in one run of `slow`: seconds here, far beyond 10 round trips
WIDE_ROW_BYTES = 65536 * 4


def _rows(model: str, rows: int, binary_output: bool = False) -> bytes:
    body: dict[str, object] = {
        "inputs": [
            {"name": "x", "shape": [rows, 64], "datatype": "FP32", "data": [0.25] * (rows * 64)}
        ]
    }
    if binary_output:
        body["parameters"] = {"binary_data_output": True}
    return json.dumps(body).encode()


def _wait_for(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not seen within {timeout:g}s: {what}"
        time.sleep(0.02)


@pytest.mark.parametrize("worker_class", ["uvicorn", "gthread"])
def test_health_and_a_light_model_answer_while_a_heavy_batch_computes_on_the_same_worker(
    spawn_sidecar, heavy_repository, worker_class
):
    proc = spawn_sidecar(heavy_repository, "--workers", "1", "--worker-class", worker_class)
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(
            requests.post,
            f"{proc.url}/v2/models/slow/infer",
            data=_rows("slow", SLOW_ROWS),
            timeout=300,
        )
        # In flight: being decoded or computed. The scrape is itself an answer meanwhile.
        _wait_for(lambda: proc.metric("weir_requests_in_flight", model="slow") >= 1, "slow busy")
        still_computing = []
        for _ in range(10):
            health = requests.get(f"{proc.url}/v2/health/ready", timeout=30)
            light = requests.post(f"{proc.url}/v2/models/digits/infer", json=DIGITS, timeout=30)
            assert (health.status_code, light.status_code) == (200, 200), light.text
            still_computing.append(not slow.done())
        # Every light answer came back while the heavy request was still unanswered.
        assert all(still_computing), still_computing
        answer = slow.result()
        assert answer.status_code == 200, answer.text
        assert answer.json()["outputs"][0]["shape"] == [SLOW_ROWS, 1]


def _exchange(port: int, data: bytes) -> bytes:
    """Send raw bytes, read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


MANY_HEADERS = b"".join(b"X-H%d: 1\r\n" % i for i in range(120))
NEVER_REACH_THE_APP = {
    "unknown method": (b"FOO / HTTP/1.1\r\nHost: x\r\n\r\n", 405),
    "method token that is no method": (b"GARBAGE\r\n\r\n", 405),
    "unknown HTTP version": (b"GET / HTTP/x.y\r\nHost: x\r\n\r\n", 400),
    "request line over 8 KiB": (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    "a 70 KB header": (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n", 431),
    "120 headers": (b"GET / HTTP/1.1\r\nHost: x\r\n" + MANY_HEADERS + b"\r\n", 431),
    "header without colon": (b"GET / HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n", 400),
    "path not ASCII": (b"GET /v2/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "bad chunk size": (
        b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"\r\nZZ\r\n",
        400,
    ),
    "content-length and chunked": (
        b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
}


@pytest.mark.parametrize("name", list(NEVER_REACH_THE_APP))
def test_requests_the_parser_refuses_are_answered_in_v2_json(sidecar, name):
    data, status = NEVER_REACH_THE_APP[name]
    answer = _exchange(sidecar.port, data)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status), head
    assert b"content-type: application/json" in head.lower(), head
    assert json.loads(body)["error"], body
    assert requests.get(f"{sidecar.url}/v2/health/ready", timeout=10).status_code == 200


def test_a_transfer_coding_other_than_chunked_is_a_client_error_in_json(sidecar):
    answer = _exchange(
        sidecar.port,
        b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Transfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), head
    assert "Transfer-Encoding 'gzip, chunked' is not supported" in json.loads(body)["error"]


@pytest.mark.parametrize(
    "version, says",
    [(b"HTTP/2.0", "HTTP/2.0 is not spoken here"), (b"HTTP/1.2", "Invalid HTTP version")],
)
def test_a_request_line_of_another_http_version_is_refused_in_json(sidecar, version, says):
    answer = _exchange(sidecar.port, b"GET /v2/health/ready %s\r\nHost: x\r\n\r\n" % version)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), head
    assert says in json.loads(body)["error"]


def _header_int(head: bytes, name: bytes) -> int:
    """The integer value of header `name` (lower case) in an answer's head."""
    return next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(name + b":")
    )


def _read_answer(sock: socket.socket, pause: float = 0.0) -> tuple[bytes, int, bytes]:
    """(head, declared length, body as far as it came), reading 1 MiB at a time."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = _header_int(head, b"content-length")
    parts = [body]
    got = len(body)
    while got < length:
        try:
            chunk = sock.recv(1 << 20)
        except ConnectionResetError:
            break
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
        time.sleep(pause)
    return head, length, b"".join(parts)


def _wide_request(port: int, rows: int) -> bytes:
    body = _rows("wide", rows, binary_output=True)
    return (
        f"POST /v2/models/wide/infer HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def test_a_50_mb_answer_arrives_whole_at_the_readers_pace_while_others_are_served(
    spawn_sidecar, heavy_repository
):
    proc = spawn_sidecar(heavy_repository, "--workers", "1")
    rows = 200  # 52 MB of FP32 out
    with socket.create_connection(("127.0.0.1", proc.port), timeout=60) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(_wide_request(proc.port, rows))
        first = sock.recv(64)
        assert first.startswith(b"HTTP/1.1 200"), first
        # The answer is being written to a reader that has taken almost nothing: others pass.
        light = requests.post(f"{proc.url}/v2/models/digits/infer", json=DIGITS, timeout=30)
        assert light.status_code == 200, light.text
        head, length, body = _read_answer_after(sock, first, pause=0.01)
    json_length = _header_int(head, b"inference-header-content-length")
    assert len(body) == length, (len(body), length)
    tensor = np.frombuffer(body[json_length:], dtype=np.float32)
    assert tensor.size == rows * 65536 and np.all(tensor == np.float32(0.25))
    assert length > 50_000_000


def _read_answer_after(sock: socket.socket, first: bytes, pause: float) -> tuple[bytes, int, bytes]:
    class _Prefixed:
        def __init__(self) -> None:
            self.pending = first

        def recv(self, size: int) -> bytes:
            if self.pending:
                data, self.pending = self.pending, b""
                return data
            return sock.recv(size)

    return _read_answer(_Prefixed(), pause)  # type: ignore[arg-type]


def test_a_reader_that_takes_nothing_is_dropped_and_stalls_nobody(spawn_sidecar, heavy_repository):
    proc = spawn_sidecar(heavy_repository, "--workers", "1", "--write-timeout", "1")
    before = proc.metric("weir_client_disconnects_total")
    with socket.socket() as stalled:
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", proc.port))
        stalled.sendall(_wide_request(proc.port, 64))  # 16 MiB out
        stalled.settimeout(60)
        first = stalled.recv(64)
        assert first.startswith(b"HTTP/1.1 200"), first
        light = requests.post(f"{proc.url}/v2/models/digits/infer", json=DIGITS, timeout=30)
        assert light.status_code == 200, light.text
        _wait_for(
            lambda: proc.metric("weir_client_disconnects_total") > before, "the reader dropped"
        )
        _, length, body = _read_answer_after(stalled, first, pause=0.0)
    # Closed before its declared length: the client knows its answer is not whole.
    assert len(body) < length, (len(body), length)
    assert "took nothing of its answer" in proc.log_text()
    assert proc.metric("weir_client_disconnects_total") == before + 1  # counted once
    assert requests.post(f"{proc.url}/v2/models/digits/infer", json=DIGITS, timeout=30).ok


@pytest.mark.parametrize(
    "path",
    ["/v2/models/digits/infer/", "//v2/models/digits/infer", "/v2/models/digits/versions/1/infer/"],
)
def test_infer_paths_the_router_normalises_are_served_as_infer(sidecar, path):
    answer = requests.post(f"{sidecar.url}{path}", json=DIGITS, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"][0]["shape"] == [1, 10]


def test_a_request_slower_than_the_read_timeout_is_answered_408_and_closed(
    spawn_sidecar, repository
):
    proc = spawn_sidecar(repository, "--workers", "1", "--read-timeout", "1")
    with socket.create_connection(("127.0.0.1", proc.port), timeout=30) as silent:
        with socket.create_connection(("127.0.0.1", proc.port), timeout=30) as trickling:
            trickling.sendall(b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\n")
            head, _, body = _drain(trickling).partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 408 "), head
            assert json.loads(body)["error"]
        assert _drain(silent).startswith(b"HTTP/1.1 408 ")
    assert requests.post(f"{proc.url}/v2/models/digits/infer", json=DIGITS, timeout=30).ok
    # The deadline runs from the opening: a first byte sent late does not restart it.
    with socket.create_connection(("127.0.0.1", proc.port), timeout=30) as late:
        opened = time.monotonic()
        time.sleep(0.7)
        late.sendall(b"P")
        head = _drain(late)
        waited = time.monotonic() - opened
    assert head.startswith(b"HTTP/1.1 408 "), head
    assert waited < 1.6, f"408 after {waited:.2f}s: the first byte restarted the 1 s deadline"


def _drain(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_a_refusal_pipelined_behind_an_answer_is_not_spliced_into_it(sidecar):
    good = json.dumps(DIGITS).encode()
    answer = _exchange(
        sidecar.port,
        b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
        % len(good)
        + good
        + b"GARBAGE\x01 / HTTP/1.1\r\n\r\n",
    )
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head
    length = _header_int(head, b"content-length")
    assert len(body) == length and json.loads(body)["outputs"][0]["shape"] == [1, 10]


def test_pipelined_infer_answers_come_whole_and_in_order_and_close_is_honoured(sidecar):
    def request(rows: int, last: bool = False) -> bytes:
        body = json.dumps(
            {
                "id": str(rows),
                "inputs": [
                    {**DIGITS["inputs"][0], "shape": [rows, 64], "data": [0.5] * (64 * rows)}
                ],
            }
        ).encode()
        close = b"Connection: close\r\n" if last else b""
        return (
            b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d\r\n\r\n"
            % (close, len(body))
            + body
        )

    answer = _exchange(sidecar.port, request(1) + request(2) + request(3, last=True))
    ids = []
    while answer:
        head, _, rest = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 "), head
        length = _header_int(head, b"content-length")
        ids.append(json.loads(rest[:length])["id"])
        answer = rest[length:]
    assert ids == ["1", "2", "3"]  # and the server closed the connection after the third
