"""The runtime directory: where a running Weir keeps its sockets, rendered configs and state.

<runtime>/                         WEIR_RUNTIME_DIR, default .weir/
  run/sidecar-<device>.sock        one sidecar per device (cpu or GPU index)
  run/edge.pid                     the nginx master
  logs/edge-error.log              nginx's error log (breaker transitions land here)
  logs/edge-access.log             only when edge.access_log is true
  edge/revisions/<rev>-<stamp>/    one rendered config per apply: nginx.conf,
                                   settings.json (Lua), release.yaml (the source)
  edge/current -> revisions/...    the live config; switched atomically by rename
  edge/history.jsonl               every apply and rollback, one JSON line each
  edge/state.json                  live admin state (kills, split overrides)
  edge/admin.token                 the admin bearer token (mode 0600) unless
                                   WEIR_ADMIN_TOKEN is set in the environment
  edge/tmp/                        nginx's body/proxy temp files
  repository/                      `weir up`: the models as the release serves them
                                   (symlinks; config.yaml with the release's batching)
  examples/digits.json             `weir up`: the request its printed curl sends
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

TOKEN_ENV = "WEIR_ADMIN_TOKEN"


def default_runtime_dir() -> Path:
    return Path(os.environ.get("WEIR_RUNTIME_DIR", ".weir")).absolute()


def command_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """A `weir PROG` command's parser, with the --runtime-dir every command takes."""
    parser = argparse.ArgumentParser(prog=f"weir {prog}", description=description)
    parser.add_argument("--runtime-dir", help="default: $WEIR_RUNTIME_DIR or .weir")
    return parser


@dataclass(frozen=True)
class RuntimeDir:
    root: Path

    @classmethod
    def default(cls) -> RuntimeDir:
        return cls(default_runtime_dir())

    @classmethod
    def from_arg(cls, value: str | None) -> RuntimeDir:
        """A --runtime-dir option, or the default."""
        return cls(Path(value).absolute()) if value else cls.default()

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def edge(self) -> Path:
        return self.root / "edge"

    @property
    def revisions(self) -> Path:
        return self.edge / "revisions"

    @property
    def current(self) -> Path:
        return self.edge / "current"

    @property
    def history(self) -> Path:
        return self.edge / "history.jsonl"

    @property
    def state_file(self) -> Path:
        return self.edge / "state.json"

    @property
    def token_file(self) -> Path:
        return self.edge / "admin.token"

    @property
    def pid_file(self) -> Path:
        return self.run / "edge.pid"

    @property
    def error_log(self) -> Path:
        return self.logs / "edge-error.log"

    @property
    def access_log(self) -> Path:
        return self.logs / "edge-access.log"

    @property
    def tmp(self) -> Path:
        return self.edge / "tmp"

    def sidecar_socket(self, device: str) -> Path:
        return self.run / f"sidecar-{device}.sock"

    def ensure(self) -> None:
        for path in (self.run, self.logs, self.revisions, self.tmp):
            path.mkdir(parents=True, exist_ok=True)

    def edge_pid(self) -> int | None:
        """The running edge's master PID, or None when no edge runs for this directory."""
        try:
            pid = int(self.pid_file.read_text().strip())
            os.kill(pid, 0)
            # A stale pid file whose number now belongs to another process is no edge.
            if b"nginx" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                return None
        except (OSError, ValueError):
            return None
        return pid


# ---------------------------------------------------------------------------- admin token


class TokenError(RuntimeError):
    pass


def read_token(runtime: RuntimeDir) -> str | None:
    """WEIR_ADMIN_TOKEN wins; else the token file, which must be private (mode 0600)."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        return token
    path = runtime.token_file
    if not path.exists():
        return None
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise TokenError(
            f"{path} is readable by others (mode {mode:o}): run `chmod 600 {path}` and retry"
        )
    token = path.read_text().strip()
    return token or None


def ensure_token(runtime: RuntimeDir) -> str:
    """The admin token, creating a random one in the token file when none exists."""
    token = read_token(runtime)
    if token:
        return token
    runtime.edge.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(runtime.token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    return token


# ---------------------------------------------------------------------------- devices


def detect_gpus() -> list[int]:
    """GPU indexes nvidia-smi reports (CUDA_VISIBLE_DEVICES narrows them); [] without GPUs."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = [i for i, line in enumerate(out.stdout.splitlines()) if line.startswith("GPU ")]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        wanted = {int(x) for x in visible.split(",") if x.strip().isdigit()}
        gpus = [g for g in gpus if g in wanted]
    return gpus


def resolve_devices(devices: str | list[int]) -> list[str]:
    """The release's `sidecars.devices` as socket suffixes: ['cpu'] or ['0', '1', ...]."""
    if devices == "cpu":
        return ["cpu"]
    if devices == "auto":
        return [str(g) for g in detect_gpus()] or ["cpu"]
    return [str(d) for d in devices]
