"""The committed Grafana dashboard is exactly what the generator writes, and it parses."""

import json
from pathlib import Path

from scripts.observability import dashboard

COMMITTED = Path(dashboard.__file__).with_name("grafana-dashboard.json")


def test_committed_dashboard_matches_the_generator():
    assert COMMITTED.read_text() == dashboard.render(), (
        "regenerate: python -m scripts.observability.dashboard > " + str(COMMITTED)
    )


def test_every_panel_has_unique_id_and_a_query():
    panels = json.loads(COMMITTED.read_text())["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    assert all(p["targets"] and all(t["expr"] for t in p["targets"]) for p in panels)
