"""Batch assembly, the queue bound, failure fan-out, and the threaded driver under load."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from sidecar.errors import InferenceFailed, QueueFull, Unavailable
from sidecar.serving.batching import Batcher, BatchPolicy, Pending, ThreadedDriver


def _item(rows: int, width: int = 4) -> Pending:
    return Pending({"x": np.full((rows, width), rows, dtype=np.float32)}, rows)


def _double(feeds):
    return [feeds["x"] * 2]


def test_take_fills_up_to_max_batch_size_rows_in_order():
    b = Batcher("m", BatchPolicy(4, 0.0, 10), _double)
    items = [_item(1), _item(2), _item(2), _item(1)]
    for it in items:
        b.enqueue(it)
    assert b.take() == items[:2]  # 1 + 2 rows; the next 2-row request would overflow 4
    assert b.take() == items[2:]
    assert b.queued_rows == 0


def test_take_skips_requests_whose_other_dimensions_differ():
    b = Batcher("m", BatchPolicy(8, 0.0, 10), _double)
    a, other, c = _item(1), _item(1, width=5), _item(1)
    for it in (a, other, c):
        b.enqueue(it)
    assert b.take() == [a, c]
    assert list(b.queue) == [other]


def test_no_batching_runs_each_request_alone():
    b = Batcher("m", BatchPolicy(0, 0.0, 10), _double)
    b.enqueue(_item(1))
    b.enqueue(_item(1))
    assert len(b.take()) == 1


def test_full_queue_refuses_at_once_with_retry_after():
    b = Batcher("m", BatchPolicy(4, 0.0, 2), _double)
    b.enqueue(_item(1))
    b.enqueue(_item(1))
    with pytest.raises(QueueFull) as err:
        b.enqueue(_item(1))
    assert err.value.status == 503
    assert err.value.headers() == {"Retry-After": "1"}


def test_execute_splits_outputs_back_to_each_request():
    b = Batcher("m", BatchPolicy(8, 0.0, 10), _double)
    one, two = _item(1), _item(2)
    b.execute([one, two])
    assert one.done and two.done
    assert one.outputs[0].tolist() == [[2.0] * 4]
    assert two.outputs[0].tolist() == [[4.0] * 4] * 2


def test_failed_batch_fails_each_of_its_requests_and_only_those():
    calls = []

    def flaky(feeds):
        calls.append(len(feeds["x"]))
        if len(calls) == 1:
            raise RuntimeError("device lost: internal detail")
        return _double(feeds)

    b = Batcher("model 'm' version 1", BatchPolicy(8, 0.0, 10), flaky)
    failed = [_item(1), _item(1)]
    b.execute(failed)
    for it in failed:
        assert it.done and it.outputs is None
        assert isinstance(it.error, InferenceFailed)
        assert "internal detail" not in it.error.message
        assert "model 'm' version 1" in it.error.message
    later = _item(1)
    b.execute([later])
    assert later.error is None and later.outputs is not None


def test_threaded_driver_batches_concurrent_requests():
    sizes: list[int] = []

    def record(feeds):
        sizes.append(len(feeds["x"]))
        return _double(feeds)

    driver = ThreadedDriver(Batcher("m", BatchPolicy(64, 0.05, 100), record))
    items = [_item(1) for _ in range(24)]
    threads = [threading.Thread(target=driver.infer, args=(it,)) for it in items]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    driver.stop()
    assert all(it.done and it.error is None for it in items)
    assert sum(sizes) == 24
    assert len(sizes) < 24  # requests really shared runs


def test_stopping_the_driver_completes_queued_requests():
    gate = threading.Event()

    def slow(feeds):
        gate.wait(5)
        return _double(feeds)

    driver = ThreadedDriver(Batcher("m", BatchPolicy(1, 0.0, 100), slow), wait_timeout=5)
    items = [_item(1) for _ in range(3)]
    threads = [threading.Thread(target=driver.infer, args=(it,)) for it in items]
    for t in threads:
        t.start()
    while len(driver.batcher.queue) < 2:
        threading.Event().wait(0.01)
    driver.stop()
    gate.set()
    for t in threads:
        t.join(10)
    assert all(it.done and it.error is None and it.outputs is not None for it in items)
    late = _item(1)
    with pytest.raises(Unavailable, match="shutting down"):
        driver.infer(late)


def test_stacking_buffers_are_reused_and_never_leak_between_batches():
    seen = []

    def keep(feeds):
        seen.append(feeds["x"])
        return [feeds["x"].sum(axis=1, keepdims=True)]

    b = Batcher("m", BatchPolicy(8, 0.0, 10), keep)
    first = [_item(1), _item(2)]
    b.execute(first)
    second = [_item(3), _item(1)]
    b.execute(second)
    assert np.shares_memory(seen[0], seen[1])  # one buffer for both runs
    assert [it.outputs[0].ravel().tolist() for it in first] == [[4.0], [8.0, 8.0]]
    assert second[0].outputs[0].ravel().tolist() == [12.0] * 3
    oversized = [_item(5), _item(5)]  # more rows than max_batch_size: plain concatenation
    b.execute(oversized)
    assert all(it.error is None for it in oversized)
    assert not np.shares_memory(seen[2], seen[0])


def test_outputs_that_do_not_keep_the_batch_dimension_fail_the_batch():
    def pooled(feeds):
        return [feeds["x"].sum(axis=0, keepdims=True)]  # one row, whatever the batch

    b = Batcher("m", BatchPolicy(8, 0.0, 10), pooled)
    pair = [_item(1), _item(1)]
    b.execute(pair)
    assert all(isinstance(it.error, InferenceFailed) for it in pair)
    alone = _item(2)
    b.execute([alone])  # a request alone gets the model's outputs as they are
    assert alone.error is None and alone.outputs[0].shape == (1, 4)
