"""The quantization report: the JSON saved beside the new model, and the table printed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from scripts.quantize.accuracy import Accuracy, Verdict
from scripts.quantize.timing import BATCH, Speed

FP16_SPEED = (
    "not measured: ONNX Runtime's CPU provider has few FP16 kernels on x86 and casts around the "
    "rest, so a CPU timing says nothing of a GPU's; its speed can only be judged on a GPU"
)


@dataclass(frozen=True)
class Report:
    model: str
    source_version: str
    new_version: str
    source_bytes: int
    new_bytes: int
    accuracy: Accuracy
    verdict: Verdict
    tolerance: float
    speed: tuple[Speed, Speed] | None  # (source, new); None for fp16
    options: dict[str, object]
    cpu: dict[str, object]
    onnxruntime: str
    data_source: str
    notes: tuple[str, ...] = ()

    @property
    def size_ratio(self) -> float:
        return self.source_bytes / self.new_bytes if self.new_bytes else 0.0

    def as_dict(self) -> dict[str, Any]:
        speed: dict[str, Any] | str = FP16_SPEED
        if self.speed is not None:
            source, new = self.speed
            speed = {
                "source": source.as_dict(),
                "new": new.as_dict(),
                "measured": "side by side in one run, interleaved rounds, one CPU thread each",
            }
        return {
            "model": self.model,
            "source_version": self.source_version,
            "new_version": self.new_version,
            "written": self.verdict.write,
            "verdict": self.verdict.reason,
            "tolerance": self.tolerance,
            "size": {
                "source_bytes": self.source_bytes,
                "new_bytes": self.new_bytes,
                "ratio": round(self.size_ratio, 3),
            },
            "speed": speed,
            "accuracy": self.accuracy.as_dict(),
            "evaluation_data": self.data_source,
            "options": self.options,
            "cpu": self.cpu,
            "onnxruntime": self.onnxruntime,
            "notes": list(self.notes),
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2) + "\n"


def _pct(value: float | None) -> str:
    return "no labels" if value is None else f"{value:.2%}"


def _kib(size: int) -> str:
    return f"{size / 1024:,.1f} KiB"


def _rows(report: Report) -> list[tuple[str, str, str]]:
    acc = report.accuracy
    ratio = report.size_ratio
    change = f"{1 / ratio:.2f}x larger" if 0 < ratio < 1 else f"{ratio:.2f}x smaller"
    rows = [("size", _kib(report.source_bytes), f"{_kib(report.new_bytes)} ({change})")]
    if report.speed is not None:
        source, new = report.speed
        rows += [
            ("batch-1 p50", f"{source.p50_ms:.3f} ms", f"{new.p50_ms:.3f} ms"),
            ("batch-1 p99", f"{source.p99_ms:.3f} ms", f"{new.p99_ms:.3f} ms"),
            (
                "batch-1 CPU per request",
                f"{source.cpu_ms_per_request:.3f} ms",
                f"{new.cpu_ms_per_request:.3f} ms",
            ),
            (
                f"batch-{BATCH} throughput",
                f"{source.batch_rows_per_s:,.0f} rows/s",
                f"{new.batch_rows_per_s:,.0f} rows/s",
            ),
        ]
    rows += [
        (f"accuracy ({acc.rows} rows)", _pct(acc.source_accuracy), _pct(acc.new_accuracy)),
        ("top-1 agreement with source", "", _pct(acc.top1_agreement)),
    ]
    if acc.source_accuracy is None and acc.expected_source is not None:
        rows.append(
            ("expected accuracy (no labels)", _pct(acc.expected_source), _pct(acc.expected_new))
        )
    rows += [
        ("output |diff| max / mean", "", f"{acc.max_abs_diff:.5f} / {acc.mean_abs_diff:.5f}"),
    ]
    return rows


def format_table(report: Report) -> str:
    """The report for a terminal: a three-column table, then the decision and its context."""
    header = ("", f"v{report.source_version} (source)", f"v{report.new_version} ({_kind(report)})")
    rows = [header, *_rows(report)]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [f"weir quantize: {report.model} v{report.source_version} -> v{report.new_version}", ""]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        lines.append("  ".join(cells).rstrip())
    cpu = report.cpu
    flags = ", ".join(f"{key} {'yes' if cpu[key] else 'no'}" for key in ("avx2", "avx512", "vnni"))
    options = ", ".join(f"{key}={value}" for key, value in report.options.items())
    lines += [
        "",
        f"cpu: {cpu['cpu']}: {flags}",
        f"options: {options}; onnxruntime {report.onnxruntime}",
        f"evaluated on: {report.data_source}",
    ]
    if report.speed is None:
        lines.append(f"speed: {FP16_SPEED}")
    lines += [f"note: {note}" for note in report.notes]
    lines += ["", f"{report.verdict.reason}"]
    return "\n".join(lines)


def _kind(report: Report) -> str:
    return str(report.options.get("precision", "int8"))
