"""What the resources share: the loaded repository and the lifecycle flags."""

from __future__ import annotations

from dataclasses import dataclass

from sidecar.repository import Repository


@dataclass
class ServerState:
    """`ready` turns true after every model is loaded and warmed up; `draining` after SIGTERM."""

    repository: Repository
    ready: bool = False
    draining: bool = False
