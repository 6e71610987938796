"""Poison requests: a failed batch is bisected so that only what the model cannot compute fails.

The runner is a fake that fails a whole run when any row is poison, like ONNX Runtime does;
its exceptions carry ONNX Runtime's class names, which is all the core looks at.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.errors import InferenceFailed, Unavailable, Unprocessable
from sidecar.serving.batching import Batcher, BatchPolicy, Pending, ThreadedDriver

POISON = -1.0
POLICY = BatchPolicy(64, 0.0, 100)


class Fail(Exception):  # ORT's FAIL: a kernel's failed check, or a CUDA failure
    pass


class InvalidArgument(Exception):  # ORT's INVALID_ARGUMENT: an input value refused
    pass


class EPFail(Exception):  # ORT's EP_FAIL: the execution provider itself
    pass


def _item(value: float, rows: int = 1) -> Pending:
    return Pending({"x": np.full((rows, 4), value, dtype=np.float32)}, rows)


class Runner:
    """Doubles `x`; raises `error` for a whole run holding a poison row."""

    def __init__(self, error: type[Exception] = Fail, broken: bool = False) -> None:
        self.error = error
        self.broken = broken
        self.runs: list[int] = []

    def __call__(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        x = feeds["x"]
        self.runs.append(len(x))
        if self.broken or (x == POISON).any():
            raise self.error("Non-zero status code returned while running Gather node")
        return [x * 2]


def _batcher(run, observed=None, splits=None, policy=POLICY) -> Batcher:
    def observe(part, outputs, started, finished):
        if observed is not None:
            observed.append(sum(item.rows for item in part))

    on_split = None if splits is None else (lambda: splits.append(1))
    return Batcher("model 'm' version 1", policy, run, observe, None, on_split)


def _assert_computed(item: Pending) -> None:
    assert item.done and item.error is None
    assert item.outputs is not None
    assert item.outputs[0].tolist() == (item.feeds["x"] * 2).tolist()


def test_two_poison_requests_of_sixteen_fail_alone_as_the_clients_and_the_rest_succeed():
    run, observed, splits = Runner(), [], []
    batcher = _batcher(run, observed, splits)
    items = [_item(POISON if i in (3, 12) else float(i)) for i in range(16)]
    batcher.execute(items)
    good = [it for i, it in enumerate(items) if i not in (3, 12)]
    for item in good:
        _assert_computed(item)
    for item in (items[3], items[12]):
        assert item.done and item.outputs is None
        assert isinstance(item.error, Unprocessable)
        assert item.error.status == 422
        assert item.error.failure_headers() == []  # never marked as the server's
        assert "could not compute this input" in item.error.message
        assert "14 other request(s)" in item.error.message
    assert len(run.runs) <= 2 * 16 - 1
    assert sum(observed) == 14  # only computed rows reach the metrics
    assert splits == [1]


def test_a_batch_where_every_request_fails_alone_is_the_servers():
    run = Runner()
    items = [_item(POISON) for _ in range(4)]
    _batcher(run).execute(items)
    assert len(run.runs) == 2 * 4 - 1  # the whole tree, and no more
    for item in items:
        assert isinstance(item.error, InferenceFailed)
        assert item.error.status == 500
        assert ("X-Weir-Failure", "server") in item.error.failure_headers()
        assert "model 'm' version 1 failed" in item.error.message
        assert "Gather" not in item.error.message  # the runtime's text is never leaked


def test_a_session_broken_for_all_inputs_fails_every_request_as_the_servers():
    run = Runner(broken=True)
    items = [_item(float(i)) for i in range(8)]
    _batcher(run).execute(items)
    assert all(isinstance(it.error, InferenceFailed) for it in items)
    assert len(run.runs) == 15


def test_no_retry_for_a_batch_of_one():
    run = Runner()
    alone = _item(POISON)
    _batcher(run).execute([alone])
    assert run.runs == [1]
    # Alone with FAIL, nothing to compare with: presumed the server's (a broken session must
    # open the edge's breaker even at one request at a time).
    assert isinstance(alone.error, InferenceFailed)


def test_invalid_argument_is_the_clients_even_alone():
    run = Runner(InvalidArgument)
    alone = _item(POISON)
    _batcher(run).execute([alone])
    assert run.runs == [1]
    assert isinstance(alone.error, Unprocessable)
    both = [_item(POISON), _item(POISON)]
    _batcher(run).execute(both)
    assert all(isinstance(it.error, Unprocessable) for it in both)


def test_a_device_failure_is_not_bisected():
    run = Runner(EPFail, broken=True)
    items = [_item(1.0) for _ in range(8)]
    splits: list[int] = []
    _batcher(run, splits=splits).execute(items)
    assert run.runs == [8]
    assert splits == []
    assert all(isinstance(it.error, InferenceFailed) for it in items)


def test_a_cuda_failure_met_while_bisecting_stops_the_bisect():
    calls: list[int] = []

    def run(feeds):
        calls.append(len(feeds["x"]))
        if len(calls) == 1:
            raise Fail("Non-zero status code returned while running Reshape node")
        raise Fail("CUDA failure 700: an illegal memory access was encountered")

    items = [_item(1.0) for _ in range(16)]
    _batcher(run).execute(items)
    assert calls == [16, 8]
    assert all(isinstance(it.error, InferenceFailed) for it in items)


def test_a_batch_too_large_for_memory_is_rescued_by_its_halves():
    def run(feeds):
        if len(feeds["x"]) > 2:
            raise MemoryError("bad allocation")
        return [feeds["x"] * 2]

    items = [_item(float(i)) for i in range(8)]
    _batcher(run).execute(items)
    for item in items:
        _assert_computed(item)


def test_a_request_that_runs_out_of_memory_alone_is_the_servers():
    def run(feeds):
        if feeds["x"].shape[0] >= 100:
            raise Fail("Failed to allocate memory for requested buffer of size 123456789")
        return [feeds["x"] * 2]

    small, huge = _item(1.0), _item(1.0, rows=100)
    _batcher(run).execute([small, huge])
    _assert_computed(small)
    assert isinstance(huge.error, InferenceFailed)


def test_outputs_that_do_not_split_by_rows_fail_the_batch_without_bisecting():
    calls: list[int] = []

    def run(feeds):
        calls.append(len(feeds["x"]))
        return [np.zeros((1, 4), np.float32)]  # one row whatever the batch

    items = [_item(1.0) for _ in range(4)]
    _batcher(run).execute(items)
    assert calls == [4]
    assert all(isinstance(it.error, InferenceFailed) for it in items)


def test_requests_whose_caller_gave_up_are_not_run_again():
    run = Runner()
    batcher = _batcher(run)
    batcher.patience = 30.0
    items = [_item(POISON), _item(1.0), _item(2.0), _item(3.0)]
    for item in items:
        batcher.enqueue(item)
    items[2].enqueued -= 60  # its driver stopped waiting long ago
    batcher.execute(batcher.take())
    assert isinstance(items[2].error, Unavailable)
    assert isinstance(items[0].error, Unprocessable)
    _assert_computed(items[1])
    _assert_computed(items[3])
    # The whole batch, the oldest half then each of its two alone, then the newer half
    # without the late request: one row, not two.
    assert run.runs == [4, 2, 1, 1, 1]


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 40).flatmap(lambda n: st.tuples(st.just(n), st.sets(st.integers(0, n - 1)))))
def test_the_bisect_is_bounded_and_fails_exactly_the_poison(case):
    n, poison = case
    run = Runner()
    items = [_item(POISON if i in poison else float(i)) for i in range(n)]
    _batcher(run).execute(items)
    assert len(run.runs) <= 2 * n - 1
    assert sum(run.runs) <= n * (1 + max(1, n - 1).bit_length())  # at most N rows per level
    for i, item in enumerate(items):
        assert item.done
        if i not in poison:
            _assert_computed(item)
        elif len(poison) < n:
            assert isinstance(item.error, Unprocessable)
        else:
            assert isinstance(item.error, InferenceFailed)


def test_the_threaded_driver_answers_good_requests_of_a_poisoned_batch():
    run = Runner()
    # Waits up to a second for all 16 to arrive, so they form one batch.
    driver = ThreadedDriver(_batcher(run, policy=BatchPolicy(16, 1.0, 100)), wait_timeout=10)
    items = [_item(POISON if i in (5, 9) else float(i)) for i in range(16)]
    threads = [threading.Thread(target=driver.infer, args=(it,)) for it in items]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    driver.stop()
    assert time.monotonic() - started < 10
    assert run.runs[0] == 16  # one batch of all of them
    assert [isinstance(it.error, Unprocessable) for it in items] == [i in (5, 9) for i in range(16)]
    for i, item in enumerate(items):
        if i not in (5, 9):
            _assert_computed(item)


@pytest.mark.parametrize("count", [2, 3, 64])
def test_every_request_of_a_poisoned_batch_is_completed_exactly_once(count):
    run = Runner()
    items = [_item(POISON if i == 0 else 1.0) for i in range(count)]
    _batcher(run).execute(items)
    assert all(it.done for it in items)
    assert sum(it.error is None for it in items) == count - 1
