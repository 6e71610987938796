"""ONNX Runtime sessions for measuring a model version the way a CPU sidecar runs it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

Feeds = dict[str, np.ndarray]
EVAL_BATCH = 64


def open_session(path: Path) -> Any:
    """A CPU session with the sidecar's settings (sequential, all graph optimizations, no
    spinning threads) and one intra-op thread: the two versions are timed on one core each,
    so neither steals the other's, and the figures read per core."""
    import onnxruntime as ort

    ort.set_default_logger_severity(3)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def input_names(session: Any) -> list[str]:
    return [node.name for node in session.get_inputs()]


def first_output(session: Any, feeds: Feeds) -> np.ndarray:
    """The model's first output for every row, computed in batches of EVAL_BATCH."""
    rows = len(next(iter(feeds.values())))
    name = session.get_outputs()[0].name
    parts = [
        session.run([name], {k: v[start : start + EVAL_BATCH] for k, v in feeds.items()})[0]
        for start in range(0, rows, EVAL_BATCH)
    ]
    return np.concatenate(parts)


def take(feeds: Feeds, rows: int) -> Feeds:
    """The first `rows` rows of every input, repeated when the data has fewer."""
    count = len(next(iter(feeds.values())))
    index = np.arange(rows) % count
    return {name: array[index] for name, array in feeds.items()}
