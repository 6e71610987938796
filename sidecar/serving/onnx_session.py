"""ONNX Runtime sessions: device placement, thread settings and the model's own signature.

Import this module only in the worker after fork: sessions are never created in the master.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
from dataclasses import dataclass

import numpy as np

from sidecar.codec.datatypes import ONNX_TO_V2, V2_TO_NUMPY

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One input or output as the model declares it; None marks a dynamic dimension."""

    name: str
    datatype: str
    shape: tuple[int | None, ...]

    def metadata(self) -> dict[str, object]:
        return {
            "name": self.name,
            "datatype": self.datatype,
            "shape": [-1 if d is None else d for d in self.shape],
        }


def gpu_present() -> bool:
    """True when this machine has an NVIDIA GPU, found without touching CUDA."""
    return bool(glob.glob("/dev/nvidia[0-9]*")) or shutil.which("nvidia-smi") is not None


def providers_for(device: str) -> list[object]:
    """ORT providers for a device: 'cpu', or a GPU index pinned by CUDA_VISIBLE_DEVICES."""
    if device == "cpu":
        return ["CPUExecutionProvider"]
    # The launcher exported CUDA_VISIBLE_DEVICES=<device>, so inside this process it is 0.
    return [("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"]


def _spec(node: object) -> TensorSpec:
    onnx_type = node.type  # type: ignore[attr-defined]
    if onnx_type not in ONNX_TO_V2:
        raise ValueError(f"tensor {node.name!r} has unsupported type {onnx_type}")  # type: ignore[attr-defined]
    shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in node.shape)  # type: ignore[attr-defined]
    return TensorSpec(node.name, ONNX_TO_V2[onnx_type], shape)  # type: ignore[attr-defined]


class Session:
    """A loaded ONNX model: its signature and a `run` taking and returning numpy arrays."""

    def __init__(self, path: str, device: str, intra_op_threads: int) -> None:
        import onnxruntime as ort

        ort.set_default_logger_severity(3)  # warnings about unused providers are noise
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Spinning intra-op threads would steal the CPU the HTTP loop needs between batches.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # A failed run is logged by the batcher, once per batch with the verdict (a bisect
        # reruns a poisoned batch's halves; ORT would print each failed run in red).
        options.log_severity_level = 4
        self._session = ort.InferenceSession(
            path, sess_options=options, providers=providers_for(device)
        )
        self.inputs = [_spec(i) for i in self._session.get_inputs()]
        self.outputs = [_spec(o) for o in self._session.get_outputs()]
        self.output_names = [o.name for o in self.outputs]
        self.providers = self._session.get_providers()
        if device != "cpu" and "CUDAExecutionProvider" not in self.providers:
            # ORT silently falls back to the CPU when CUDA cannot start; a GPU sidecar must not.
            raise RuntimeError(
                f"{path}: the CUDA execution provider did not start on GPU {device}; "
                "check the CUDA/cuDNN libraries, or run this sidecar with --device cpu"
            )

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self._session.run(self.output_names, feeds)

    def warmup(self, batch: int) -> None:
        """Run once at `batch` rows and once at 1, with zeros shaped like the inputs."""
        for rows in sorted({max(1, batch), 1}, reverse=True):
            feeds = {}
            for spec in self.inputs:
                dims = [
                    rows if i == 0 and d is None else (d or 1) for i, d in enumerate(spec.shape)
                ]
                dtype = V2_TO_NUMPY[spec.datatype]
                feeds[spec.name] = (
                    np.full(dims, b"", dtype=object)
                    if spec.datatype == "BYTES"
                    else np.zeros(dims, dtype=dtype)
                )
            self.run(feeds)


def default_intra_op_threads(workers: int) -> int:
    """Share the CPUs the process may use between the workers."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        cpus = os.cpu_count() or 1
    return max(1, cpus // max(1, workers))
