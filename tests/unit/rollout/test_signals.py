"""Reading a rollout's signals: the edge's and sidecars' exposition text, Prometheus vectors,
and the queries that sum a fleet."""

from __future__ import annotations

import math

from scripts.rollout.signals import parse_text, parse_vectors, promql

EDGE = """\
# TYPE weir_edge_requests_total counter
weir_edge_requests_total{model="digits",version="1",status="200"} 900
weir_edge_requests_total{model="digits",version="1",status="400"} 7
weir_edge_requests_total{model="digits",version="3",status="200"} 95
weir_edge_requests_total{model="digits",version="",status="503"} 4
weir_edge_requests_total{model="cnn",version="1",status="200"} 50
# TYPE weir_edge_server_failures_total counter
weir_edge_server_failures_total{model="digits",version="3",status="500"} 5
# TYPE weir_edge_upstream_response_seconds histogram
weir_edge_upstream_response_seconds_bucket{model="digits",version="3",le="0.001"} 90
weir_edge_upstream_response_seconds_bucket{model="digits",version="3",le="0.0025"} 95
weir_edge_upstream_response_seconds_bucket{model="digits",version="3",le="+Inf"} 95
weir_edge_upstream_response_seconds_sum{model="digits",version="3"} 0.05
weir_edge_upstream_response_seconds_count{model="digits",version="3"} 95
"""

SIDECAR = """\
# TYPE weir_prediction_confidence histogram
weir_prediction_confidence_bucket{model="digits",version="3",le="0.5"} 10.0
weir_prediction_confidence_bucket{model="digits",version="3",le="1.0"} 95.0
weir_prediction_confidence_bucket{model="digits",version="3",le="+Inf"} 95.0
weir_prediction_confidence_count{model="digits",version="3"} 95.0
weir_prediction_confidence_sum{model="digits",version="3"} 80.0
# TYPE weir_predicted_class counter
weir_predicted_class_total{class="0",model="digits",version="3"} 60.0
weir_predicted_class_total{class="7",model="digits",version="3"} 35.0
weir_predicted_class_created{class="7",model="digits",version="3"} 1.7e9
"""


def test_edge_and_sidecar_texts_give_each_version_its_signals() -> None:
    signals = parse_text([EDGE, SIDECAR, SIDECAR], "digits")
    assert set(signals) == {"1", "3"}  # the placeholder's "" version and cnn left out
    stable, canary = signals["1"], signals["3"]
    assert stable.requests == 907 and stable.client_errors == 7 and stable.server_failures == 0
    assert canary.requests == 95 and canary.server_failures == 5 and canary.attempts == 100
    assert canary.latency is not None
    assert canary.latency.bounds == (0.001, 0.0025, math.inf)
    assert canary.latency.counts == (90, 5, 0)
    # Two sidecars (devices) are summed.
    assert canary.confidence is not None and canary.confidence.counts == (20, 170, 0)
    assert dict(canary.classes) == {"0": 120, "7": 70}


def test_the_queries_sum_every_replica_over_the_window() -> None:
    queries = promql("digits", 59.6)
    assert queries["weir_edge_requests_total"] == (
        'sum by (version, status) (increase(weir_edge_requests_total{model="digits"}[60s]))'
    )
    assert "sum by (version, le)" in queries["weir_edge_upstream_response_seconds_bucket"]
    assert "sum by (version, class)" in queries["weir_predicted_class_total"]


def test_prometheus_vectors_give_the_same_signals() -> None:
    signals = parse_vectors(
        {
            "weir_edge_requests_total": [
                {"metric": {"version": "3", "status": "200"}, "value": [1.0, "95"]},
                {"metric": {"version": "3", "status": "404"}, "value": [1.0, "2"]},
            ],
            "weir_edge_server_failures_total": [
                {"metric": {"version": "3", "status": "500"}, "value": [1.0, "5"]}
            ],
            "weir_predicted_class_total": [
                {"metric": {"version": "3", "class": "1"}, "value": [1.0, "97"]}
            ],
        }
    )
    canary = signals["3"]
    assert canary.requests == 97 and canary.client_errors == 2 and canary.server_failures == 5
    assert dict(canary.classes) == {"1": 97}
