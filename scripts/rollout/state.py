"""A rollout's persisted state: `<runtime>/rollouts/<model>.json`, written atomically after
every change, so a restarted controller goes on where the last one stopped. Beside it:
`<model>.lock` (held by the running controller) and `<model>.control.json` (a pause, resume or
abort asked from another shell, taken by the controller on its next poll).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from scripts.rollout.analysis import Verdict
from scripts.rollout.counts import Histogram, Signals
from scripts.runtime import RuntimeDir

RUNNING, PAUSED = "running", "paused"
PROMOTED, ROLLED_BACK, ABORTED = "promoted", "rolled_back", "aborted"
ACTIVE = (RUNNING, PAUSED)


def rollouts_dir(runtime: RuntimeDir) -> Path:
    return runtime.root / "rollouts"


def _hist(h: Histogram | None) -> dict[str, Any] | None:
    if h is None:
        return None
    return {"bounds": ["+Inf" if math.isinf(b) else b for b in h.bounds], "counts": list(h.counts)}


def _unhist(d: dict[str, Any] | None) -> Histogram | None:
    if d is None:
        return None
    bounds = tuple(math.inf if b == "+Inf" else float(b) for b in d["bounds"])
    return Histogram(bounds, tuple(float(c) for c in d["counts"]))


def signals_to_json(signals: dict[str, Signals]) -> dict[str, Any]:
    return {
        v: {
            "requests": s.requests,
            "server_failures": s.server_failures,
            "client_errors": s.client_errors,
            "latency": _hist(s.latency),
            "confidence": _hist(s.confidence),
            "classes": dict(s.classes),
            "shadow_compared": dict(s.shadow_compared),
            "shadow_agreed": dict(s.shadow_agreed),
        }
        for v, s in signals.items()
    }


def signals_from_json(data: dict[str, Any]) -> dict[str, Signals]:
    return {
        v: Signals(
            d["requests"],
            d["server_failures"],
            d["client_errors"],
            _unhist(d["latency"]),
            _unhist(d["confidence"]),
            d["classes"],
            d.get("shadow_compared", {}),
            d.get("shadow_agreed", {}),
        )
        for v, d in data.items()
    }


def verdict_to_json(verdict: Verdict) -> dict[str, Any]:
    return {"verdict": verdict.verdict, "checks": [asdict(c) for c in verdict.checks]}


@dataclass
class RolloutState:
    model: str
    canary: str
    stable: dict[str, float]  # the stable versions' weights, summing to 100
    steps: list[float]
    interval: float
    min_requests: int
    analysis: dict[str, Any]
    revision: int  # the revision it started from
    source: str = "local"  # local | a Prometheus URL
    shadow: bool = False  # the release shadows stable's requests to the canary: agreement judged
    status: str = RUNNING
    reason: str = ""
    step: int = 0
    set_weights: dict[str, float] = field(default_factory=dict)
    window_started: float = 0.0
    last_judged: float = 0.0  # a window that holds is judged again one interval later
    baseline: dict[str, Any] | None = None
    decisions: list[dict[str, Any]] = field(default_factory=list)
    acked: str = ""
    final_revision: int | None = None
    started: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    # The edges it steps (admin HOST:PORT; empty: this runtime's own) and their token file.
    edges: list[str] = field(default_factory=list)
    token_file: str = ""
    # Edges that have not taken the rollback yet: retried until they do.
    pending_edges: list[str] = field(default_factory=list)
    # The release the policy came from, when not this runtime's applied revision (--release).
    release_file: str = ""

    @property
    def weight(self) -> float:
        return self.steps[self.step]

    def record(self, kind: str, text: str, **figures: Any) -> dict[str, Any]:
        entry = {
            "at": time.time(),
            "kind": kind,
            "step": self.step,
            "weight": self.weight,
            "text": text,
            **figures,
        }
        self.decisions.append(entry)
        return entry


def state_path(runtime: RuntimeDir, model: str) -> Path:
    return rollouts_dir(runtime) / f"{model}.json"


class StateError(RuntimeError):
    """A state file that cannot be read; the message says which and what to do."""


def load_state(runtime: RuntimeDir, model: str) -> RolloutState | None:
    path = state_path(runtime, model)
    try:
        return RolloutState(**json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        raise StateError(
            f"the rollout state {path} cannot be read ({exc}); the live weights are as the "
            "admin API shows them (weir status). Move the file away to start a new rollout"
        ) from None


def archive_state(runtime: RuntimeDir, state: RolloutState) -> Path:
    """Keep a finished rollout's record beside the new one's: <model>-<started>.json."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(state.started))
    target = rollouts_dir(runtime) / f"{state.model}-{stamp}.json"
    # A copy: the state file itself stays until the new rollout's replaces it, so a `status`
    # meanwhile never finds none.
    tmp = target.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(state_path(runtime, state.model).read_bytes())
    os.replace(tmp, target)
    return target


def save_state(runtime: RuntimeDir, state: RolloutState) -> None:
    state.updated = time.time()
    path = state_path(runtime, state.model)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(asdict(state), indent=1, sort_keys=True))
    os.replace(tmp, path)


@contextlib.contextmanager
def controller_lock(runtime: RuntimeDir, model: str) -> Iterator[bool]:
    """Yields True when this process now holds the model's controller lock, False when
    another controller runs."""
    path = rollouts_dir(runtime) / f"{model}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def control_path(runtime: RuntimeDir, model: str) -> Path:
    return rollouts_dir(runtime) / f"{model}.control.json"


def send_control(runtime: RuntimeDir, model: str, command: str, reason: str) -> str:
    ident = f"{command}-{time.time_ns()}"
    path = control_path(runtime, model)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps({"id": ident, "command": command, "reason": reason}))
    os.replace(tmp, path)
    return ident


def take_control(runtime: RuntimeDir, model: str) -> dict[str, str] | None:
    path = control_path(runtime, model)
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    path.unlink(missing_ok=True)
    return {str(k): str(v) for k, v in data.items()}
