"""Read a histogram's `_sum` and `_count` out of Prometheus text, filtered by labels.

Deliberately small: the benchmark needs the sidecar's batch-size and compute-time histograms
before and after a cell, summed over every series whose labels include the ones asked for (all
workers in multiprocess mode, every other label value). From their deltas: mean batch size, the
share of wall time the model ran (busy), and the samples/s while it ran (compute rate), which
split "x ceiling" into "not running often enough" and "running slower than in-process".
"""

from __future__ import annotations

import re
import urllib.request
from dataclasses import dataclass

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class HistogramTotals:
    total: float  # _sum
    count: float  # _count

    def __sub__(self, other: HistogramTotals) -> HistogramTotals:
        return HistogramTotals(self.total - other.total, self.count - other.count)

    def __add__(self, other: HistogramTotals) -> HistogramTotals:
        return HistogramTotals(self.total + other.total, self.count + other.count)

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count > 0 else None


def histogram_totals(text: str, name: str, labels: dict[str, str]) -> HistogramTotals:
    sums = {f"{name}_sum": 0.0, f"{name}_count": 0.0}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if not match or match.group(1) not in sums:
            continue
        found = dict(_LABEL.findall(match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            sums[match.group(1)] += float(match.group(3))
    return HistogramTotals(sums[f"{name}_sum"], sums[f"{name}_count"])


def scrape(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read().decode()


@dataclass(frozen=True)
class BatchStats:
    """Deltas of the batch-size (rows) and compute-seconds histograms over a measured interval."""

    rows: HistogramTotals  # _sum: samples inferred, _count: batches run
    compute: HistogramTotals  # _sum: seconds in the model, _count: batches run

    def __sub__(self, other: BatchStats) -> BatchStats:
        return BatchStats(self.rows - other.rows, self.compute - other.compute)

    def __add__(self, other: BatchStats) -> BatchStats:
        return BatchStats(self.rows + other.rows, self.compute + other.compute)

    @property
    def mean_batch(self) -> float | None:
        return self.rows.mean

    @property
    def compute_rate(self) -> float | None:
        """Samples per second of model time."""
        return self.rows.total / self.compute.total if self.compute.total > 0 else None


def batch_stats(
    url: str, rows_metric: str, compute_metric: str, labels: dict[str, str]
) -> BatchStats:
    text = scrape(url)
    return BatchStats(
        histogram_totals(text, rows_metric, labels), histogram_totals(text, compute_metric, labels)
    )
