"""A version's counts (scripts/rollout/counts.py `Signals`: predicted classes, confidence
buckets) as its drift reference: what `weir drift capture` writes from live traffic, and what
`weir rollout` writes for a canary it promotes, from the canary's last window."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from prometheus_client.utils import floatToGoString

from scripts.rollout.counts import Signals
from sidecar.serving.drift import reference_document, write_reference

MIN_ROWS = 300  # fewer make drift noisy (two samples of one distribution differ by chance)


def rows_of(signals: Signals) -> float:
    return sum(signals.classes.values())


def document_from_signals(
    model: str, version: str, signals: Signals, source: str
) -> dict[str, Any]:
    confidence: dict[str, float] = {}
    if signals.confidence is not None:
        for bound, count in zip(signals.confidence.bounds, signals.confidence.counts, strict=True):
            confidence["+Inf" if math.isinf(bound) else floatToGoString(bound)] = count
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return reference_document(model, version, dict(signals.classes), confidence, source, stamp)


def write_from_signals(
    folder: Path, model: str, version: str, signals: Signals, source: str
) -> Path:
    """reference.json in the version's folder (the real one, through a view's symlink)."""
    return write_reference(folder.resolve(), document_from_signals(model, version, signals, source))
