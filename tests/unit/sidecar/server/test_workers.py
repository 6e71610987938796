"""Weir's worker classes: each builds its own app with its batching driver, drains its own
readiness on SIGTERM, and the meinheld one leaves gunicorn's logger alone."""

from __future__ import annotations

import os
from pathlib import Path

import falcon.testing
import pytest
from gunicorn.config import Config
from gunicorn.glogging import Logger

from sidecar.http.loop_front import LoopFront
from sidecar.server import meinheld_loop
from sidecar.server.workers import AsyncioWorker, MeinheldWorker, ThreadWorker
from sidecar.serving.asyncio_driver import AsyncioDriver
from sidecar.serving.batching import ThreadedDriver


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch, repository: Path) -> None:
    monkeypatch.setenv("WEIR_MODELS", str(repository))
    monkeypatch.setenv("WEIR_REPOSITORY_POLL_SECONDS", "0")
    monkeypatch.setenv("WEIR_WORKERS", "1")


def _worker(cls):
    cfg = Config()
    return cls(1, os.getpid(), [], None, 30, cfg, Logger(cfg))


def test_gunicorn_logging_still_works_after_a_worker_is_created(capsys):
    cfg = Config()
    log = Logger(cfg)
    worker = MeinheldWorker(1, os.getpid(), [], None, 30, cfg, log)
    try:
        log.error("Worker (pid:%s) exited with code %s.", 123, 1)  # the arbiter's own call
        assert "Worker (pid:123) exited with code 1." in capsys.readouterr().err
    finally:
        worker.tmp.close()


def test_the_gthread_worker_serves_with_threaded_batching_and_drains_its_own_readiness(
    settings_env,
):
    worker = _worker(ThreadWorker)
    try:
        worker._start_draining()  # before the app is built: nothing to drain, no error
        worker.load_wsgi()
        assert worker.served is not None and worker.wsgi is worker.served.app
        drivers = {type(m.driver) for m in worker.served.dataplane.repository.all()}
        assert drivers == {ThreadedDriver}
        client = falcon.testing.TestClient(worker.wsgi)
        assert client.simulate_get("/v2/health/ready").status_code == 200
        worker._start_draining()
        assert client.simulate_get("/v2/health/ready").status_code == 503
        assert client.simulate_get("/v2/health/live").status_code == 200
    finally:
        worker.tmp.close()


def test_the_meinheld_worker_batches_on_its_event_loop(settings_env):
    worker = _worker(MeinheldWorker)
    try:
        worker.load_wsgi()
        assert worker.served is not None
        drivers = {type(m.driver) for m in worker.served.dataplane.repository.all()}
        assert drivers == {meinheld_loop.LoopDriver}
        assert worker.wsgi is not worker.served.app  # wrapped to answer resumed requests
        worker._start_draining()
        assert worker.served.readiness.draining
    finally:
        worker.tmp.close()


def test_the_asyncio_worker_binds_every_driver_to_its_own_loop(settings_env):
    worker = _worker(AsyncioWorker)
    try:
        worker.load_wsgi()
        assert worker.served is not None and isinstance(worker.served.app, LoopFront)
        drivers = [m.driver for m in worker.served.dataplane.repository.all()]
        assert drivers and all(isinstance(d, AsyncioDriver) for d in drivers)
        assert {d.loop for d in drivers} == {worker.loop}
        worker._start_draining()
        assert worker.served.readiness.draining
    finally:
        worker.loop.close()
        worker.tmp.close()
