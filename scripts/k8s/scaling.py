"""Autoscaling for `weir k8s`: on inference pressure, or on CPU as the fallback.

The release's `scaling: {metric, target, min, max}` chooses the signal:
- `queue`: mean time a request waits in the batching queue over mean compute time per batch
  (dimensionless; the whole fleet's ratio, so the HPA scales by current x ratio / target).
  Batching itself waits up to `max_queue_delay_ms` for company, so the idle ratio is above 0:
  set the target above it (2-4 for the sample models).
- `inflight`: requests in flight per pod. The sidecars export no in-flight gauge yet, so the
  query uses Little's law on an existing metric: the rate of summed request seconds
  (`weir_request_duration_seconds_sum`) is the mean number of requests in flight.
- `cpu` (or no `scaling`): an HPA on CPU utilization of the containers' requests.
For `queue` and `inflight`, `--autoscaler keda` renders a KEDA ScaledObject with a Prometheus
trigger; `--autoscaler prometheus-adapter` an HPA on a per-pod custom metric plus the
prometheus-adapter rule (in a ConfigMap, to merge into the adapter's rules) that serves it.
Both query the series of the `weir-sidecars` scrape job: the sidecars' metrics as the pods'
metrics listener (edge.metrics_listen) relays them, scraped by the shipped Kubernetes scrape
config (scripts/observability/prometheus.py; the one-machine config names its job the same).
"""

from __future__ import annotations

from typing import Any

from scripts.k8s.pod import APP, LABELS
from scripts.release import Release

AUTOSCALERS = ("keda", "prometheus-adapter")
PROMETHEUS = "http://prometheus-operated.monitoring.svc:9090"
WINDOW = "2m"
DEFAULT_CPU = 70
# The scrape job of the sidecars' metrics (relayed by the edge) in the shipped scrape configs.
SIDECARS_JOB = 'job="weir-sidecars"'
# The custom metric each pressure signal is served as by prometheus-adapter.
ADAPTER_METRIC = {"queue": "weir_queue_to_compute_ratio", "inflight": "weir_requests_in_flight"}


def _rate(metric: str, selector: str = "", by: str = "") -> str:
    group = f" by ({by})" if by else ""
    series = f"{metric}{{{selector}}}" if selector else metric
    return f"sum{group} (rate({series}[{WINDOW}]))"


def _mean(histogram: str, selector: str = "", by: str = "") -> str:
    return (
        f"{_rate(histogram + '_sum', selector, by)} / {_rate(histogram + '_count', selector, by)}"
    )


def pressure_query(metric: str, selector: str = "", by: str = "") -> str:
    """The PromQL for a pressure signal over the sidecars' scrape job: fleet-wide, or per `by`
    group (e.g. pod); `selector` adds matchers."""
    selector = f"{SIDECARS_JOB},{selector}" if selector else SIDECARS_JOB
    if metric == "queue":
        queue = _mean("weir_queue_duration_seconds", selector, by)
        compute = _mean("weir_compute_duration_seconds", selector, by)
        return f"({queue}) / ({compute})"
    if metric == "inflight":
        return _rate("weir_request_duration_seconds_sum", selector, by)
    raise ValueError(f"no pressure query for {metric!r}")


def quantity(value: float) -> str:
    """A Kubernetes quantity: whole numbers as they are, else milli-units."""
    return str(int(value)) if float(value).is_integer() else f"{round(value * 1000)}m"


def _target_ref() -> dict[str, str]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "name": APP}


def hpa(min_replicas: int, max_replicas: int, metric: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": APP, "labels": LABELS},
        "spec": {
            "scaleTargetRef": _target_ref(),
            "minReplicas": min_replicas,
            "maxReplicas": max(max_replicas, min_replicas),
            "metrics": [metric],
        },
    }


def cpu_metric(percent: float) -> dict[str, Any]:
    return {
        "type": "Resource",
        "resource": {
            "name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": round(percent)},
        },
    }


def scaled_object(
    metric: str, target: float, min_replicas: int, max_replicas: int, prometheus: str
) -> dict[str, Any]:
    """KEDA: `queue` is a fleet-wide ratio (Value), `inflight` a total divided per pod
    (AverageValue: replicas = total / target)."""
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": APP, "labels": LABELS},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": APP},
            "minReplicaCount": min_replicas,
            "maxReplicaCount": max(max_replicas, min_replicas),
            "pollingInterval": 15,
            "cooldownPeriod": 300,
            "triggers": [
                {
                    "type": "prometheus",
                    "metricType": "Value" if metric == "queue" else "AverageValue",
                    "metadata": {
                        "serverAddress": prometheus,
                        "query": pressure_query(metric),
                        "threshold": f"{target:g}",
                    },
                }
            ],
        },
    }


def adapter_rule(metric: str) -> dict[str, Any]:
    """The prometheus-adapter rule serving the per-pod custom metric (pods must carry
    `namespace` and `pod` labels, as the usual kubernetes_sd relabelling gives them)."""
    series = {
        "queue": "weir_queue_duration_seconds_sum",
        "inflight": "weir_request_duration_seconds_sum",
    }[metric]
    query = pressure_query(metric, "<<.LabelMatchers>>", "<<.GroupBy>>")
    return {
        "seriesQuery": f'{series}{{{SIDECARS_JOB},namespace!="",pod!=""}}',
        "resources": {
            "overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}
        },
        "name": {"matches": f"^{series}$", "as": ADAPTER_METRIC[metric]},
        "metricsQuery": query,
    }


def adapter_documents(
    metric: str, target: float, min_replicas: int, max_replicas: int
) -> list[dict[str, Any]]:
    import yaml

    pods_metric = {
        "type": "Pods",
        "pods": {
            "metric": {"name": ADAPTER_METRIC[metric]},
            "target": {"type": "AverageValue", "averageValue": quantity(target)},
        },
    }
    rules = {"rules": [adapter_rule(metric)]}
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{APP}-prometheus-adapter-rules", "labels": LABELS},
        "data": {"config.yaml": yaml.safe_dump(rules, sort_keys=False)},
    }
    return [hpa(min_replicas, max_replicas, pods_metric), config]


def autoscaling(
    release: Release, replicas: int, max_replicas: int, autoscaler: str, prometheus: str
) -> list[dict[str, Any]]:
    """The autoscaler documents for the release (replicas: the minimum)."""
    scaling = release.scaling
    if scaling is None or scaling.metric == "cpu":
        target = scaling.target if scaling else DEFAULT_CPU
        return [hpa(replicas, max_replicas, cpu_metric(target))]
    if autoscaler == "keda":
        return [scaled_object(scaling.metric, scaling.target, replicas, max_replicas, prometheus)]
    if autoscaler == "prometheus-adapter":
        return adapter_documents(scaling.metric, scaling.target, replicas, max_replicas)
    raise ValueError(f"unknown autoscaler {autoscaler!r}: {', '.join(AUTOSCALERS)}")
