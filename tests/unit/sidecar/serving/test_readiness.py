"""Readiness: loading, ready, draining, and what the data plane answers in each state."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.errors import NotFound, Unavailable
from sidecar.serving.batching import BatchPolicy, threaded_driver
from sidecar.serving.dataplane import DataPlane
from sidecar.serving.readiness import Readiness
from sidecar.serving.repository import Repository


@pytest.fixture(scope="module")
def repository(repository: Path) -> Repository:
    load = Repository.loader(BatchPolicy(4, 0.001, 8), "cpu", 1, threaded_driver)
    return Repository.load(repository, load)


def test_a_new_worker_is_neither_ready_nor_draining():
    readiness = Readiness()
    assert (readiness.ready, readiness.draining) == (False, False)


def test_ready_then_draining():
    readiness = Readiness()
    readiness.mark_ready()
    assert (readiness.ready, readiness.draining) == (True, False)
    readiness.start_draining()
    assert (readiness.ready, readiness.draining) == (True, True)


def test_readiness_answers_503_while_loading_then_ready_then_503_while_draining(repository):
    readiness = Readiness()
    plane = DataPlane(repository, readiness, 1 << 20)
    with pytest.raises(Unavailable, match="still loading") as loading:
        plane.ready()
    assert loading.value.status == 503 and loading.value.headers() == {"Retry-After": "1"}
    readiness.mark_ready()
    assert plane.ready() == {"ready": True}
    readiness.start_draining()
    with pytest.raises(Unavailable, match="draining after SIGTERM; route to another one"):
        plane.ready()
    assert plane.live() == {"live": True}  # liveness never depends on readiness


def test_model_readiness_turns_503_when_draining_and_404_for_unknown_models(repository):
    readiness = Readiness()
    readiness.mark_ready()
    plane = DataPlane(repository, readiness, 1 << 20)
    assert plane.model_ready("digits", "1") == {"name": "digits", "version": "1", "ready": True}
    assert plane.model_ready("digits", None)["version"] == "2"
    with pytest.raises(NotFound, match="unknown model 'nope'"):
        plane.model_ready("nope", None)
    readiness.start_draining()
    with pytest.raises(Unavailable, match="draining"):
        plane.model_ready("digits", "1")
