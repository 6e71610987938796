"""Poison requests through a real sidecar: one bad request no longer fails its whole batch."""

from __future__ import annotations

import json
import socket
import threading

import pytest
import requests

from sidecar.errors import FAILURE_HEADER

WORKERS = ["uvicorn", "meinheld", "gthread"]
SERVER_REASONS = ("internal", "inference_error", "unavailable", "queue_full")
POISONED = (4, 11)  # never first or last of the burst: a meinheld loop turn keeps company


def _poison_body(row: int, index: int) -> bytes:
    x = [float(row * 4 + c) for c in range(4)]
    return json.dumps(
        {
            "id": str(row),
            "inputs": [
                {"name": "x", "shape": [1, 4], "datatype": "FP32", "data": x},
                {"name": "i", "shape": [1, 1], "datatype": "INT64", "data": [index]},
            ],
        }
    ).encode()


def _burst(port: int, path: str, bodies: list[bytes]) -> list[tuple[int, dict[str, str], bytes]]:
    """Every body on its own connection, all sent at once once every connection is open, so
    that they arrive together (one batch); answers in the order of `bodies`.

    Each answer is read, and its socket closed, on its own thread: gunicorn's gthread closes
    a `Connection: close` socket on its main thread, lingering until the client closes too,
    so a client reading its answers one after the other would stall the worker's loop.
    """
    socks = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in bodies]
    answers: list[tuple[int, dict[str, str], bytes] | None] = [None] * len(bodies)

    def read(k: int) -> None:
        with socks[k]:
            answers[k] = _read_response(socks[k])

    readers = [threading.Thread(target=read, args=(k,)) for k in range(len(bodies))]
    for sock, body in zip(socks, bodies, strict=True):
        sock.sendall(
            (
                f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            ).encode()
            + body
        )
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(60)
    assert all(answer is not None for answer in answers), answers
    return answers  # type: ignore[return-value]


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def _server_failures(proc, model: str) -> float:
    return sum(
        proc.metric("weir_inference_request_failure_total", model=model, reason=reason)
        for reason in SERVER_REASONS
    )


@pytest.mark.parametrize("worker_class", WORKERS)
def test_two_poison_requests_fail_alone_and_fourteen_succeed(
    spawn_sidecar, poison_repository, worker_class
):
    proc = spawn_sidecar(poison_repository, "--workers", "1", "--worker-class", worker_class)
    bodies = [_poison_body(row, 99 if row in POISONED else row % 4) for row in range(16)]
    answers = _burst(proc.port, "/v2/models/poison/infer", bodies)

    statuses = [status for status, _, _ in answers]
    assert statuses == [422 if row in POISONED else 200 for row in range(16)], statuses
    for row, (status, headers, body) in enumerate(answers):
        assert FAILURE_HEADER.lower() not in headers
        doc = json.loads(body)
        if status == 200:
            assert doc["id"] == str(row)
            assert doc["outputs"][0]["data"] == [float(row * 4 + row % 4)]
        else:
            assert "could not compute this input" in doc["error"]
            assert "check them against what the model accepts" in doc["error"]
            assert "GatherElements" not in doc["error"]  # no runtime internals
    # The 16 shared a batch: it failed, was bisected, and the good rows were computed in
    # smaller runs; nothing counts as the server's failure.
    assert proc.metric("weir_batch_splits_total", model="poison") >= 1
    assert proc.metric("weir_inference_request_success_total", model="poison") == 14
    assert proc.metric("weir_inference_count_total", model="poison") == 14
    assert proc.metric("weir_inference_request_failure_total", reason="unprocessable") == 2
    assert _server_failures(proc, "poison") == 0
    assert proc.metric("weir_requests_in_flight", model="poison") == 0
    assert requests.get(f"{proc.url}/v2/health/ready", timeout=5).status_code == 200


@pytest.mark.parametrize("worker_class", WORKERS)
def test_a_model_broken_for_every_input_answers_marked_500s(
    spawn_sidecar, poison_repository, worker_class
):
    proc = spawn_sidecar(poison_repository, "--workers", "1", "--worker-class", worker_class)
    bodies = [
        json.dumps(
            {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1.0] * 4}]}
        ).encode()
        for _ in range(16)
    ]
    answers = _burst(proc.port, "/v2/models/broken/infer", bodies)
    assert [status for status, _, _ in answers] == [500] * 16
    for _, headers, body in answers:
        assert headers[FAILURE_HEADER.lower()] == "server"
        message = json.loads(body)["error"]
        assert "model 'broken' version 1 failed" in message and "GatherElements" not in message
    assert proc.metric("weir_inference_request_failure_total", reason="inference_error") == 16
    assert proc.metric("weir_inference_request_failure_total", reason="unprocessable") == 0
    # Alone, with no company to compare with, the same failure is the server's too.
    alone = requests.post(f"{proc.url}/v2/models/broken/infer", data=bodies[0], timeout=10)
    assert alone.status_code == 500 and alone.headers[FAILURE_HEADER] == "server"
    assert requests.get(f"{proc.url}/v2/health/ready", timeout=5).status_code == 200
