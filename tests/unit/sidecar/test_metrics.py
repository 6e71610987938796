"""Bulk histogram observation writes exactly what one `observe` per value would."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from sidecar.metrics import add, observe, observe_many
from sidecar.serving.model import _top_confidence


@pytest.mark.parametrize("count", [3, 9, 40])  # both the small-array path and numpy's
def test_observe_many_matches_observe_per_value(count):
    base = [0.0, 0.05, 0.1, 0.1000001, 0.5, 0.99, 1.0, 7.0, np.nan]
    values = np.array((base * 5)[:count])
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
    assert any('h_bucket{le="0.1",m="x"}' in line for line in exposed[1])


def test_direct_writes_match_the_public_methods():
    exposed = []
    for direct in (False, True):
        registry = CollectorRegistry()
        hist = Histogram("h", "doc", buckets=(0.1, 0.5, 1.0), registry=registry)
        count = Counter("c", "doc", registry=registry)
        for v in (0.0, 0.1, 0.3, 0.5, 2.0):
            observe(hist, v) if direct else hist.observe(v)
        add(count, 3) if direct else count.inc(3)
        text = generate_latest(registry).decode()
        exposed.append([line for line in text.splitlines() if "_created" not in line])
    assert exposed[0] == exposed[1]


@pytest.mark.parametrize("mode", ["auto", "probabilities", "logits"])
@pytest.mark.parametrize("kind", ["probabilities", "logits"])
def test_confidence_is_the_same_on_the_small_and_the_numpy_paths(mode, kind):
    rng = np.random.default_rng(3)
    raw = rng.normal(size=(40, 10)).astype(np.float32)
    values = raw if kind == "logits" else np.exp(raw) / np.exp(raw).sum(axis=1, keepdims=True)
    big = _top_confidence(values, mode)  # 400 values: numpy
    small = np.concatenate([_top_confidence(values[i : i + 2], mode) for i in range(0, 40, 2)])
    np.testing.assert_allclose(small, big, rtol=1e-6)
    if kind == "probabilities" and mode != "logits":
        np.testing.assert_allclose(big, values.max(axis=1), rtol=1e-6)
