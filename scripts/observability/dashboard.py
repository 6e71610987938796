"""Weir's Grafana dashboard, generated so that every query is reviewable in one place.

    python -m scripts.observability.dashboard > scripts/observability/grafana-dashboard.json

Rows: traffic and errors, latency, batching, the grey release's confidence and predicted
classes side by side per version (drift shows there first), each version's live traffic share
(a rollout's step), drift against each version's reference, shadow agreement, and the
edge's protections
(breakers, 429s, fallbacks).
A test keeps the committed JSON equal to this output and checks every metric it queries is
really exported by a running edge and sidecar.
"""

from __future__ import annotations

import json
import sys
from typing import Any

RATE = "1m"
BY_VERSION = "model, version"
MODEL = 'model=~"$model"'


def quantiles(metric: str, by: str = BY_VERSION) -> list[tuple[str, str]]:
    return [
        (
            f"histogram_quantile({q}, sum by (le, {by}) "
            f"(rate({metric}_bucket{{{MODEL}}}[{RATE}])))",
            f"p{round(q * 100)} {{{{model}}}} v{{{{version}}}}",
        )
        for q in (0.5, 0.99)
    ]


# (title, unit, panel type, [(expr, legend)])
PANELS: list[tuple[str, str, str, list[tuple[str, str]]]] = [
    (
        "Edge requests by version and status",
        "reqps",
        "timeseries",
        [
            (
                f"sum by (model, version, status) "
                f"(rate(weir_edge_requests_total{{{MODEL}}}[{RATE}]))",
                "{{model}} v{{version}} {{status}}",
            )
        ],
    ),
    (
        "Sidecar failures by reason",
        "reqps",
        "timeseries",
        [
            (
                f"sum by (model, version, reason) "
                f"(rate(weir_inference_request_failure_total{{{MODEL}}}[{RATE}]))",
                "{{model}} v{{version}} {{reason}}",
            ),
            (
                f"sum by (model, version) "
                f"(rate(weir_inference_request_success_total{{{MODEL}}}[{RATE}]))",
                "{{model}} v{{version}} success",
            ),
        ],
    ),
    ("Edge upstream latency", "s", "timeseries", quantiles("weir_edge_upstream_response_seconds")),
    ("Sidecar request latency", "s", "timeseries", quantiles("weir_request_duration_seconds")),
    ("Queue wait", "s", "timeseries", quantiles("weir_queue_duration_seconds")),
    ("Compute per batch", "s", "timeseries", quantiles("weir_compute_duration_seconds")),
    (
        "Mean batch size",
        "short",
        "timeseries",
        [
            (
                f"sum by ({BY_VERSION}) (rate(weir_batch_size_sum{{{MODEL}}}[{RATE}])) / "
                f"sum by ({BY_VERSION}) (rate(weir_batch_size_count{{{MODEL}}}[{RATE}]))",
                "{{model}} v{{version}}",
            ),
            (
                f"sum by ({BY_VERSION}) (rate(weir_inference_count_total{{{MODEL}}}[{RATE}])) / "
                f"sum by ({BY_VERSION}) (rate(weir_inference_exec_count_total{{{MODEL}}}[{RATE}]))",
                "{{model}} v{{version}} rows/execution",
            ),
        ],
    ),
    (
        "Queue depth",
        "short",
        "timeseries",
        [(f"sum by ({BY_VERSION}) (weir_queue_depth{{{MODEL}}})", "{{model}} v{{version}}")],
    ),
    (
        "Top-class confidence by version (grey release: compare side by side)",
        "short",
        "timeseries",
        [
            *quantiles("weir_prediction_confidence"),
            (
                f"sum by ({BY_VERSION}) (rate(weir_prediction_confidence_sum{{{MODEL}}}[5m])) / "
                f"sum by ({BY_VERSION}) (rate(weir_prediction_confidence_count{{{MODEL}}}[5m]))",
                "mean {{model}} v{{version}}",
            ),
        ],
    ),
    (
        "Confidence distribution by version",
        "short",
        "bargauge",
        [
            (
                f"sum by (version, le) "
                f"(increase(weir_prediction_confidence_bucket{{{MODEL}}}[5m]))",
                "v{{version}} le {{le}}",
            )
        ],
    ),
    (
        "Predicted classes by version (share of its answers; a rollout compares them)",
        "percentunit",
        "bargauge",
        [
            (
                f"sum by ({BY_VERSION}, class) "
                f"(increase(weir_predicted_class_total{{{MODEL}}}[5m])) / ignoring(class) "
                f"group_left sum by ({BY_VERSION}) "
                f"(increase(weir_predicted_class_total{{{MODEL}}}[5m]))",
                "{{model}} v{{version}} class {{class}}",
            )
        ],
    ),
    (
        "Prediction drift: PSI against each version's reference (over 0.25: a real shift)",
        "short",
        "timeseries",
        [
            (
                f"max by ({BY_VERSION}, signal) (weir_prediction_drift{{{MODEL}}})",
                "{{model}} v{{version}} {{signal}}",
            )
        ],
    ),
    (
        "Shadow agreement: compared rows whose top-1 class the shadow shares with the live answer",
        "percentunit",
        "timeseries",
        [
            (
                "sum by (model, version, shadow) "
                f"(rate(weir_shadow_agreements_total{{{MODEL}}}[{RATE}]))\n"
                "  / sum by (model, version, shadow) "
                f"(rate(weir_shadow_comparisons_total{{{MODEL}}}[{RATE}]))",
                "{{model}} shadow v{{shadow}} against live v{{version}}",
            )
        ],
    ),
    (
        "Traffic share by version, percent (live weights: a rollout's current step)",
        "short",
        "timeseries",
        [
            (
                f"max by ({BY_VERSION}) (weir_edge_version_weight{{{MODEL}}})",
                "{{model}} v{{version}}",
            )
        ],
    ),
    (
        "Breaker state (0 closed, 1 open, 2 half-open)",
        "short",
        "timeseries",
        [(f"max by ({BY_VERSION}) (weir_edge_breaker_state{{{MODEL}}})", "{{model}} v{{version}}")],
    ),
    (
        "Breaker transitions",
        "short",
        "timeseries",
        [
            (
                f"sum by (model, version, to) "
                f"(increase(weir_edge_breaker_transitions_total{{{MODEL}}}[{RATE}]))",
                "{{model}} v{{version}} -> {{to}}",
            )
        ],
    ),
    (
        "Rate-limited (429) and fallback answers",
        "reqps",
        "timeseries",
        [
            (
                f"sum by (model) (rate(weir_edge_rate_limited_total{{{MODEL}}}[{RATE}]))",
                "{{model}} 429",
            ),
            (
                f"sum by (model, reason) (rate(weir_edge_fallbacks_total{{{MODEL}}}[{RATE}]))",
                "{{model}} fallback {{reason}}",
            ),
        ],
    ),
    (
        "Model load seconds",
        "s",
        "stat",
        [(f"max by ({BY_VERSION}) (weir_model_load_seconds{{{MODEL}}})", "{{model}} v{{version}}")],
    ),
]


def panel(index: int, title: str, unit: str, kind: str, targets: list[tuple[str, str]]) -> dict:
    return {
        "id": index + 1,
        "title": title,
        "type": kind,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": (index % 2) * 12, "y": (index // 2) * 8},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "bottom"}},
        "targets": [
            {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(targets)
        ],
    }


def dashboard() -> dict[str, Any]:
    return {
        "uid": "weir-overview",
        "title": "Weir: edge and sidecars",
        "tags": ["weir", "inference"],
        "timezone": "browser",
        "refresh": "10s",
        "schemaVersion": 39,
        "time": {"from": "now-30m", "to": "now"},
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus"},
                {
                    "name": "model",
                    "type": "query",
                    "datasource": {"type": "prometheus", "uid": "${datasource}"},
                    "query": "label_values(weir_inference_count_total, model)",
                    "includeAll": True,
                    "multi": True,
                    "current": {"text": "All", "value": "$__all"},
                },
            ]
        },
        "panels": [panel(i, *spec) for i, spec in enumerate(PANELS)],
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
