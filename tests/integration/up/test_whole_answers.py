"""Whole answers through the whole stack: a 50 MB answer from a sidecar reaches the client
complete through the edge, at the client's pace, and a client that stops reading stalls
nobody (the edge takes the answer from the sidecar and holds it for the slow reader)."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from tests.heavy_models import WIDE_COLUMNS, build_heavy_models
from tests.processes import descendants
from tests.weir_up import READY_BANNER, ROOT, WeirUp, free_port

ROWS = 200  # 52 MB of FP32 out
DIGITS = {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0.5] * 64}]}


class Stack(WeirUp):
    """`weir up` on digits and `wide`, on its own ports and runtime directory."""

    def __init__(self, tmp: Path) -> None:
        self.port, self.admin_port = free_port(), free_port()
        self.runtime = tmp / "runtime"
        self.models = tmp / "models"
        (self.models / "digits").mkdir(parents=True)
        (self.models / "digits" / "1").symlink_to(ROOT / "models" / "digits" / "1")
        build_heavy_models(self.models, ("wide",))
        release = tmp / "release.yaml"
        release.write_text(
            "revision: 1\n"
            f"edge: {{listen: '127.0.0.1:{self.port}', admin_listen: '127.0.0.1:"
            f"{self.admin_port}', admin_auth: open}}\n"
            "sidecars: {devices: cpu}\n"
            "models:\n"
            '  digits: {versions: {"1": {}}, timeout: 10s}\n'
            '  wide: {versions: {"1": {}}, timeout: 60s}\n'
        )
        self.launch(str(release))

    def command(self, *release: str) -> list[str]:
        return super().command(
            *release, "--runtime-dir", str(self.runtime), "--models", str(self.models)
        )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    stack = Stack(tmp_path_factory.mktemp("whole"))
    try:
        stack.wait_for_log(READY_BANNER)
        yield stack
    finally:
        if stack.process.poll() is None:
            stack.process.send_signal(signal.SIGINT)
            try:
                stack.process.wait(60)
            except Exception:
                for pid in descendants(stack.process.pid):
                    os.kill(pid, signal.SIGKILL)
                stack.process.kill()
                stack.process.wait()


def _wide_request(port: int) -> bytes:
    body = json.dumps(
        {
            "inputs": [
                {"name": "x", "shape": [ROWS, 64], "datatype": "FP32", "data": [0.25] * ROWS * 64}
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    return (
        f"POST /v2/models/wide/infer HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body


def _head(sock: socket.socket) -> tuple[dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 200"), lines[0]
    headers = {k.strip().lower(): v.strip() for k, v in (x.split(":", 1) for x in lines[1:])}
    return headers, rest


def test_a_50_mb_answer_arrives_whole_through_the_edge_at_the_readers_pace(stack):
    with socket.create_connection(("127.0.0.1", stack.port), timeout=120) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(_wide_request(stack.port))
        headers, body = _head(sock)
        length = int(headers["content-length"])
        parts, got = [body], len(body)
        while got < length:
            chunk = sock.recv(1 << 20)
            assert chunk, f"closed after {got} of {length} bytes"
            parts.append(chunk)
            got += len(chunk)
            time.sleep(0.005)  # a reader slower than the sidecar writes
    data = b"".join(parts)
    assert len(data) == length > 50_000_000
    json_length = int(headers["inference-header-content-length"])
    assert json.loads(data[:json_length])["outputs"][0]["shape"] == [ROWS, WIDE_COLUMNS]
    tensor = np.frombuffer(data[json_length:], dtype=np.float32)
    assert tensor.size == ROWS * WIDE_COLUMNS and np.all(tensor == np.float32(0.25))


def test_clients_that_stop_reading_stall_nobody(stack):
    url = f"http://127.0.0.1:{stack.port}"
    stalled = []
    try:
        for _ in range(3):  # more answers in flight than the sidecar has workers
            sock = socket.create_connection(("127.0.0.1", stack.port), timeout=60)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(_wide_request(stack.port))
            stalled.append(sock)
        for sock in stalled:
            assert sock.recv(12).startswith(b"HTTP/1.1 200")
        # Three 52 MB answers wait on readers that take nothing; everyone else is served.
        for _ in range(20):
            answer = requests.post(f"{url}/v2/models/digits/infer", json=DIGITS, timeout=10)
            assert answer.status_code == 200, answer.text
            assert "X-Weir-Fallback" not in answer.headers
        with socket.create_connection(("127.0.0.1", stack.port), timeout=120) as sock:
            sock.sendall(_wide_request(stack.port))
            headers, body = _head(sock)
            got = len(body)
            while chunk := sock.recv(1 << 20):
                got += len(chunk)
        assert got == int(headers["content-length"])
    finally:
        for sock in stalled:
            sock.close()
