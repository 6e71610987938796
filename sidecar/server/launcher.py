"""`weir sidecar`: run one sidecar (a gunicorn process group) in the foreground.

Environment first: device pinning and the Prometheus multiprocess directory are exported
before gunicorn starts, so no CUDA call and no metric file ever predates them.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import logging
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import Literal, get_args, get_origin

from pydantic import ValidationError

from sidecar.settings import Settings


def parser() -> argparse.ArgumentParser:
    """One flag per settings field (`--max-batch-size` for `max_batch_size`), same help text."""
    p = argparse.ArgumentParser(
        prog="weir sidecar",
        description="Serve every model version of a repository over the V2 inference protocol, "
        "in the foreground, logging to stderr. Each flag overrides the WEIR_<NAME> variable.",
    )
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        kwargs: dict[str, object] = {"dest": name, "help": field.description}
        if get_origin(annotation) is Literal:
            kwargs["choices"] = list(get_args(annotation))
        elif annotation in (int, float):
            kwargs["type"] = annotation
        p.add_argument("--" + name.replace("_", "-"), **kwargs)  # type: ignore[arg-type]
    return p


def _metrics_dir(configured: str | None) -> str:
    """A clean PROMETHEUS_MULTIPROC_DIR: stale files from a previous run would be summed."""
    if configured is None:
        return tempfile.mkdtemp(prefix="weir-metrics-")
    path = Path(configured)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    return str(path)


def _run_gunicorn() -> None:
    from gunicorn.app.base import BaseApplication
    from gunicorn.arbiter import Arbiter

    class DrainingArbiter(Arbiter):  # type: ignore[misc]
        """Keeps a unix socket's file until the workers are gone.

        gunicorn unlinks it as soon as SIGTERM arrives, so nobody could even ask the draining
        workers for readiness (they still listen on the socket they inherited).
        """

        def stop(self, graceful: bool = True) -> None:
            paths = [str(s.cfg_addr) for s in self.LISTENERS if s.FAMILY == socket.AF_UNIX]
            if graceful and paths:
                self.cfg.set("reuse_port", True)  # gunicorn's own condition for "keep the file"
            try:
                super().stop(graceful)
            finally:
                for path in paths:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)

    class Sidecar(BaseApplication):
        def load_config(self) -> None:
            from sidecar.server import gunicorn_conf

            for key in dir(gunicorn_conf):
                if key in self.cfg.settings:
                    self.cfg.set(key, getattr(gunicorn_conf, key))

        def load(self) -> object:
            # Never called: Weir's worker classes build their app after fork, each with the
            # batching driver its server needs (`sidecar.server.workers`).
            raise RuntimeError("the sidecar's app is built by its worker classes")

        def run(self) -> None:
            try:
                DrainingArbiter(self).run()
            except RuntimeError as exc:  # what gunicorn's own run() does with a bad setup
                print(f"\nError: {exc}\n", file=sys.stderr)
                sys.exit(1)

    Sidecar().run()


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        settings = Settings.from_env(**vars(args))
    except ValidationError as exc:
        for err in exc.errors():
            print(f"weir sidecar: {'.'.join(map(str, err['loc']))}: {err['msg']}", file=sys.stderr)
        return 2
    if not Path(settings.models).is_dir():
        print(f"weir sidecar: model repository {settings.models} does not exist", file=sys.stderr)
        return 2
    if settings.worker_class == "meinheld" and importlib.util.find_spec("meinheld") is None:
        print(
            "weir sidecar: --worker-class meinheld needs the optional meinheld package "
            "(pip install greenlet && pip install --no-deps meinheld; it compiles, with gcc "
            "and python3-dev); the default worker class, uvicorn, needs nothing more",
            file=sys.stderr,
        )
        return 2
    from sidecar.serving.onnx_session import gpu_present

    if settings.device != "cpu":
        if not gpu_present():
            print(
                f"weir sidecar: --device {settings.device} asked for a GPU but this machine has "
                "none (no /dev/nvidia*, no nvidia-smi); use --device cpu",
                file=sys.stderr,
            )
            return 2
        os.environ["CUDA_VISIBLE_DEVICES"] = settings.device
    metrics_dir = _metrics_dir(settings.metrics_dir)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    os.environ.update(settings.to_env())
    logging.basicConfig(
        level=settings.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s",
    )
    sys.argv = ["weir sidecar"]  # gunicorn parses sys.argv; ours are already consumed
    try:
        _run_gunicorn()
    finally:
        if settings.metrics_dir is None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0
