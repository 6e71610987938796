"""The servers under test, as `Target`s: where to send requests, whose RSS to report.

A target separates the process measured (`server`) from the URL loaded (`base_url`), so an
edge-hop cell later is one more target: requests to the edge, RSS and /metrics of the sidecar
behind it, next to a target sending the same requests straight to that sidecar.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.bench.procs import Server, free_port

VENV_BIN = Path(sys.executable).parent
# The sidecar's histograms (sidecar/metrics.py): rows per model run, seconds per model run.
BATCH_METRIC = "weir_batch_size"
COMPUTE_METRIC = "weir_compute_duration_seconds"


@dataclass
class Target:
    name: str  # row label
    role: str  # "flask" | "bare" | "weir" (later "edge")
    server: Server  # the process tree whose RSS is reported
    encodings: frozenset[str] = frozenset({"json", "binary"})
    metrics_path: str | None = None  # Prometheus text with the batch-size histogram
    base: str = field(default="")  # request URL base; the server's own when empty
    default: bool = False  # the sidecar's default configuration (the targets apply to it)
    workers: int = 1  # worker processes serving the requests

    @property
    def base_url(self) -> str:
        return self.base or self.server.base_url


def sidecar_defaults() -> tuple[int, str]:
    """The sidecar's default worker count and class on this machine, from its own settings."""
    cpus = len(os.sched_getaffinity(0))
    try:
        from sidecar.settings import Settings

        settings = Settings.from_env(device="cpu")
        return settings.worker_count(), settings.worker_class
    except Exception as exc:  # the sidecar moved on: say so, and guess as it documents
        print(f"bench: sidecar defaults unknown ({exc!r}); assuming meinheld", file=sys.stderr)
        return max(1, min(4, cpus)), "meinheld"


def flask_target(models: Path, logs: Path) -> Target:
    port = free_port()
    argv = [sys.executable, "-m", "tests.bench.naive_flask", "--models", str(models)]
    server = Server("flask", [*argv, "--port", str(port)], port, logs / "flask.log")
    return Target("flask", "flask", server, encodings=frozenset({"json"}))


def bare_target(
    models: Path,
    logs: Path,
    workers: int,
    threads: int,
    spinning: bool = False,
    json_lib: str = "orjson",
) -> Target:
    port = free_port()
    argv = [
        str(VENV_BIN / "gunicorn"),
        "--worker-class=meinheld.gmeinheld.MeinheldWorker",
        f"--workers={workers}",
        f"--bind=127.0.0.1:{port}",
        "--log-level=warning",
        "tests.bench.bare_meinheld:app",
    ]
    env = {
        "WEIR_BENCH_MODELS": str(models),
        "WEIR_BENCH_INTRA_THREADS": str(threads),
        "WEIR_BENCH_SPINNING": "1" if spinning else "0",
        "WEIR_BENCH_JSON": json_lib,
    }
    server = Server("bare", argv, port, logs / "bare.log", env=env)
    return Target(f"bare meinheld w{workers}", "bare", server, workers=workers)


def weir_target(
    models: Path,
    logs: Path,
    workers: int | None,
    worker_class: str | None,
    label: str,
    default: bool = False,
) -> Target:
    """The sidecar; `worker_class`/`workers` None leave the launcher's defaults."""
    port = free_port()
    argv = [str(VENV_BIN / "weir"), "sidecar", "--models", str(models), "--device", "cpu"]
    slug = label.split(" (")[0].replace(" ", "_")
    # Its Prometheus files go in our work directory, removed with it.
    argv += ["--port", str(port), "--metrics-dir", str(logs / f"metrics-{slug}")]
    if workers is not None:
        argv += ["--workers", str(workers)]
    if worker_class is not None:
        argv += ["--worker-class", worker_class]
    server = Server(label, argv, port, logs / f"{slug}.log")
    return Target(label, "weir", server, metrics_path="/metrics", default=default)
