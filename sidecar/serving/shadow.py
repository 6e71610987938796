"""Shadow traffic: a copy of a live request computed by another version of the same model,
its answer compared with the live one and never sent to anyone.

The edge names the shadow version in `X-Weir-Shadow` on a sampled share of a model's infer
requests (the release's `shadow: {version, sample}`; the header is the edge's alone, a
client's is replaced). Once the live version has computed its answer, `Shadows.start` queues
a copy of the request's decoded feeds, the same arrays, on the shadow version's batcher and
returns at once: the client's answer never waits for the shadow, and the shadow never holds
the live version's compute. When the copy is computed, its outputs are compared with the live
ones, per row:

- top-1 agreement: the argmax of the confidence output (`config.yaml`'s `confidence_output`,
  else the first; what `weir_predicted_class_total` counts), on both sides;
- the largest absolute difference over every output both versions have with the same shape.

Bounded: at most `MAX_IN_FLIGHT` copies per shadow version and worker are queued or computing;
one more is shed (counted), as is one its batcher's full queue refuses. A shadow's failure
is counted in `weir_shadow_failures_total` (the batcher logs a failing run as it logs any): it
never reaches a client, is never marked as the server's failure, so no breaker sees it. Its
rows count wherever the shadow version counts the rows it computes (executions, batch sizes,
compute time, confidence; predicted classes too where a batch run counts them): it did compute
them; never in its request counters.

Only the asyncio (uvicorn) worker shadows: the gthread and meinheld workers never read the
header (their requests are not shadowed, and nothing is counted).
"""

from __future__ import annotations

import asyncio
import logging
from typing import cast

import numpy as np

from sidecar.errors import QueueFull, WeirError
from sidecar.metric_slots import Histogram, Value, value_of
from sidecar.metrics import (
    SHADOW_AGREEMENTS,
    SHADOW_COMPARISONS,
    SHADOW_FAILURES,
    SHADOW_MAX_ABS_DIFF,
    SHADOW_SHED,
)
from sidecar.serving.batching import Pending
from sidecar.serving.model import AsyncDriver, ModelVersion
from sidecar.serving.repository import Repository

log = logging.getLogger(__name__)

SHADOW_HEADER = "X-Weir-Shadow"  # twin: scripts/edge/names.py SHADOW_HEADER
# Shadow copies queued or computing per shadow version and worker: beyond, one is shed.
MAX_IN_FLIGHT = 8
# The label of a shadow version the sidecar does not serve: a header's value never becomes a
# label of its own (a client reaching the sidecar directly could invent any).
UNKNOWN = "_unknown"
_NUMBERS = frozenset("biuf")


def class_output(found: ModelVersion) -> int | None:
    """The index of the output whose argmax is the top-1 class (None: `confidence: none`)."""
    if found.config.confidence == "none" or not found.outputs:
        return None
    return found.output_index.get(found.config.confidence_output or found.outputs[0].name)


