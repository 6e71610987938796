"""The edges a rollout steps: `--edge` addresses, one change sent to every edge with what
failed kept by edge, and what `weir rollout status` says of a rollback not landed yet; a
window of counts written as a drift reference the sidecars read."""

from __future__ import annotations

import math
import socket
from pathlib import Path

import pytest

from scripts.edge.admin_client import AdminClient
from scripts.rollout import state as st
from scripts.rollout.counts import Histogram, Signals
from scripts.rollout.edges import Edges, EdgeUnreachable, edge_address
from scripts.rollout.reference import write_from_signals
from scripts.rollout.report import describe
from sidecar.metrics import CONFIDENCE_BUCKETS
from sidecar.serving.drift import load_reference


@pytest.mark.parametrize(
    ("given", "kept"),
    [("127.0.0.1:9901", "127.0.0.1:9901"), ("http://10.0.0.7:19902/", "10.0.0.7:19902")],
)
def test_an_edge_is_its_admin_host_and_port(given: str, kept: str) -> None:
    assert edge_address(given) == kept


@pytest.mark.parametrize("bad", ["9901", "host:", "host:99999", "https://x"])
def test_a_bad_edge_says_what_to_give(bad: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        edge_address(bad)


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"  # closed once the block ends


def test_a_change_to_edges_that_do_not_answer_names_each_and_a_read_names_the_first() -> None:
    a, b = closed_port(), closed_port()
    edges = Edges((AdminClient(a, "t", timeout=1), AdminClient(b, "t", timeout=1)))
    failed = edges.change("PUT", "/admin/models/digits/split", {"1": 100})
    assert set(failed) == {a, b} and "does not answer" in failed[a]
    with pytest.raises(EdgeUnreachable) as raised:
        edges.read("/admin/models/digits")
    assert raised.value.address == a and a in str(raised.value)


def test_status_says_which_edges_have_not_taken_the_rollback() -> None:
    state = st.RolloutState("digits", "2", {"1": 100.0}, [50, 100], 2.0, 100, {}, 1)
    state.status, state.reason = st.ABORTED, "aborted: test; canary 2 at 0%"
    state.edges, state.pending_edges = ["127.0.0.1:1", "127.0.0.1:2"], ["127.0.0.1:2"]
    text = describe(state, controller_running=False, now=0.0)
    assert "edges: 127.0.0.1:1, 127.0.0.1:2" in text
    assert "canary 2 NOT YET at 0% on 127.0.0.1:2" in text and "NO CONTROLLER RUNS" in text


def test_a_window_of_counts_becomes_a_reference_the_sidecars_read(tmp_path: Path) -> None:
    bounds = (*CONFIDENCE_BUCKETS, math.inf)
    counts = tuple(float(i) for i in range(len(bounds)))
    window = Signals(classes={"0": 40.0, "3": 260.0}, confidence=Histogram(bounds, counts))
    path = write_from_signals(tmp_path, "digits", "2", window, "a test")
    reference = load_reference(path)
    assert reference.rows == 300 and reference.signals["class"] == {"0": 40.0, "3": 260.0}
    assert sum(reference.signals["confidence"].values()) == sum(counts)
