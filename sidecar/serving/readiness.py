"""The worker's readiness: whether it has loaded its models, and whether it is draining.

The data plane reads it to answer `GET /v2/health/ready` and model readiness; the server layer
writes it: `mark_ready()` once every model is loaded and warmed up, `start_draining()` when
SIGTERM arrives (the worker then keeps serving, but readiness answers 503).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Readiness:
    """`ready` turns true after every model is loaded and warmed up; `draining` after SIGTERM."""

    ready: bool = False
    draining: bool = False

    def mark_ready(self) -> None:
        self.ready = True

    def start_draining(self) -> None:
        self.draining = True
