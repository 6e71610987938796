"""Drift against a reference: the reference file, the PSI (the rollout's twin), the window
of the last rows kept across scrapes, and the gauges derived from real counters."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram

from scripts.rollout import stats
from sidecar.metrics import CONFIDENCE_BUCKETS
from sidecar.serving import drift


class Version:  # what drift reads of a ModelVersion: its name and version
    def __init__(self, name: str, version: str) -> None:
        self.name, self.version = name, version


def families(classes: dict[str, int], confidences: list[float]) -> list:
    """Real prometheus_client families, as the multiprocess collector gives them."""
    registry = CollectorRegistry()
    counter = Counter("weir_predicted_class", "", ["model", "version", "class"], registry=registry)
    hist = Histogram(
        "weir_prediction_confidence", "", ["model", "version"], buckets=CONFIDENCE_BUCKETS,
        registry=registry,
    )  # fmt: skip
    for cls, n in classes.items():
        counter.labels("m", "1", cls).inc(n)
    for value in confidences:
        hist.labels("m", "1").observe(value)
    return list(registry.collect())


def write(folder: Path, classes: dict[str, float], confidence: dict[str, float]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    drift.write_reference(
        folder, drift.reference_document("m", "1", classes, confidence, "a test", "now")
    )


def gauges(out: list) -> dict[tuple[str, str], float]:
    return {(s.name, s.labels["signal"]): s.value for f in out for s in f.samples}


@pytest.mark.parametrize(
    ("expected", "actual"),
    [
        ({"a": 50, "b": 50}, {"a": 10, "b": 90}),
        ({"a": 100, "b": 0, "c": 3}, {"a": 0, "b": 7, "d": 2}),
        ({"0": 36, "1": 45}, {"0": 36, "1": 45}),
    ],
)
def test_the_psi_is_the_rollouts_own(expected: dict, actual: dict) -> None:
    assert stats.psi is drift.psi  # drift and a rollout's canary-vs-stable read alike
    value = drift.psi(expected, actual)
    assert value is not None and value >= 0


def test_reference_counts_bucket_as_the_sidecar_does() -> None:
    probabilities = np.array([[0.05, 0.95], [0.7, 0.3], [0.0, 1.0], [0.2, 0.8]], np.float32)
    classes, confidence = drift.reference_counts(probabilities)
    assert classes == {"0": 1.0, "1": 3.0}
    assert sum(confidence.values()) == 4
    assert confidence["0.95"] == 1 and confidence["0.7"] == 1 and confidence["1.0"] == 1
    assert confidence["0.9"] == 1  # float32 0.8 is a hair over 0.8, as the sidecar sees it
    assert list(confidence) == list(drift.CONFIDENCE_BINS)


def test_a_reference_with_other_buckets_is_refused_saying_so(tmp_path: Path) -> None:
    path = tmp_path / drift.REFERENCE_FILE
    path.write_text(json.dumps({"classes": {"0": 3}, "confidence": {"0.5": 1, "+Inf": 2}}))
    with pytest.raises(drift.ReferenceError, match="not the sidecar's"):
        drift.load_reference(path)
    path.write_text("{not json")
    with pytest.raises(drift.ReferenceError, match="cannot be read"):
        drift.load_reference(path)


def test_the_window_holds_the_last_rows_and_starts_again_after_a_restart() -> None:
    windows = drift.Windows(100, None)
    counts, kept = windows.window([], {"a": 30.0})
    assert counts == {"a": 30.0}  # until the window fills: every row since the start
    counts, kept = windows.window(kept, {"a": 60.0, "b": 50.0})
    assert counts == {"a": 60.0, "b": 50.0}
    counts, kept = windows.window(kept, {"a": 60.0, "b": 200.0})
    assert counts == {"a": 0.0, "b": 150.0}  # since the newest reading 100+ rows back
    assert len(kept) <= 6
    counts, kept = windows.window(kept, {"a": 5.0})  # counters went back: a restart
    assert counts == {"a": 5.0} and len(kept) == 1


def test_matching_traffic_drifts_little_and_one_class_a_lot(tmp_path: Path) -> None:
    folder = tmp_path / "m" / "1"
    rng = np.random.default_rng(0)
    reference = {str(c): 100.0 for c in range(10)}
    conf = rng.uniform(0.5, 1.0, 1000)
    _, bins = drift.reference_counts(np.stack([conf, 1 - conf], axis=1))
    write(folder, reference, bins)
    version = Version("m", "1")
    drift.configure(200)
    drift.watch(version, folder)  # type: ignore[arg-type]
    steady = gauges(drift.derive(families({str(c): 30 for c in range(10)}, list(conf[:300]))))
    assert steady[("weir_prediction_drift", "class")] < 0.05
    assert steady[("weir_prediction_drift", "confidence")] < 0.1
    assert steady[("weir_prediction_drift_rows", "class")] == 300
    shifted = {str(c): 30 for c in range(10)}
    shifted["3"] += 400
    after = gauges(drift.derive(families(shifted, [*conf[:300], *[0.99] * 400])))
    assert after[("weir_prediction_drift_rows", "class")] == 400  # the last rows only
    assert after[("weir_prediction_drift", "class")] > 2
    assert after[("weir_prediction_drift", "confidence")] > 1
    assert math.isfinite(after[("weir_prediction_drift", "class")])
    del version  # a retired version reports nothing
    import gc

    gc.collect()
    assert gauges(drift.derive(families(shifted, []))) == {}
