"""Weir's real worker stack under granian (WSGI, blocking threads): a bench-only host.

Built as `sidecar/server/workers.py` builds it for gthread, `build_worker(Settings.from_env(),
threaded_driver)`: the same repository, data plane, batching threads and HTTP app, only the
HTTP server differs. granian forks its workers before importing this module, so each worker
loads its own sessions (as gunicorn's do after fork). The environment replaces the launcher:
WEIR_* settings and PROMETHEUS_MULTIPROC_DIR (set before prometheus_client is imported).

    PROMETHEUS_MULTIPROC_DIR=$(mktemp -d) WEIR_MODELS=models WEIR_WORKERS=2 \
        granian --interface wsgi --workers 2 --blocking-threads 32 tests.bench.granian_weir:app
"""

from __future__ import annotations

import os

if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:  # before any import of prometheus_client
    raise RuntimeError("set PROMETHEUS_MULTIPROC_DIR to an empty directory (the bench does)")

from sidecar.server.assembly import build_worker
from sidecar.serving.batching import threaded_driver
from sidecar.settings import Settings

app = build_worker(Settings.from_env(), threaded_driver).app
