"""The servers under test, as `Target`s: where to send requests, whose RSS to report.

A target separates the process measured (`server`) from the URL loaded (`base_url`), so an
edge-hop cell later is one more target: requests to the edge, RSS and /metrics of the sidecar
behind it, next to a target sending the same requests straight to that sidecar.
"""

from __future__ import annotations

import enum
import os
import sys
import typing
from dataclasses import dataclass, field, replace
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
    kind: str = ""  # Weir's stack: the sidecar worker class, or the bench host (granian, gevent)

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


def sidecar_worker_classes() -> list[str]:
    """Every `--worker-class` the sidecar accepts, from its own Settings field (a Literal or an
    Enum): a class added there is measured by `make bench` with no change here."""
    try:
        from sidecar.settings import Settings

        annotation = Settings.model_fields["worker_class"].annotation
    except Exception as exc:  # the sidecar moved on: say so, and measure what it documented
        print(f"bench: sidecar worker classes unknown ({exc!r})", file=sys.stderr)
        return ["meinheld", "gthread"]
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return [str(m.value) for m in annotation]
    choices = [str(c) for c in typing.get_args(annotation) if isinstance(c, str)]
    return choices or ["meinheld", "gthread"]


def _sidecar_threads() -> int:
    """The sidecar's threads per gthread worker: what the granian host gets as blocking threads."""
    try:
        from sidecar.settings import Settings

        return int(Settings.model_fields["threads"].default)
    except Exception:
        return 32


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


def _slug(label: str) -> str:
    return label.split(" (")[0].replace(" ", "_").replace("/", "_")


def weir_target(
    models: Path,
    logs: Path,
    workers: int | None,
    worker_class: str | None,
    label: str,
    default: bool = False,
    intra_op_threads: int | None = None,
    cpus: frozenset[int] | None = None,
) -> Target:
    """The sidecar; `worker_class`/`workers`/`intra_op_threads` None leave the launcher's
    defaults; `cpus` pins the whole process group (as a pool's CPU set would)."""
    port = free_port()
    argv = [str(VENV_BIN / "weir"), "sidecar", "--models", str(models), "--device", "cpu"]
    slug = _slug(label)
    # Its Prometheus files go in our work directory, removed with it.
    argv += ["--port", str(port), "--metrics-dir", str(logs / f"metrics-{slug}")]
    if workers is not None:
        argv += ["--workers", str(workers)]
    if worker_class is not None:
        argv += ["--worker-class", worker_class]
    if intra_op_threads is not None:
        argv += ["--intra-op-threads", str(intra_op_threads)]
    server = Server(label, argv, port, logs / f"{slug}.log", cpus=cpus)
    kind = worker_class or sidecar_defaults()[1]
    target = Target(label, "weir", server, metrics_path="/metrics", default=default, kind=kind)
    return target if workers is None else replace(target, workers=workers)


# Bench-only hosts of Weir's real worker stack under other HTTP servers (no launcher: the
# environment carries the settings and the Prometheus multiprocess directory).
HOSTS = ("granian", "gevent")


def _stack_env(
    models: Path, logs: Path, slug: str, workers: int, intra_op_threads: int | None
) -> dict[str, str]:
    metrics = logs / f"metrics-{slug}"
    metrics.mkdir(parents=True, exist_ok=True)
    env = {
        "PROMETHEUS_MULTIPROC_DIR": str(metrics),
        "WEIR_MODELS": str(models),
        "WEIR_DEVICE": "cpu",
        "WEIR_WORKERS": str(workers),  # what the default intra-op thread count divides by
        "WEIR_LOG_LEVEL": "warning",
    }
    if intra_op_threads is not None:
        env["WEIR_INTRA_OP_THREADS"] = str(intra_op_threads)
    return env


def host_target(
    host: str,
    models: Path,
    logs: Path,
    workers: int,
    label: str,
    intra_op_threads: int | None = None,
    cpus: frozenset[int] | None = None,
) -> Target:
    """Weir's stack (`build_worker(Settings.from_env(), threaded_driver)`) under `host`:
    granian's WSGI interface with blocking threads, or gunicorn's gevent worker."""
    port = free_port()
    slug = _slug(label)
    if host == "granian":
        argv = [
            str(VENV_BIN / "granian"),
            "--interface=wsgi",
            f"--workers={workers}",
            f"--blocking-threads={_sidecar_threads()}",
            "--host=127.0.0.1",
            f"--port={port}",
            "--no-ws",
            "--log-level=warning",
            "tests.bench.granian_weir:app",
        ]
    elif host == "gevent":
        argv = [
            str(VENV_BIN / "gunicorn"),
            "--worker-class=tests.bench.gevent_weir.GeventWeirWorker",
            f"--workers={workers}",
            f"--bind=127.0.0.1:{port}",
            "--log-level=warning",
            "--timeout=120",  # models load in the worker before it reports in, as the sidecar's
            "tests.bench.gevent_weir:app",
        ]
    else:
        raise ValueError(f"unknown host {host!r}: one of {', '.join(HOSTS)}")
    env = _stack_env(models, logs, slug, workers, intra_op_threads)
    server = Server(label, argv, port, logs / f"{slug}.log", env=env, cpus=cpus)
    return Target(label, "weir", server, metrics_path="/metrics", workers=workers, kind=host)