def compare(
    live: ModelVersion,
    shadow: ModelVersion,
    live_outputs: list[np.ndarray],
    shadow_outputs: list[np.ndarray],
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Per row: the largest absolute difference over the outputs both versions have with the
    same shape and a numeric type (None: none such), and whether the top-1 classes agree
    (None: no class output on both sides, with at least 2 columns)."""
    diffs: np.ndarray | None = None
    for i, spec in enumerate(live.outputs):
        j = shadow.output_index.get(spec.name)
        if j is None:
            continue
        a, b = live_outputs[i], shadow_outputs[j]
        if a.shape != b.shape or a.size == 0 or a.dtype.kind not in _NUMBERS:
            continue
        if b.dtype.kind not in _NUMBERS:
            continue
        rows = a.shape[0] if a.ndim else 1
        delta = np.abs(
            a.reshape(rows, -1).astype(np.float64) - b.reshape(rows, -1).astype(np.float64)
        ).max(axis=1)
        diffs = delta if diffs is None else np.fmax(diffs, delta)
    agreed = None
    index = class_output(live)
    if index is not None:
        j = shadow.output_index.get(live.outputs[index].name)
        a = live_outputs[index]
        if j is not None and a.ndim >= 2 and a.shape == shadow_outputs[j].shape:
            rows = a.reshape(a.shape[0], -1)
            if rows.shape[0] and rows.shape[1] >= 2:
                other = shadow_outputs[j].reshape(rows.shape[0], -1)
                agreed = rows.argmax(axis=1) == other.argmax(axis=1)
    return diffs, agreed


class PairMetrics:
    """The metric children of one (model, live version, shadow version)."""

    __slots__ = ("agreements", "comparisons", "diffs", "failures", "labels", "shed")

    def __init__(self, model: str, version: str, shadow: str) -> None:
        self.labels = (model, version, shadow)
        self.comparisons = value_of(SHADOW_COMPARISONS.labels(*self.labels))
        self.agreements = value_of(SHADOW_AGREEMENTS.labels(*self.labels))
        self.shed = value_of(SHADOW_SHED.labels(*self.labels))
        self.diffs = Histogram(SHADOW_MAX_ABS_DIFF.labels(*self.labels))
        self.failures: dict[str, Value] = {}

    def failed(self, reason: str) -> None:
        child = self.failures.get(reason)
        if child is None:
            child = self.failures[reason] = value_of(SHADOW_FAILURES.labels(*self.labels, reason))
        child.inc()

    def compared(self, diffs: np.ndarray | None, agreed: np.ndarray | None) -> None:
        if diffs is not None:
            self.diffs.observe_many(diffs)
        if agreed is not None:
            self.comparisons.inc(int(agreed.size))
            self.agreements.inc(int(np.count_nonzero(agreed)))


class Shadows:
    """One worker's shadow copies, on its event loop (module docstring)."""

    def __init__(self, repository: Repository, max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self.repository = repository
        self.max_in_flight = max_in_flight
        self.in_flight: dict[tuple[str, str], int] = {}  # (model, shadow version) -> copies
        self._metrics: dict[tuple[str, str, str], PairMetrics] = {}
        self._tasks: set[asyncio.Task[None]] = set()  # held: the loop keeps weak references

    def metrics(self, model: str, version: str, shadow: str) -> PairMetrics:
        key = (model, version, shadow)
        found = self._metrics.get(key)
        if found is None:
            found = self._metrics[key] = PairMetrics(model, version, shadow)
        return found

    def start(self, live: ModelVersion, item: Pending, version: str) -> None:
        """Queue a copy of `item` (computed by `live`, outputs set) for shadow `version`,
        without waiting for it; shed or counted as failed when it cannot be."""
        if version == live.version or item.outputs is None:
            return
        try:
            shadow = self.repository.get(live.name, version)
        except WeirError:
            self.metrics(live.name, live.version, UNKNOWN).failed("not_found")
            return
        pair = self.metrics(live.name, live.version, shadow.version)
        if shadow.inputs != live.inputs:
            pair.failed("incompatible")  # another signature: the feeds are not its own
            return
        key = (live.name, shadow.version)
        busy = self.in_flight.get(key, 0)
        if busy >= self.max_in_flight:
            pair.shed.inc()
            return
        self.in_flight[key] = busy + 1
        copy = Pending(item.feeds, item.rows, background=True)  # on the nice-10 thread
        task = asyncio.get_running_loop().create_task(
            self._run(live, shadow, copy, item.outputs, pair, key)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(
        self,
        live: ModelVersion,
        shadow: ModelVersion,
        copy: Pending,
        live_outputs: list[np.ndarray],
        pair: PairMetrics,
        key: tuple[str, str],
    ) -> None:
        try:
            await cast(AsyncDriver, shadow.driver).submit(copy)
        except QueueFull:
            pair.shed.inc()
            return
        except WeirError as exc:
            pair.failed(exc.reason)
            return
        except Exception:
            log.exception("shadow copy for %s/%s failed", live.name, shadow.version)
            pair.failed("internal")
            return
        finally:
            self.in_flight[key] -= 1
        if copy.error is not None or copy.outputs is None:
            reason = copy.error.reason if copy.error is not None else "internal"
            log.debug("shadow %s/%s failed: %s", live.name, shadow.version, copy.error)
            pair.failed(reason)
            return
        try:
            pair.compared(*compare(live, shadow, live_outputs, copy.outputs))
        except Exception:
            log.exception(
                "comparing %s/%s with shadow %s failed", live.name, live.version, shadow.version
            )
            pair.failed("internal")
