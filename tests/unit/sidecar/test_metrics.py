"""Bulk histogram observation writes exactly what one `observe` per value would."""

from __future__ import annotations

import numpy as np
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from sidecar.metrics import observe_many


def test_observe_many_matches_observe_per_value():
    values = np.array([0.0, 0.05, 0.1, 0.1000001, 0.5, 0.99, 1.0, 7.0, np.nan])
    exposed = []
    for bulk in (False, True):
        registry = CollectorRegistry()
        hist = Histogram("h", "doc", ["m"], buckets=(0.1, 0.5, 1.0), registry=registry)
        child = hist.labels("x")
        if bulk:
            observe_many(child, values)
        else:
            for v in values[~np.isnan(values)]:
                child.observe(float(v))
        text = generate_latest(registry).decode()
        exposed.append([line for line in text.splitlines() if "_created" not in line])
    assert exposed[0] == exposed[1]
    assert 'h_bucket{le="0.1",m="x"} 3.0' in exposed[1]
