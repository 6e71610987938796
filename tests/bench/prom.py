"""Read a histogram's `_sum` and `_count` out of Prometheus text, filtered by labels.

Deliberately small: the benchmark needs the batch-size histogram's totals before and after a
cell (mean batch size = delta sum / delta count), summed over every series whose labels include
the ones asked for (all workers in multiprocess mode, every other label value).
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
