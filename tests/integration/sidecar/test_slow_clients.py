"""A client that stops reading its responses for a while costs the worker nothing but memory."""

from __future__ import annotations

import json
import socket

import numpy as np
import requests

ROW = 1 << 18  # FP32 values per row: 1 MiB
ROWS = 12  # 12 MiB in, 12 MiB out (binary): more than the kernel's socket buffers hold


def _binary_request(port: int) -> bytes:
    x = np.ones((ROWS, ROW), dtype=np.float32)
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [ROWS, ROW],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": x.nbytes},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    body = head + x.tobytes()
    return (
        f"POST /v2/models/echo/infer HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Inference-Header-Content-Length: {len(head)}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def _read_responses(sock: socket.socket, count: int, buf: bytes = b"") -> list[int]:
    """Read `count` HTTP responses; their body lengths (fewer if the connection ends)."""
    sock.settimeout(60)
    lengths = []
    while len(lengths) < count:
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(1 << 16)
            if not chunk:
                return lengths
            buf += chunk
        head, buf = buf.split(b"\r\n\r\n", 1)
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(buf) < length:
            chunk = sock.recv(1 << 20)
            if not chunk:
                return lengths
            buf += chunk
        lengths.append(length)
        buf = buf[length:]
    return lengths


def test_a_client_that_stops_reading_neither_stalls_the_worker_nor_loses_responses(
    spawn_sidecar, identity_repository
):
    proc = spawn_sidecar(identity_repository, "--workers", "1", "--max-batch-size", "1")
    request = _binary_request(proc.port)
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", proc.port))
    stalled.sendall(request)
    stalled.settimeout(60)
    first = stalled.recv(16)  # its response has begun: the worker is now writing to it
    assert first.startswith(b"HTTP/1.1 200"), first
    try:
        # Another client, on the same (only) worker, while the first one reads nothing.
        body = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}
        other = requests.post(f"{proc.url}/v2/models/echo/infer", json=body, timeout=60)
        assert other.status_code == 200
        assert other.json()["outputs"][0]["data"] == [1.0, 2.0]
        # The first client reads at last: every response is there, none was dropped.
        lengths = _read_responses(stalled, 1, first)
        assert len(lengths) == 1, proc.log_text()
        assert lengths[0] > ROWS * ROW * 4
    finally:
        stalled.close()
