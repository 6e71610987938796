"""gunicorn settings for the sidecar, computed from `WEIR_*` variables set by the launcher."""

from __future__ import annotations

from sidecar.settings import Settings

_settings = Settings.from_env()

WORKER_CLASSES = {
    "uvicorn": "sidecar.server.workers.AsyncioWorker",
    "meinheld": "sidecar.server.workers.MeinheldWorker",
    "gthread": "sidecar.server.workers.ThreadWorker",
}

# No `wsgi_app`: each worker class builds its own app after fork (`sidecar.server.workers`).
bind = [f"unix:{_settings.socket}" if _settings.socket else f"{_settings.host}:{_settings.port}"]
workers = _settings.worker_count()
worker_class = WORKER_CLASSES[_settings.worker_class]
threads = _settings.threads
# Loading and warming up models happens in the worker before it reports in.
timeout = 120
graceful_timeout = _settings.graceful_timeout
# Idle keep-alive connections live longer here than in the edge's upstream pool (nginx's 60 s):
# the edge closes them first. A sidecar closing one just as the edge reuses it fails a POST
# that nginx does not retry (not idempotent). Only for uvicorn, where an idle connection
# costs no thread; gthread and meinheld keep the 5 s they were measured and tested with.
keepalive = 75 if _settings.worker_class == "uvicorn" else 5
backlog = 2048
worker_connections = _settings.max_connections
preload_app = False  # sessions are created after fork, one copy per worker
errorlog = "-"
accesslog = None
loglevel = _settings.log_level
control_socket_disable = True
proc_name = "weir-sidecar"


def child_exit(server: object, worker: object) -> None:
    from sidecar.metrics import mark_process_dead

    mark_process_dead(worker.pid)  # type: ignore[attr-defined]
