"""Drift: each model version's live predicted-class and confidence distributions against a
reference, as `weir_prediction_drift{model,version,signal}` (PSI) beside the rows it was
measured on (`weir_prediction_drift_rows`).

The reference is `reference.json` in the version's folder (`models/<name>/<version>/`):
counts per predicted class and per confidence bucket (the buckets of
`weir_prediction_confidence`), written by `models/build_samples.py` for the samples from their
held-out data, or by `weir drift capture MODEL VERSION` from a live edge. A version without
one has no drift metric. It is read again whenever the file changes (checked at each scrape).

Nothing is added to the hot path: the live distributions are the counters every request
already writes (`weir_predicted_class_total`, `weir_prediction_confidence_bucket`), summed
over the sidecar's workers by the multiprocess collector. At scrape time the window is their
difference from an earlier scrape's reading: the newest one at least `window_rows` rows back
(so a window holds between `window_rows` and about 1.25 x that many rows; until the sidecar
has answered that many, every row since it started). The readings live in one small file
beside the multiprocess files, under a lock, so whichever worker answers a scrape measures
the same window.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import weakref
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from sidecar import metrics
from sidecar.metrics import CONFIDENCE_BUCKETS

if TYPE_CHECKING:
    from sidecar.serving.model import ModelVersion

log = logging.getLogger(__name__)

REFERENCE_FILE = "reference.json"
CLASS, CONFIDENCE = "class", "confidence"
SIGNALS = (CLASS, CONFIDENCE)
# The confidence histogram's buckets as its `le` labels: a reference's confidence keys.
CONFIDENCE_BINS = tuple(floatToGoString(b) for b in (*CONFIDENCE_BUCKETS, math.inf))
# Rows added to each bin (Jeffreys' prior): a zero would make PSI infinite. The rollout's
# canary-vs-stable PSI is this one too (scripts/rollout/stats.py imports it).
PSI_PRIOR = 0.5
DEFAULT_WINDOW_ROWS = 1000
STATE_FILE = "drift-windows.json"

_SOURCES = {
    CLASS: "weir_predicted_class_total",
    CONFIDENCE: "weir_prediction_confidence_bucket",
}


class ReferenceError(ValueError):
    """A reference file that cannot be used; the message says why."""


@dataclass(frozen=True)
class Reference:
    """Counts per bin of each signal (a signal may be missing), as captured."""

    signals: Mapping[str, Mapping[str, float]]
    rows: float
    source: str


def reference_document(
    model: str,
    version: str,
    classes: Mapping[str, float],
    confidence: Mapping[str, float],
    source: str,
    captured: str | None,
) -> dict[str, Any]:
    """The JSON a reference file holds: counts per class (the class label of
    weir_predicted_class_total) and per confidence bucket (its `le`, not cumulative)."""
    bins = {b: float(confidence.get(b, 0.0)) for b in CONFIDENCE_BINS}
    return {
        "model": model,
        "version": version,
        "rows": float(sum(classes.values()) or sum(bins.values())),
        "source": source,
        **({"captured": captured} if captured else {}),
        "classes": {k: float(v) for k, v in sorted(classes.items(), key=_class_order)},
        "confidence": bins,
    }


def reference_counts(probabilities: np.ndarray) -> tuple[dict[str, float], dict[str, float]]:
    """Counts per top-1 class and per confidence bucket of these rows (probabilities), as
    the sidecar counts them (weir_predicted_class_total, weir_prediction_confidence)."""
    rows = probabilities.reshape(probabilities.shape[0], -1).astype(np.float64)
    classes = np.bincount(rows.argmax(axis=1), minlength=rows.shape[1])
    bounds = [*CONFIDENCE_BUCKETS, math.inf]
    buckets = np.bincount(
        np.searchsorted(bounds, rows.max(axis=1), side="left"), minlength=len(bounds)
    )
    return (
        {str(i): float(c) for i, c in enumerate(classes.tolist())},
        {b: float(c) for b, c in zip(CONFIDENCE_BINS, buckets.tolist(), strict=True)},
    )


def _class_order(item: tuple[str, float]) -> tuple[int, str]:
    key = item[0]
    return (int(key), "") if key.isdigit() else (1 << 30, key)


def write_reference(folder: Path, document: dict[str, Any]) -> Path:
    """Write atomically: a sidecar reading it at a scrape sees the old file or the new."""
    path = folder / REFERENCE_FILE
    tmp = folder / f".{REFERENCE_FILE}.tmp{os.getpid()}"
    tmp.write_text(json.dumps(document, indent=1) + "\n")
    os.replace(tmp, path)
    return path


def load_reference(path: Path) -> Reference:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ReferenceError(f"{path} cannot be read as JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ReferenceError(f"{path} is not a JSON object")
    signals: dict[str, dict[str, float]] = {}
    for signal, key in ((CLASS, "classes"), (CONFIDENCE, "confidence")):
        counts = data.get(key)
        if counts is None:
            continue
        if not isinstance(counts, dict) or not all(
            isinstance(v, int | float) and v >= 0 for v in counts.values()
        ):
            raise ReferenceError(f"{path}: {key!r} must map bins to counts of at least 0")
        if signal == CONFIDENCE and set(counts) != set(CONFIDENCE_BINS):
            raise ReferenceError(
                f"{path}: the confidence buckets {sorted(counts)} are not the sidecar's "
                f"{list(CONFIDENCE_BINS)}: capture the reference again"
            )
        if sum(counts.values()) > 0:
            signals[signal] = {str(k): float(v) for k, v in counts.items()}
    if not signals:
        raise ReferenceError(f"{path} holds no counts (keys 'classes', 'confidence')")
    rows = max(sum(c.values()) for c in signals.values())
    return Reference(signals, rows, str(data.get("source", "")))


def psi(expected: Mapping[str, float], actual: Mapping[str, float]) -> float | None:
    """PSI of `actual` against `expected` (counts per bin): the sum over bins of
    (a - e) * ln(a / e) on shares, PSI_PRIOR rows more in every bin either side uses.
    < 0.1 is steady, > 0.25 a real shift."""
    keys = set(expected) | set(actual)
    used = [k for k in keys if expected.get(k, 0) > 0 or actual.get(k, 0) > 0]
    e_total, a_total = sum(expected.values()), sum(actual.values())
    if e_total <= 0 or a_total <= 0:
        return None
    e_total += PSI_PRIOR * len(used)
    a_total += PSI_PRIOR * len(used)
    value = 0.0
    for key in used:
        e = (expected.get(key, 0.0) + PSI_PRIOR) / e_total
        a = (actual.get(key, 0.0) + PSI_PRIOR) / a_total
        value += (a - e) * math.log(a / e)
    return value


# --------------------------------------------------------------------------- loaded versions


class _Watched:
    """One loaded version's reference file, read again when it changes."""

    __slots__ = ("path", "reference", "stamp")

    def __init__(self, folder: Path) -> None:
        self.path = folder / REFERENCE_FILE
        self.stamp: tuple[int, int] | None = None
        self.reference: Reference | None = None

    def current(self, name: str) -> Reference | None:
        try:
            stat = self.path.stat()
        except OSError:
            self.stamp, self.reference = None, None
            return None
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self.stamp:
            self.stamp = stamp
            try:
                self.reference = load_reference(self.path)
                log.info(
                    "drift of %s: reference of %g rows (%s)",
                    name,
                    self.reference.rows,
                    self.reference.source or "source not given",
                )
            except ReferenceError as exc:
                self.reference = None
                log.warning("drift of %s is not measured: %s", name, exc)
        return self.reference


