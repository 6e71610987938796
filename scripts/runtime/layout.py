"""The runtime directory: where a running Weir keeps its sockets, rendered configs and state.

<runtime>/                         WEIR_RUNTIME_DIR, default .weir/
  run/sidecar-<device>.sock        one sidecar per device (cpu or GPU index) of the default
                                   pool; run/sidecar-<pool>-<device>.sock for other pools
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
  repository -> repository.d/<N>/  `weir up`, `weir view`: the models as the release serves
                                   them (symlinks; config.yaml with the release's batching);
                                   repository-<pool>/ for each other pool's sidecars
  sidecars.json                    `weir up`'s sidecars, locked while it runs
  examples/digits.json             `weir up`: the request its printed curl sends
  rollouts/<model>.json            `weir rollout`: the rollout's state and every decision;
                                   <model>.lock (its controller), <model>.control.json
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def default_runtime_dir() -> Path:
    return Path(os.environ.get("WEIR_RUNTIME_DIR", ".weir")).absolute()


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

    @property
    def repository(self) -> Path:
        """The release's view of the model repository that local sidecars serve."""
        return self.root / "repository"

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
