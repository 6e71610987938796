"""Metric slots write exactly what prometheus_client's public methods would, in one process
and in multiprocess mode (the per-process files gunicorn workers write)."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import values as prometheus_values
from prometheus_client.multiprocess import MultiProcessCollector

from sidecar import metric_slots
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
            metric_slots.Histogram(child).observe_many(values)
        else:
            for v in values[~np.isnan(values)]:
                child.observe(float(v))
        text = generate_latest(registry).decode()
        exposed.append([line for line in text.splitlines() if "_created" not in line])
    assert exposed[0] == exposed[1]
    assert any('h_bucket{le="0.1",m="x"}' in line for line in exposed[1])


def _write(direct: bool, registry: CollectorRegistry | None) -> None:
    hist = Histogram("h", "doc", ["m"], buckets=(0.1, 0.5, 1.0), registry=registry).labels("x")
    count = Counter("c", "doc", ["m"], registry=registry).labels("x")
    gauge = Gauge("g", "doc", ["m"], registry=registry, multiprocess_mode="livesum").labels("x")
    slot_hist = metric_slots.Histogram(hist) if direct else None
    slot_count = metric_slots.value_of(count) if direct else None
    slot_gauge = metric_slots.value_of(gauge) if direct else None
    for v in (0.0, 0.1, 0.3, 0.5, 2.0):
        slot_hist.observe(v) if slot_hist else hist.observe(v)
    slot_count.inc(3) if slot_count else count.inc(3)
    slot_gauge.inc(5) if slot_gauge else gauge.inc(5)
    slot_gauge.inc(-2) if slot_gauge else gauge.dec(2)


def _lines(text: str) -> list[str]:
    return sorted(line for line in text.splitlines() if "_created" not in line)


def test_slots_match_the_public_methods_in_one_process():
    exposed = []
    for direct in (False, True):
        registry = CollectorRegistry()
        _write(direct, registry)
        exposed.append(_lines(generate_latest(registry).decode()))
    assert exposed[0] == exposed[1]
    assert 'c_total{m="x"} 3.0' in exposed[1]


def test_slots_match_the_public_methods_in_multiprocess_files(tmp_path, monkeypatch):
    exposed = []
    for direct in (False, True):
        folder = tmp_path / ("direct" if direct else "public")
        folder.mkdir()
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
        monkeypatch.setattr(prometheus_values, "ValueClass", prometheus_values.MultiProcessValue())
        _write(direct, None)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(folder))
        exposed.append(_lines(generate_latest(registry).decode()))
    assert exposed[0] == exposed[1]
    assert 'h_bucket{le="0.5",m="x"} 4.0' in exposed[1]
    assert 'g{m="x"} 3.0' in exposed[1]


def test_a_slot_follows_its_value_to_a_grown_file(tmp_path, monkeypatch):
    """Many new keys grow the file and map it anew: a slot made before still writes its own."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setattr(prometheus_values, "ValueClass", prometheus_values.MultiProcessValue())
    family = Counter("grow", "doc", ["k"], registry=None)
    slot = metric_slots.value_of(family.labels("first"))
    for i in range(3000):  # well past the file's first megabyte
        family.labels(f"key-{i:04d}-" + "x" * 300).inc()
    slot.inc(7)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(tmp_path))
    assert 'grow_total{k="first"} 7.0' in generate_latest(registry).decode()


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
