"""Baseline (d): the ceiling, in-process ONNX Runtime on the same model at its best batch size.

No HTTP, no JSON, no copies: `session.run` on a ready tensor in a loop, with the sidecar's
intra-op thread count. Measured with intra-op spinning on (ORT's default) and off (the sidecar's
choice) and the better kept, so the ceiling is never flattered down. The sidecar's samples/s
divided by this is how much of the hardware it delivers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort


@dataclass(frozen=True)
class Ceiling:
    model: str
    threads: int
    best_batch: int
    spinning: bool
    samples_per_s: float
    by_batch: dict[int, float]  # with the better spinning setting


def _by_batch(
    model_path: Path, threads: int, spinning: bool, batches: tuple[int, ...], seconds: float
) -> dict[int, float]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    rng = np.random.default_rng(0)
    by_batch: dict[int, float] = {}
    for batch in batches:
        x = rng.random((batch, *(int(d) for d in inp.shape[1:])), dtype=np.float32)
        session.run(None, {inp.name: x})  # warm: allocations and thread pool
        calls, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            session.run(None, {inp.name: x})
            calls += 1
        by_batch[batch] = calls * batch / elapsed
    return by_batch


def measure(
    model_path: Path,
    threads: int,
    batches: tuple[int, ...] = (1, 16, 32, 64),
    seconds: float = 1.0,
) -> Ceiling:
    runs = {spin: _by_batch(model_path, threads, spin, batches, seconds) for spin in (True, False)}
    spinning = max(runs, key=lambda spin: max(runs[spin].values()))
    by_batch = runs[spinning]
    best = max(by_batch, key=by_batch.__getitem__)
    name = f"{model_path.parent.parent.name}/v{model_path.parent.name}"
    return Ceiling(name, threads, best, spinning, by_batch[best], by_batch)
