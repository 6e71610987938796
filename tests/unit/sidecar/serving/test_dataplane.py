"""The data plane answers every V2 operation without any HTTP framework."""

from __future__ import annotations

import asyncio
import io
import json
import threading
from pathlib import Path

import numpy as np
import pytest

from sidecar.errors import NotFound, PayloadTooLarge, QueueFull
from sidecar.serving import dataplane
from sidecar.serving.batching import BatchPolicy, threaded_driver
from sidecar.serving.dataplane import DataPlane, drain_ceiling
from sidecar.serving.readiness import Readiness
from sidecar.serving.repository import Repository


@pytest.fixture(scope="module")
def plane(repository: Path) -> DataPlane:
    load = Repository.loader(BatchPolicy(4, 0.001, 8), "cpu", 1, threaded_driver)
    readiness = Readiness()
    readiness.mark_ready()
    return DataPlane(Repository.load(repository, load), readiness, 4096)


def test_server_metadata_names_weir_and_the_binary_extension(plane):
    assert plane.server_metadata() == {
        "name": "weir",
        "version": "0.1.0",
        "extensions": ["binary_tensor_data"],
    }


def test_model_metadata_lists_versions_only_when_none_was_asked_for(plane):
    doc, answered = plane.model_metadata("digits", None)
    assert (doc["versions"], answered) == (["1", "2"], "2")
    doc, answered = plane.model_metadata("digits", "1")
    assert (doc["versions"], answered) == (["1"], "1")
    assert doc["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}]
    with pytest.raises(NotFound, match="has no version '7'"):
        plane.model_metadata("digits", "7")


def _body(rows: int) -> bytes:
    x = np.zeros((rows, 64), dtype=np.float32)
    doc = {"id": "a", "inputs": [{"name": "input", "shape": [rows, 64], "datatype": "FP32"}]}
    doc["inputs"][0]["data"] = x.ravel().tolist()
    return json.dumps(doc).encode()


def test_infer_returns_the_encoded_answer_and_the_version_header(plane):
    body = _body(2)
    result = plane.infer("digits", "1", io.BytesIO(body).read, len(body), None)
    doc = json.loads(result.body)
    assert (doc["model_name"], doc["model_version"], doc["id"]) == ("digits", "1", "a")
    assert doc["outputs"][0]["shape"] == [2, 10]
    assert result.headers == [
        ("Content-Type", "application/json"),
        ("X-Weir-Model-Version", "1"),
    ]


def test_infer_reads_a_body_over_the_limit_to_its_end_then_refuses_it(plane):
    """Read and discarded: a peer refused before its body is read sees a reset, not a 413."""
    stream = io.BytesIO(b"x" * 5000 + b"next")
    with pytest.raises(PayloadTooLarge, match="over 4096 bytes"):
        plane.infer("digits", None, stream.read, 5000, None)
    assert stream.read() == b"next"  # exactly the declared body was consumed


def test_infer_refuses_a_body_beyond_the_drain_ceiling_without_reading_it(plane):
    length = drain_ceiling(4096) + 1
    stream = io.BytesIO(b"x" * 10)
    with pytest.raises(PayloadTooLarge, match="over 4096 bytes"):
        plane.infer("digits", None, stream.read, length, None)
    assert stream.read(1) == b"x"  # nothing was consumed


def _in_flight(model: str, version: str) -> float:
    from prometheus_client import REGISTRY

    value = REGISTRY.get_sample_value(
        "weir_requests_in_flight", {"model": model, "version": version}
    )
    return value or 0.0


def test_requests_in_flight_rise_during_a_slow_batch_and_return_to_zero(plane, monkeypatch):
    import threading

    found = plane.repository.get("digits", "1")
    gate = threading.Event()
    entered = threading.Semaphore(0)
    real = found.driver

    class Slow:
        def infer(self, item):
            entered.release()
            gate.wait(10)  # a batch that takes its time
            real.infer(item)

    monkeypatch.setattr(found, "driver", Slow())
    body = _body(1)
    results = []

    def call():
        results.append(plane.infer("digits", "1", io.BytesIO(body).read, len(body), None))

    assert _in_flight("digits", "1") == 0
    threads = [threading.Thread(target=call) for _ in range(3)]
    for t in threads:
        t.start()
    for _ in threads:
        assert entered.acquire(timeout=10)
    assert _in_flight("digits", "1") == 3
    gate.set()
    for t in threads:
        t.join(10)
    assert len(results) == 3
    assert _in_flight("digits", "1") == 0
    # A refused request leaves nothing behind either.
    with pytest.raises(PayloadTooLarge):
        plane.infer("digits", "1", io.BytesIO(b"x" * 5000).read, 5000, None)
    assert _in_flight("digits", "1") == 0


def test_under_an_event_loop_requests_are_admitted_up_to_a_byte_budget(repository):
    """Queued requests hold their tensors: past the worker's budget of request bytes a new
    one is refused at once (503 queue_full), while one alone is always admitted."""
    import asyncio

    from sidecar.errors import QueueFull
    from sidecar.serving.asyncio_driver import asyncio_driver

    async def main() -> tuple[int, list[object]]:
        loop = asyncio.get_running_loop()
        load = Repository.loader(BatchPolicy(4, 0.0, 64), "cpu", 1, asyncio_driver(loop))
        readiness = Readiness()
        readiness.mark_ready()
        plane = DataPlane(Repository.load(repository, load), readiness, 1 << 20)
        body = json.dumps(
            {
                "inputs": [
                    {"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0.5] * 64}
                ]
            }
        ).encode()
        plane.in_flight_limit = 3 * len(body)  # as if three bodies filled the worker's budget
        calls = [plane.infer_async("digits", "1", body, None) for _ in range(5)]
        results = await asyncio.gather(*calls, return_exceptions=True)
        alone = await plane.infer_async("digits", "1", body + b" " * (4 * len(body)), None)
        return plane.in_flight_bytes, [*results, alone]

    left, results = asyncio.run(main())
    refused = [r for r in results if isinstance(r, QueueFull)]
    assert len(refused) == 2 and "MiB of requests" in refused[0].message
    assert all(not isinstance(r, Exception) for r in results if r not in refused)
    assert left == 0  # every admitted byte is given back


def test_requests_wait_for_a_pre_processing_thread_up_to_a_bound_then_get_503(plane, monkeypatch):
    monkeypatch.setattr(dataplane, "PREPROCESS_THREADS", 1)
    monkeypatch.setattr(dataplane, "PREPROCESS_QUEUE", 1)
    gate = threading.Event()

    async def main() -> list[object]:
        busy = asyncio.ensure_future(plane._on_pool(gate.wait, 30))
        waiting = asyncio.ensure_future(plane._on_pool(lambda: "second"))
        await asyncio.sleep(0.05)
        with pytest.raises(QueueFull, match="1 requests waiting for pre-processing"):
            await plane._on_pool(lambda: "third")
        gate.set()
        return [await busy, await waiting]

    assert asyncio.run(main()) == [True, "second"]
    assert plane._pool_waiting == 0
