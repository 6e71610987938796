"""Drain on SIGTERM under every worker class, unix sockets, and the gthread worker class."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import threading
import time

import pytest
import requests

DIGITS = {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [2.0] * 64}]}


@pytest.mark.parametrize("worker_class", ["uvicorn", "meinheld", "gthread"])
def test_sigterm_drains_in_flight_requests_then_exits(
    spawn_sidecar, repository, cnn_request, worker_class
):
    proc = spawn_sidecar(
        repository, "--workers", "1", "--drain-seconds", "1.5", "--worker-class", worker_class
    )
    body, headers = cnn_request(300)  # a few hundred ms of CPU
    slow: dict[str, int] = {}

    def in_flight() -> None:
        r = requests.post(
            f"{proc.url}/v2/models/cnn/infer",
            data=body,
            headers=headers,
            timeout=60,
        )
        slow["status"] = r.status_code

    thread = threading.Thread(target=in_flight)
    thread.start()
    time.sleep(0.3)
    proc.proc.send_signal(signal.SIGTERM)
    readiness = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            readiness.append(requests.get(f"{proc.url}/v2/health/ready", timeout=15).status_code)
        except requests.ConnectionError:
            break
        if readiness[-1] == 503:
            break
        time.sleep(0.05)
    thread.join(60)
    assert readiness and readiness[-1] == 503
    assert slow == {"status": 200}
    assert proc.proc.wait(30) == 0


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost")
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def _unix_ready(path: str) -> int | None:
    try:
        conn = UnixHTTPConnection(path)
        conn.request("GET", "/v2/health/ready")
        return conn.getresponse().status
    except (FileNotFoundError, ConnectionRefusedError):
        return None


def test_unix_socket_serves_the_same_protocol_and_drains(spawn_sidecar, repository, tmp_path):
    path = str(tmp_path / "sidecar.sock")
    proc = spawn_sidecar(repository, "--socket", path, "--drain-seconds", "2", wait=False)
    deadline = time.monotonic() + 60
    while _unix_ready(path) != 200:
        assert proc.proc.poll() is None and time.monotonic() < deadline, proc.log_text()
        time.sleep(0.1)
    conn = UnixHTTPConnection(path)
    conn.request(
        "POST",
        "/v2/models/digits/infer",
        body=json.dumps(DIGITS),
        headers={"Content-Type": "application/json"},
    )
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.getheader("X-Weir-Model-Version") == "2"
    assert json.loads(resp.read())["outputs"][0]["shape"] == [1, 10]
    # The socket stays reachable through the drain, so readiness can say 503 there.
    proc.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 5
    while _unix_ready(path) != 503:
        assert time.monotonic() < deadline, "readiness over the socket never turned 503"
        time.sleep(0.05)
    assert proc.proc.wait(20) == 0
    assert not os.path.exists(path)  # removed once the workers are gone


def test_gthread_workers_batch_too(spawn_sidecar, repository):
    proc = spawn_sidecar(
        repository, "--worker-class", "gthread", "--threads", "16", "--max-queue-delay-ms", "5"
    )
    statuses: list[int] = []

    def client() -> None:
        with requests.Session() as s:
            for _ in range(10):
                statuses.append(
                    s.post(
                        f"{proc.url}/v2/models/digits/infer", json=DIGITS, timeout=10
                    ).status_code
                )

    threads = [threading.Thread(target=client) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert statuses == [200] * 120
    assert proc.metric("weir_batch_size_sum", model="digits", version="2") == 120
    assert proc.metric("weir_batch_size_count", model="digits", version="2") < 120


def test_a_busy_keep_alive_client_does_not_hold_a_draining_sidecar(spawn_sidecar, repository):
    proc = spawn_sidecar(
        repository, "--workers", "1", "--drain-seconds", "0.5", "--graceful-timeout", "60"
    )
    stop = threading.Event()
    answered: list[int] = []

    def busy_client() -> None:  # like an edge's upstream keep-alive pool
        with requests.Session() as s:
            while not stop.is_set():
                try:
                    answered.append(
                        s.post(
                            f"{proc.url}/v2/models/digits/infer", json=DIGITS, timeout=5
                        ).status_code
                    )
                except requests.RequestException:
                    time.sleep(0.05)

    thread = threading.Thread(target=busy_client)
    thread.start()
    try:
        time.sleep(0.5)
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(15) == 0  # well before the 60 s graceful timeout
    finally:
        stop.set()
        thread.join(10)
    assert answered and set(answered) == {200}
