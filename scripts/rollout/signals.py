"""Where a rollout's signals come from, per version of one model.

- Under `weir up` (`LocalSignals`): the edge's `/metrics` (outcomes, latency) and each local
  sidecar's, relayed by the edge at `/metrics/sidecars/<sidecar>` (confidence, classes),
  read through the admin API and summed. A window is the difference of two readings.
- With a Prometheus (`PrometheusSignals`, several edge replicas): `sum by (version, ...)
  (increase(metric[window]))` over every replica and sidecar it scrapes, so the verdict is
  on the fleet's traffic; `increase()` also survives a replica's restart.
"""

from __future__ import annotations

import json
import math
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from scripts.edge.admin_client import AdminClient, AdminError
from scripts.rollout.counts import Histogram, Signals
from scripts.runtime import RuntimeDir

REQUESTS = "weir_edge_requests_total"
FAILURES = "weir_edge_server_failures_total"
LATENCY = "weir_edge_upstream_response_seconds_bucket"
CONFIDENCE = "weir_prediction_confidence_bucket"
CLASSES = "weir_predicted_class_total"
SHADOW_COMPARED = "weir_shadow_comparisons_total"
SHADOW_AGREED = "weir_shadow_agreements_total"


class SignalsError(RuntimeError):
    """The signals could not be read; the message says from where and why."""


@dataclass
class _Acc:
    requests: float = 0.0
    failures: float = 0.0
    client: float = 0.0
    latency: dict[float, float] = field(default_factory=lambda: defaultdict(float))
    confidence: dict[float, float] = field(default_factory=lambda: defaultdict(float))
    classes: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    shadow_compared: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    shadow_agreed: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def signals(self) -> Signals:
        return Signals(
            self.requests,
            self.failures,
            self.client,
            Histogram.from_cumulative(self.latency) if self.latency else None,
            Histogram.from_cumulative(self.confidence) if self.confidence else None,
            dict(self.classes),
            dict(self.shadow_compared),
            dict(self.shadow_agreed),
        )


def _le(value: str) -> float:
    return math.inf if value == "+Inf" else float(value)


def add_sample(acc: dict[str, _Acc], name: str, labels: dict[str, str], value: float) -> None:
    """One sample of the model's (already filtered by model) into its version's counts."""
    version = labels.get("version", "")
    if not version:
        return
    a = acc.setdefault(version, _Acc())
    if name == REQUESTS:
        a.requests += value
        if labels.get("status", "").startswith("4"):
            a.client += value
    elif name == FAILURES:
        a.failures += value
    elif name == LATENCY:
        a.latency[_le(labels["le"])] += value
    elif name == CONFIDENCE:
        a.confidence[_le(labels["le"])] += value
    elif name == CLASSES:
        a.classes[labels["class"]] += value
    elif name == SHADOW_COMPARED:
        a.shadow_compared[labels["shadow"]] += value
    elif name == SHADOW_AGREED:
        a.shadow_agreed[labels["shadow"]] += value


def parse_text(texts: Iterable[str], model: str) -> dict[str, Signals]:
    """Prometheus exposition texts (the edge's and each sidecar's) -> signals per version."""
    acc: dict[str, _Acc] = {}
    wanted = {REQUESTS, FAILURES, LATENCY, CONFIDENCE, CLASSES, SHADOW_COMPARED, SHADOW_AGREED}
    for text in texts:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name in wanted and sample.labels.get("model") == model:
                    add_sample(acc, sample.name, sample.labels, sample.value)
    return {version: a.signals() for version, a in acc.items()}


@dataclass(frozen=True)
class LocalSignals:
    """The edge of this runtime directory, and the sidecars it relays."""

    runtime: RuntimeDir

    def sidecars(self) -> list[str]:
        return sorted(
            p.name.removeprefix("sidecar-").removesuffix(".sock")
            for p in self.runtime.run.glob("sidecar-*.sock")
        )

    def read(self, client: AdminClient, model: str) -> dict[str, Signals]:
        texts = []
        for path in ["/metrics", *(f"/metrics/sidecars/{s}" for s in self.sidecars())]:
            try:
                status, body = client.request("GET", path)
            except AdminError as exc:
                raise SignalsError(f"cannot read {path} from the edge: {exc}") from None
            if status != 200 or not isinstance(body, str):
                raise SignalsError(f"the edge answered {status} for {path}; retrying next tick")
            texts.append(body)
        return parse_text(texts, model)


# --------------------------------------------------------------------------- Prometheus


def promql(model: str, seconds: float) -> dict[str, str]:
    """The queries of one window, by signal; each sums over every replica and sidecar."""
    quoted = json.dumps(model)  # a model name is [a-z0-9_-]: nothing to escape, but be sure
    window = f"{max(1, round(seconds))}s"

    def inc(metric: str, by: str) -> str:
        return f"sum by ({by}) (increase({metric}{{model={quoted}}}[{window}]))"

    return {
        REQUESTS: inc(REQUESTS, "version, status"),
        FAILURES: inc(FAILURES, "version, status"),
        LATENCY: inc(LATENCY, "version, le"),
        CONFIDENCE: inc(CONFIDENCE, "version, le"),
        CLASSES: inc(CLASSES, "version, class"),
        SHADOW_COMPARED: inc(SHADOW_COMPARED, "version, shadow"),
        SHADOW_AGREED: inc(SHADOW_AGREED, "version, shadow"),
    }


def parse_vectors(results: dict[str, list[dict[str, object]]]) -> dict[str, Signals]:
    """Prometheus instant-query results (`data.result` per query) -> signals per version."""
    acc: dict[str, _Acc] = {}
    for name, vector in results.items():
        for item in vector:
            labels = item["metric"]
            value = item["value"]
            assert isinstance(labels, dict) and isinstance(value, list)
            add_sample(acc, name, {str(k): str(v) for k, v in labels.items()}, float(value[1]))
    return {version: a.signals() for version, a in acc.items()}


@dataclass(frozen=True)
class PrometheusSignals:
    url: str  # http://prometheus:9090
    timeout: float = 10.0

    def query(self, expr: str, at: float | None = None) -> list[dict[str, object]]:
        params = {"query": expr, **({"time": f"{at:.3f}"} if at is not None else {})}
        url = f"{self.url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as answer:
                data = json.load(answer)
        except (OSError, ValueError) as exc:
            raise SignalsError(f"Prometheus at {self.url} does not answer: {exc}") from None
        if data.get("status") != "success":
            raise SignalsError(f"Prometheus refused {expr!r}: {data.get('error')}")
        return list(data["data"]["result"])

    def window(self, model: str, seconds: float, at: float | None = None) -> dict[str, Signals]:
        """The window of `seconds` ending at `at` (now), summed over the fleet."""
        queries = promql(model, seconds)
        return parse_vectors({name: self.query(expr, at) for name, expr in queries.items()})