# A retired version drops out with its ModelVersion: no drift is reported for it.
_WATCHED: weakref.WeakKeyDictionary[ModelVersion, _Watched] = weakref.WeakKeyDictionary()


def watch(version: ModelVersion, folder: Path) -> None:
    """Report drift for this loaded version (when its folder holds a reference)."""
    _WATCHED[version] = _Watched(folder)


# --------------------------------------------------------------------------- windows


class Windows:
    """Earlier scrapes' cumulative readings per model, version and signal: each window's
    start. In a file beside the multiprocess files (`directory`), else in memory."""

    def __init__(self, window_rows: int, directory: str | None) -> None:
        self.window_rows = window_rows
        self.directory = Path(directory) if directory else None
        self.memory: dict[str, list[list[Any]]] = {}

    @contextlib.contextmanager
    def readings(self) -> Iterator[dict[str, list[list[Any]]]]:
        if self.directory is None:
            yield self.memory
            return
        path = self.directory / STATE_FILE
        with open(self.directory / f"{STATE_FILE}.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                state = json.loads(path.read_text())
            except (OSError, ValueError):
                state = {}
            yield state
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps(state))
            os.replace(tmp, path)

    def window(
        self, kept: list[list[Any]], now: Mapping[str, float]
    ) -> tuple[dict[str, float], list[list[Any]]]:
        """The counts since the window's start, and the readings to keep (at most about
        six: one is added every quarter window, those before the start are dropped)."""
        total = sum(now.values())
        if kept:
            last_total, last = kept[-1]
            if last_total > total or any(now.get(k, 0.0) < v for k, v in last.items()):
                kept = []  # the sidecar restarted: its counters began again
        start: dict[str, float] = {}
        for i in range(len(kept) - 1, -1, -1):
            if total - kept[i][0] >= self.window_rows:
                start, kept = kept[i][1], kept[i:]
                break
        counts = {k: v - start.get(k, 0.0) for k, v in now.items()}
        if not kept or total - kept[-1][0] >= self.window_rows / 4:
            kept = [*kept, [total, dict(now)]]
        return counts, kept


