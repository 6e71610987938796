"""The meinheld worker leaves gunicorn's logger alone (meinheld's own rebinds Logger.error)."""

from __future__ import annotations

import os

from gunicorn.config import Config
from gunicorn.glogging import Logger

from sidecar.server.workers import MeinheldWorker


def test_gunicorn_logging_still_works_after_a_worker_is_created(capsys):
    cfg = Config()
    log = Logger(cfg)
    worker = MeinheldWorker(1, os.getpid(), [], None, 30, cfg, log)
    try:
        log.error("Worker (pid:%s) exited with code %s.", 123, 1)  # the arbiter's own call
        assert "Worker (pid:123) exited with code 1." in capsys.readouterr().err
    finally:
        worker.tmp.close()
