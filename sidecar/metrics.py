"""Every Prometheus metric of the sidecar, defined once. Base units; counters end in _total.

In gunicorn the launcher sets PROMETHEUS_MULTIPROC_DIR before any import of prometheus_client,
so values live in per-process files that `/metrics` aggregates.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator

import numpy as np
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.metrics_core import Metric

from sidecar import metric_slots as slots

LABELS = ("model", "version")
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.02,
    0.05,
    0.1,
    0.2,
    0.5,
    1.0,
    2.0,
    5.0,
    10.0,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)

REQUEST_SUCCESS = Counter("weir_inference_request_success", "Infer requests answered 200.", LABELS)
REQUEST_FAILURE = Counter(
    "weir_inference_request_failure",
    "Infer requests refused or failed, by reason.",
    (*LABELS, "reason"),
)
CLIENT_GONE = Counter(
    "weir_client_disconnects",
    "Responses not delivered because the client had closed its connection (normal).",
)
INFERENCE_COUNT = Counter(
    "weir_inference_count", "Rows (samples) inferred, summed over batches.", LABELS
)
EXECUTION_COUNT = Counter("weir_inference_exec_count", "Model executions (batches run).", LABELS)
REQUEST_SECONDS = Histogram(
    "weir_request_duration_seconds",
    "Infer request time in the sidecar, body read to response ready.",
    LABELS,
    buckets=LATENCY_BUCKETS,
)
QUEUE_SECONDS = Histogram(
    "weir_queue_duration_seconds",
    "Time a request waited in the batching queue.",
    LABELS,
    buckets=LATENCY_BUCKETS,
)
COMPUTE_SECONDS = Histogram(
    "weir_compute_duration_seconds",
    "Model execution time per batch.",
    LABELS,
    buckets=LATENCY_BUCKETS,
)
BATCH_SIZE = Histogram(
    "weir_batch_size", "Rows per model execution.", LABELS, buckets=BATCH_BUCKETS
)
CONFIDENCE = Histogram(
    "weir_prediction_confidence",
    "Top-class probability per inferred row.",
    LABELS,
    buckets=CONFIDENCE_BUCKETS,
)
PREDICTED_CLASS = Counter(
    "weir_predicted_class",
    "Rows answered, by top-1 class index of the confidence output (indexes from "
    "MAX_CLASS_LABELS on share one label): what a rollout compares between versions.",
    (*LABELS, "class"),
)
MAX_CLASS_LABELS = 256
PREPROCESS_SECONDS = Histogram(
    "weir_preprocess_duration_seconds",
    "Pre-processing time per infer request in the model class (image decoding included), "
    "part of the request time.",
    LABELS,
    buckets=LATENCY_BUCKETS,
)
QUEUE_DEPTH = Gauge(
    "weir_queue_depth",
    "Requests waiting in the batching queue: when the latest batch started, then those left "
    "after it (0 when idle).",
    LABELS,
    multiprocess_mode="livesum",
)
REQUESTS_IN_FLIGHT = Gauge(
    "weir_requests_in_flight",
    "Infer requests in the sidecar now, from body read to response ready (queued or "
    "computing included): what an autoscaler scales on, per pod.",
    LABELS,
    multiprocess_mode="livesum",
)
BATCH_SPLITS = Counter(
    "weir_batch_splits",
    "Batches that failed as a whole and were bisected to isolate the requests the model "
    "cannot compute (poison requests).",
    LABELS,
)
MODEL_LOAD_SECONDS = Gauge(
    "weir_model_load_seconds",
    "Seconds to load and warm up the model version.",
    LABELS,
    multiprocess_mode="max",
)
MODEL_READY = Gauge(
    "weir_model_ready",
    "1 when the model version is loaded and warmed up in a live worker.",
    LABELS,
    multiprocess_mode="livemin",
)
REPOSITORY_GENERATION = Gauge(
    "weir_repository_generation",
    "Generation of the model repository every live worker has loaded (the lowest of theirs).",
    # Labelled so that only workers hold a sample: gunicorn's master imports this module too,
    # and its unset 0 would be the minimum forever.
    ["repository"],
    multiprocess_mode="livemin",
)
MODEL_LOAD_FAILURES = Counter(
    "weir_model_load_failures_total",
    "Model versions found on disk that failed to load, by worker rescans.",
    LABELS,
)

FAILURE_REASONS = (
    "bad_request",
    "too_large",
    "not_found",
    "unprocessable",
    "queue_full",
    "unavailable",
    "inference_error",
    "internal",
)


class ModelMetrics:
    """Slots (`sidecar.metric_slots`) of one model version's children, resolved once: `.labels()`
    is not free.

    With `buffered` (event-loop workers), per-request success and latency are collected in
    memory and written by `flush()`, one increment per bucket: the driver calls it after each
    batch, or, with `flush_soon` set (a loop's `call_soon`), the first success of a loop
    turn schedules it for the end of that turn.
    """

    __slots__ = (
        "_durations",
        "batch_size",
        "buffered",
        "compute",
        "confidence",
        "executions",
        "failures",
        "flush_soon",
        "in_flight",
        "inferences",
        "queue",
        "queue_depth",
        "request",
        "splits",
        "success",
    )

    def __init__(self, model: str, version: str) -> None:
        self.buffered = False
        self.flush_soon: Callable[[Callable[[], None]], object] | None = None
        self._durations: list[float] = []
        labels = (model, version)
        self.success = slots.value_of(REQUEST_SUCCESS.labels(*labels))
        self.failures = {
            r: slots.value_of(REQUEST_FAILURE.labels(*labels, r)) for r in FAILURE_REASONS
        }
        self.inferences = slots.value_of(INFERENCE_COUNT.labels(*labels))
        self.executions = slots.value_of(EXECUTION_COUNT.labels(*labels))
        self.request = slots.Histogram(REQUEST_SECONDS.labels(*labels))
        self.queue = slots.Histogram(QUEUE_SECONDS.labels(*labels))
        self.compute = slots.Histogram(COMPUTE_SECONDS.labels(*labels))
        self.batch_size = slots.Histogram(BATCH_SIZE.labels(*labels))
        self.confidence = slots.Histogram(CONFIDENCE.labels(*labels))
        self.queue_depth = slots.value_of(QUEUE_DEPTH.labels(*labels))
        self.in_flight = slots.value_of(REQUESTS_IN_FLIGHT.labels(*labels))
        self.splits = slots.value_of(BATCH_SPLITS.labels(*labels))

    def entered(self) -> None:
        """A request is in flight (`left` when it is answered)."""
        self.in_flight.inc(1)

    def left(self) -> None:
        self.in_flight.inc(-1)

    def succeeded(self, seconds: float) -> None:
        """One request answered 200 after `seconds`."""
        if self.buffered:
            self._durations.append(seconds)
            if len(self._durations) == 1 and self.flush_soon is not None:
                self.flush_soon(self.flush)
        else:
            self.success.inc()
            self.request.observe(seconds)

    def flush(self) -> None:
        durations = self._durations
        if durations:
            self._durations = []
            self.success.inc(len(durations))
            if len(durations) == 1:
                self.request.observe(durations[0])
            else:
                self.request.observe_many(np.array(durations))

    def failure(self, reason: str) -> None:
        counter = self.failures.get(reason) or self.failures["internal"]
        counter.inc()


# Requests for models that do not exist share one label set: client input never makes labels.
UNKNOWN = ("_unknown", "")


def unknown_model_failure(reason: str) -> None:
    REQUEST_FAILURE.labels(*UNKNOWN, reason).inc()


# Families computed at scrape time from the others (sidecar/serving/drift.py registers its
# own): each gets the scrape's families and returns more.
DERIVED: list[Callable[[list[Metric]], Iterable[Metric]]] = []


class _WithDerived:
    """A registry's families, then those DERIVED from them."""

    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        families = list(self.source.collect())
        yield from families
        for derive in DERIVED:
            try:
                extra = list(derive(families))
            except Exception:  # a derived family must never cost the scrape the others
                logging.getLogger(__name__).exception("metrics derived at scrape time failed")
                continue
            yield from extra


def render() -> tuple[bytes, str]:
    """The exposition text: aggregated over live and dead workers in multiprocess mode."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(_WithDerived(registry)), CONTENT_TYPE_LATEST  # type: ignore[arg-type]
    return generate_latest(_WithDerived(REGISTRY)), CONTENT_TYPE_LATEST  # type: ignore[arg-type]


def mark_process_dead(pid: int) -> None:
    """gunicorn child_exit: drop the dead worker's live gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)


# Shadow traffic (sidecar/serving/shadow.py): labelled by the model, the live version that
# answered the client and the shadow version that computed the copy.
SHADOW_LABELS = ("model", "version", "shadow")
SHADOW_COMPARISONS = Counter(
    "weir_shadow_comparisons",
    "Rows a shadow version computed and whose top-1 class was compared with the live answer's.",
    SHADOW_LABELS,
)
SHADOW_AGREEMENTS = Counter(
    "weir_shadow_agreements",
    "Compared rows whose top-1 class the shadow version and the live one agree on.",
    SHADOW_LABELS,
)
SHADOW_SHED = Counter(
    "weir_shadow_shed",
    "Shadow copies not computed because the shadow version already had its bound of copies "
    "in flight, or its queue was full.",
    SHADOW_LABELS,
)
SHADOW_FAILURES = Counter(
    "weir_shadow_failures",
    "Shadow copies that failed, by reason (never a client's error, never a breaker's).",
    (*SHADOW_LABELS, "reason"),
)
SHADOW_MAX_ABS_DIFF = Histogram(
    "weir_shadow_max_abs_diff",
    "Per compared row, the largest absolute difference between the shadow's outputs and the "
    "live ones.",
    SHADOW_LABELS,
    buckets=(0.0, 1e-6, 1e-5, 1e-4, 1e-3, 0.01, 0.1, 0.5, 1.0, 10.0),
)