_windows = Windows(DEFAULT_WINDOW_ROWS, None)


def configure(window_rows: int) -> None:
    """The worker's window, and where its readings live (the multiprocess directory)."""
    global _windows
    _windows = Windows(window_rows, os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def _cumulative(families: Iterable[Metric]) -> dict[tuple[str, str, str], dict[str, float]]:
    """Per (model, version, signal): counts per bin since the sidecar started."""
    out: dict[tuple[str, str, str], dict[str, float]] = {}
    wanted = {name: signal for signal, name in _SOURCES.items()}
    for family in families:
        for sample in family.samples:
            signal = wanted.get(sample.name)
            if signal is None:
                continue
            labels = sample.labels
            key = (labels.get("model", ""), labels.get("version", ""), signal)
            counts = out.setdefault(key, {})
            label = labels["class"] if signal == CLASS else labels["le"]
            counts[label] = counts.get(label, 0.0) + sample.value
    for (_, _, signal), counts in out.items():
        if signal == CONFIDENCE:  # cumulative buckets -> one count per bucket
            cumulative = [counts.get(b, 0.0) for b in CONFIDENCE_BINS]
            counts.clear()
            previous = 0.0
            for b, c in zip(CONFIDENCE_BINS, cumulative, strict=True):
                counts[b], previous = c - previous, c
    return out


def derive(families: list[Metric]) -> list[Metric]:
    """The drift families from the scrape's others (metrics.render calls it)."""
    references = {
        (v.name, v.version): (f"{v.name} version {v.version}", w) for v, w in list(_WATCHED.items())
    }
    drift = GaugeMetricFamily(
        "weir_prediction_drift",
        "PSI of the version's live distribution of a signal (predicted class, or top-class "
        "confidence bucket) over its recent window against its reference.json.",
        labels=["model", "version", "signal"],
    )
    rows = GaugeMetricFamily(
        "weir_prediction_drift_rows",
        "Rows in the window weir_prediction_drift was measured on.",
        labels=["model", "version", "signal"],
    )
    if not references:
        return [drift, rows]
    live = _cumulative(families)
    with _windows.readings() as kept:
        for key in [k for k in kept if tuple(k.split("/")[:2]) not in references]:
            del kept[key]  # a version retired
        for (model, version), (name, watched) in sorted(references.items()):
            reference = watched.current(name)
            for signal in SIGNALS:
                key = f"{model}/{version}/{signal}"
                now = live.get((model, version, signal))
                if reference is None or signal not in reference.signals or not now:
                    kept.pop(key, None)
                    continue
                counts, kept[key] = _windows.window(kept.get(key, []), now)
                value = psi(reference.signals[signal], counts)
                if value is None:
                    continue
                drift.add_metric([model, version, signal], value)
                rows.add_metric([model, version, signal], sum(counts.values()))
    return [drift, rows]


metrics.DERIVED.append(derive)
