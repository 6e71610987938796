"""The conversion itself: ONNX Runtime's own quantization tools, and its FP16 converter.

Choices, each measured on the sample models (ONNX Runtime 1.31):
- QDQ by default: ONNX Runtime fuses QuantizeLinear/DequantizeLinear pairs into its int8
  kernels, and other runtimes read the same file; QOperator (QLinearConv...) came out 4-6x
  slower than FP32 on cnn at batch 1 here, QDQ 2-3x faster.
- Per-channel on when the graph has convolutions (each output channel gets its own scale:
  filters differ in range), off for dense-only graphs, where one scale and zero point per
  output column cost more bytes than they save on a model as small as digits (2.3x smaller
  instead of 2.6x) and changed no prediction.
- `quant_pre_process` is not run: on the samples it changed no prediction, and the shape
  information it adds made digits larger (2.51x instead of 2.59x); its symbolic shape inference
  would also need sympy, which Weir does not ship. The quantizer's own ONNX shape inference
  is enough for graphs with static shapes apart from the batch.
- FP16 keeps FP32 inputs and outputs (`keep_io_types`), so clients send what they sent.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader

Mode = Literal["dynamic", "static"]
Format = Literal["qdq", "qoperator"]
Precision = Literal["int8", "fp16"]
CALIBRATION_BATCH = 16


@dataclass(frozen=True)
class Options:
    precision: Precision
    mode: Mode
    format: Format
    per_channel: bool
    reduce_range: bool

    def as_dict(self) -> dict[str, object]:
        if self.precision == "fp16":
            return {"precision": "fp16", "keep_io_types": True}
        return asdict(self)


def has_convolutions(model: onnx.ModelProto) -> bool:
    return any(node.op_type == "Conv" for node in model.graph.node)


class _Reader(CalibrationDataReader):  # type: ignore[misc]  # untyped base class
    """Feeds calibration rows to the quantizer in batches (`get_next` until None)."""

    def __init__(self, feeds: dict[str, np.ndarray]) -> None:
        self._batches = self._iterate(feeds)

    @staticmethod
    def _iterate(feeds: dict[str, np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
        rows = len(next(iter(feeds.values())))
        for start in range(0, rows, CALIBRATION_BATCH):
            yield {name: array[start : start + CALIBRATION_BATCH] for name, array in feeds.items()}

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def convert(
    source: Path, target: Path, options: Options, calibration: dict[str, np.ndarray]
) -> None:
    """Write the converted model of `source` to `target` (a file in a staging folder)."""
    with _quiet():
        _convert(source, target, options, calibration)


@contextmanager
def _quiet() -> Iterator[None]:
    """The quantizer logs advice meant for its own users (run pre-processing, ...) at WARNING
    on the root logger; the report already says what was chosen and why."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _convert(
    source: Path, target: Path, options: Options, calibration: dict[str, np.ndarray]
) -> None:
    if options.precision == "fp16":
        _to_fp16(source, target)
        return
    from onnxruntime.quantization import QuantFormat, quantize_dynamic, quantize_static

    quant_format = QuantFormat.QDQ if options.format == "qdq" else QuantFormat.QOperator
    if options.mode == "dynamic":
        # Dynamic mode quantizes weights only; activations get their ranges per run. ONNX
        # Runtime's dynamic kernels are QOperator ones (DynamicQuantizeLinear, MatMulInteger).
        quantize_dynamic(
            source, target, per_channel=options.per_channel, reduce_range=options.reduce_range
        )
        return
    reader = _Reader(calibration)
    quantize_static(
        source,
        target,
        reader,
        quant_format=quant_format,
        per_channel=options.per_channel,
        reduce_range=options.reduce_range,
    )


def _to_fp16(source: Path, target: Path) -> None:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(source), keep_io_types=True)
    onnx.save(model, target)
