"""The bench's pure helpers: goals of the isolation table, ratios to the default, the list of
sidecar worker classes, PSS. No timing is asserted: these check arithmetic and plumbing."""

from __future__ import annotations

import os
from pathlib import Path

from sidecar.settings import Settings
from tests.bench.isolation import SAME, SEPARATE, Isolation, Layout, Probe
from tests.bench.isolation_report import isolation_table, p99_ratio, verdicts
from tests.bench.loadgen import LoadResult
from tests.bench.procs import Server, pss_bytes, rss_bytes
from tests.bench.report import Row, x_default
from tests.bench.servers import Target, sidecar_worker_classes


def load(p99_ms: float, requests: int = 100) -> LoadResult:
    return LoadResult(requests, 1.0, p99_ms / 2, p99_ms, p99_ms, p99_ms, 0, 0)


def target(name: str) -> Target:
    return Target(name, "weir", Server(name, ["true"], 1, Path("/dev/null")))


def isolation(name: str, layout: str, alone: float, loaded: float, health: float) -> Isolation:
    t = target(name)
    result = Isolation(Layout(name, name == "default", layout, t, t))
    result.alone.append(Probe(load(alone), load(1.0), None, {}))
    result.loaded.append(Probe(load(loaded), load(health), load(50.0), {name: (2 << 20, 1 << 20)}))
    return result


def test_same_pool_goals_are_health_p99_and_five_times_alone() -> None:
    met = [v.met for v in verdicts(isolation("default", SAME, 2.0, 9.0, 9.9))]
    assert met == [True, True]
    missed = [v.met for v in verdicts(isolation("default", SAME, 2.0, 10.1, 10.1))]
    assert missed == [False, False]


def test_separate_pools_goal_is_one_and_a_half_times_alone() -> None:
    result = isolation("x", SEPARATE, 2.0, 3.0, 1.0)
    assert p99_ratio(result) == 1.5
    assert [v.met for v in verdicts(result)] == [True]


def test_isolation_table_compares_with_the_default_in_the_same_layout() -> None:
    table = isolation_table(
        [isolation("default", SAME, 2.0, 20.0, 5.0), isolation("other", SAME, 2.0, 10.0, 5.0)]
    )
    (other,) = [line for line in table.splitlines() if line.startswith("| other ")]
    assert "| 0.50x |" in other


def test_x_default_is_req_per_second_over_the_default_in_the_group() -> None:
    rows = [
        Row("digits/v2", "json", 64, "d", "weir", load(1.0, 200), None, None, default=True),
        Row("digits/v2", "json", 64, "g", "weir", load(1.0, 300), None, None),
        Row("digits/v2", "json", 16, "g", "weir", load(1.0, 300), None, None),
    ]
    assert x_default(rows[1], rows) == 1.5
    assert x_default(rows[0], rows) is None
    assert x_default(rows[2], rows) is None  # no default in that group


def test_worker_classes_come_from_the_sidecar_settings() -> None:
    classes = sidecar_worker_classes()
    assert Settings().worker_class in classes
    assert "gthread" in classes


def test_pss_of_this_process_is_positive_and_at_most_its_rss() -> None:
    pid = os.getpid()
    assert 0 < pss_bytes([pid]) <= rss_bytes([pid])
