"""One loaded model version: session, signature, batching and its metric children."""

from __future__ import annotations

import logging
import math
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from sidecar import metric_slots
from sidecar.metrics import (
    MODEL_LOAD_SECONDS,
    MODEL_READY,
    PREPROCESS_SECONDS,
    ModelMetrics,
)
from sidecar.serving import drift
from sidecar.serving.batching import Batcher, BatchPolicy, Pending
from sidecar.serving.model_class import ModelClass, ModelContext
from sidecar.serving.model_config import Batching, ModelConfig
from sidecar.serving.onnx_session import Session
from sidecar.serving.predictions import ClassCounter
from sidecar.serving.validation import Signature

log = logging.getLogger(__name__)


class Driver(Protocol):
    def infer(self, item: Pending) -> None:
        """Queue `item` and return once it is done (outputs or error set)."""
        ...


class AsyncDriver(Protocol):
    async def submit(self, item: Pending) -> None:
        """Queue `item` and resume once it is done, without blocking the event loop."""
        ...


# Called with the batcher and the version's metrics (a driver may buffer them).
DriverFactory = Callable[[Batcher, ModelMetrics], Driver | AsyncDriver]


def _top_confidence(values: np.ndarray, mode: str) -> np.ndarray:
    """Top-class probability per row, from probabilities or logits."""
    values = values.reshape(values.shape[0], -1)
    if values.size <= 64:  # a few rows: plain Python beats numpy's per-call costs
        return np.array([_row_confidence(row, mode) for row in values.tolist()])
    values = values.astype(np.float64, copy=False)
    if mode == "auto":
        mode = "probabilities" if values.min() >= 0.0 and values.max() <= 1.0 else "logits"
    if mode == "logits":
        shifted = values - values.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        return 1.0 / exp.sum(axis=1)  # the top class has exp(0) == 1
    return values.max(axis=1)


def _row_confidence(row: list[float], mode: str) -> float:
    top = max(row)
    if mode == "probabilities" or (mode == "auto" and min(row) >= 0.0 and top <= 1.0):
        return top
    return 1.0 / sum(math.exp(v - top) for v in row)


class ModelVersion:
    """A model version ready to serve: `infer` validates nothing, it runs decoded feeds."""

    def __init__(
        self,
        name: str,
        version: str,
        path: Path,
        config: ModelConfig,
        defaults: BatchPolicy,
        device: str,
        intra_op_threads: int,
        driver_factory: DriverFactory,
    ) -> None:
        started = time.perf_counter()
        self.name = name
        self.version = version
        self.config = config
        self.metrics = ModelMetrics(name, version)
        self.session = Session(str(path), device, intra_op_threads)
        self.inputs = self.session.inputs
        self.outputs = self.session.outputs
        self.output_index = {spec.name: i for i, spec in enumerate(self.outputs)}
        # Batching needs a dynamic first dimension on every input and output.
        self.batchable = all(
            spec.shape and spec.shape[0] is None for spec in (*self.inputs, *self.outputs)
        )
        self.model_class = (
            ModelClass(
                path.parent.parent,
                config.model_file,
                ModelContext(name, version, config.labels, config.images.limits()),
                self.inputs,
                self.outputs,
            )
            if config.model_file
            else None
        )
        # What clients send and get: the model class's signature, else the ONNX model's.
        self.client_inputs = self.model_class.inputs if self.model_class else self.inputs
        self.client_outputs = self.model_class.outputs if self.model_class else self.outputs
        self.preprocesses = self.model_class is not None and self.model_class.preprocesses
        self.preprocess_seconds = metric_slots.Histogram(PREPROCESS_SECONDS.labels(name, version))
        client_batched = self.batchable and all(
            spec.shape and spec.shape[0] is None for spec in self.client_inputs
        )
        self.signature = Signature(
            self.client_inputs, self.client_outputs, config.nan_policy, client_batched
        )
        override = config.versions.get(version)
        delay_ms = _pick("max_queue_delay_ms", override, config, defaults.max_queue_delay * 1e3)
        policy = BatchPolicy(
            max_batch_size=_pick("max_batch_size", override, config, defaults.max_batch_size),
            max_queue_delay=delay_ms / 1000.0,
            max_queue_size=_pick("max_queue_size", override, config, defaults.max_queue_size),
        )
        if not self.batchable:
            policy = BatchPolicy(0, 0.0, policy.max_queue_size)
        self.policy = policy
        conf_name = config.confidence_output or (self.outputs[0].name if self.outputs else None)
        self._confidence_index = (
            None
            if config.confidence == "none" or conf_name not in self.output_index
            else self.output_index[conf_name]
        )
        self.predicted_classes = ClassCounter(name, version, self._confidence_index)
        self.session.warmup(policy.max_batch_size or 1)
        self.batcher = Batcher(
            f"model '{name}' version {version}",
            policy,
            self.session.run,
            _weakly(self._observe),
            self.metrics.queue_depth.set,
            self.metrics.splits.inc,
            on_host=all(p == "CPUExecutionProvider" for p in self.session.providers),
        )
        self.driver: Driver | AsyncDriver = driver_factory(self.batcher, self.metrics)
        self.load_seconds = time.perf_counter() - started
        MODEL_LOAD_SECONDS.labels(name, version).set(self.load_seconds)
        MODEL_READY.labels(name, version).set(1)
        drift.watch(self, path.parent)  # its reference.json, if it has one
        log.info(
            "loaded model %s version %s in %.2fs (providers %s, batching %s)",
            name,
            version,
            self.load_seconds,
            ",".join(self.session.providers),
            policy,
        )

    def _observe(
        self, batch: list[Pending], outputs: list[np.ndarray], started: float, finished: float
    ) -> None:
        m = self.metrics
        rows = sum(item.rows for item in batch)
        m.executions.inc()
        m.inferences.inc(rows)
        m.batch_size.observe(rows)
        m.compute.observe(finished - started)
        if len(batch) == 1:
            m.queue.observe(started - batch[0].enqueued)
        else:
            m.queue.observe_many(started - np.array([item.enqueued for item in batch]))
        m.queue_depth.set(len(self.batcher.queue) + len(batch))
        if self._confidence_index is not None:
            top = _top_confidence(outputs[self._confidence_index], self.config.confidence)
            m.confidence.observe_many(top)
            self.predicted_classes.count(outputs)

    def retire(self) -> None:
        """No longer served: stop the driver's own thread, if it has one, once the requests
        already queued are computed; the session is freed with the last reference to this
        version."""
        stop = getattr(self.driver, "stop", None)
        if stop is not None:
            stop()

    def metadata(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": "onnx_onnxv1",
            "inputs": [spec.metadata() for spec in self.client_inputs],
            "outputs": [spec.metadata() for spec in self.client_outputs],
        }


def _weakly(method: Callable[..., None]) -> Callable[..., None]:
    """`method` called through a weak reference: the batcher must not keep its version alive
    (a retired version's session would never be freed)."""
    ref = weakref.WeakMethod(method)

    def call(*args: Any) -> None:
        target = ref()
        if target is not None:
            target(*args)

    return call


def _pick(key: str, override: Batching | None, config: ModelConfig, default: Any) -> Any:
    for source in (override, config.batching):
        value = source.given(key) if source is not None else None
        if value is not None:
            return value
    return default
