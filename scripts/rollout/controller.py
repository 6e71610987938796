"""The rollout controller: steps a canary's live weight through the admin API (no reload),
judges each window (scripts/rollout/analysis.py), and rolls back, holds or promotes.

One tick every POLL_S: take a command sent from another shell (pause, resume, abort), compare
the live state with what it last set (a kill switch or a manual split pauses it, saying so),
and once a window is `interval` old, judge it:

- FAIL: the canary's weight goes to 0 at once (the stable versions take its share back);
- INCONCLUSIVE (too few requests): the window grows; nothing is promoted on too little traffic;
- PASS: the next step, a new window; the step to 100% is the end: an applied revision with
  the final split (the deploy pipeline), and the release-YAML change to commit printed.

Every decision is recorded with its figures in the state file and printed as one line. The
weights it sets: scripts/rollout/weights.py; the edges it sets them on: edges.py; what a
promotion leaves behind: promotion.py. (About 400 lines: the loop, its decisions and their
fan-out to every edge share the state; each decision is a method of a few lines.)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scripts.deploy.pipeline import apply_release
from scripts.edge.admin_client import AdminClient, AdminError
from scripts.release.rollout import Analysis
from scripts.rollout import state as st
from scripts.rollout.analysis import FAIL, INCONCLUSIVE, PASS, agreement, judge
from scripts.rollout.counts import Signals, combine, window
from scripts.rollout.edges import Edges, EdgeUnreachable
from scripts.rollout.promotion import RolloutError, capture_reference, promoted_release
from scripts.rollout.signals import LocalSignals, PrometheusSignals, SignalsError
from scripts.rollout.weights import interference, same_weights, weights_at
from scripts.runtime import RuntimeDir

POLL_S = 0.25
RETRY_LOG_S = 10.0  # a rollback an edge has not taken yet: its retries logged this often
BREAKER_OPEN = (
    "the canary's circuit breaker opened (its server failures reached the model's "
    "breaker.failures within breaker.window)"
)


class EdgesFailed(AdminError):
    """Some of several edges did not take a change (the others did); by edge, why."""

    def __init__(self, failed: dict[str, str]) -> None:
        super().__init__("; ".join(f"edge {a}: {why}" for a, why in sorted(failed.items())))
        self.failed = failed


def say_line(text: str) -> None:
    """One line out now: a controller's output is read through pipes and log collectors,
    where a block-buffered stdout would hold its decisions back for minutes."""
    print(text, flush=True)


@dataclass
class Controller:
    runtime: RuntimeDir
    state: st.RolloutState
    edges: Edges
    say: Callable[[str], None] = say_line
    clock: Callable[[], float] = time.time
    _retry_logged: float = 0.0
    # The canary's windows that passed, summed (this controller's): its drift reference.
    passed_canary: Signals | None = None

    # ------------------------------------------------------------------ weights and reads

    @property
    def client(self) -> AdminClient:
        """The first edge: the one whose relayed sidecars a local window reads."""
        return self.edges.clients[0]

    def set_weights(self, weights: dict[str, float]) -> None:
        """On every edge. One edge alone that fails raises AdminError (nothing changed);
        some of several that fail raise EdgesFailed (the others took the weights)."""
        failed = self.edges.change("PUT", f"/admin/models/{self.state.model}/split", weights)
        if failed and not self.edges.several:
            raise AdminError(next(iter(failed.values())))
        self.state.set_weights = weights
        if failed:
            raise EdgesFailed(failed)

    def step_to(self, percent: float, what: str) -> bool:
        """The canary at `percent` on every edge; when some edge does not take it, a pause
        saying which (the others keep it) and False."""
        s = self.state
        try:
            self.set_weights(weights_at(s.canary, s.stable, percent))
        except EdgesFailed as exc:
            took = [a for a in self.edges.addresses if a not in exc.failed]
            self.pause(
                f"{what} did not reach every edge ({exc}); "
                + (f"{', '.join(took)} took it" if took else "no edge took it")
            )
            return False
        return True

    def lives(self) -> list[tuple[str, dict[str, Any]]]:
        """Every edge's live state of the model; EdgeUnreachable names one that failed."""
        out = []
        for address, data in self.edges.read(f"/admin/models/{self.state.model}"):
            if not isinstance(data, dict):
                raise AdminError(f"unexpected answer for model {self.state.model}: {data!r}")
            out.append((address, data))
        return out

    def live(self) -> dict[str, Any]:
        return self.lives()[0][1]

    def reading(self) -> dict[str, Signals]:
        return LocalSignals(self.runtime).read(self.client, self.state.model)

    def open_window(self) -> None:
        """A new window from now. Its first reading failing (a sidecar restarting) leaves no
        baseline: the next tick opens the window again, and the weights set are saved anyway."""
        self.state.window_started = self.state.last_judged = self.clock()
        self.state.baseline = None
        try:
            if self.state.source == "local":
                self.state.baseline = st.signals_to_json(self.reading())
        except SignalsError as exc:
            self.log(f"cannot read the signals to open a window ({exc}); trying again")
        st.save_state(self.runtime, self.state)

    def window_signals(self) -> dict[str, Signals] | None:
        if self.state.source != "local":
            seconds = self.clock() - self.state.window_started
            return PrometheusSignals(self.state.source).window(self.state.model, seconds)
        now = self.reading()
        before = st.signals_from_json(self.state.baseline or {})
        out: dict[str, Signals] = {}
        for version, later in now.items():
            delta = window(before.get(version, Signals()), later)
            if delta is None:
                return None
            out[version] = delta
        return out

    # ------------------------------------------------------------------ decisions

    def log(self, text: str) -> None:
        self.say(f"[rollout] {time.strftime('%H:%M:%S')} {self.state.model}: {text}")

    def begin(self) -> None:
        s = self.state
        if not self.step_to(s.weight, f"step 1 ({s.weight:g}%)"):
            return
        entry = s.record("step", f"canary {s.canary} at {s.weight:g}% (step 1 of {len(s.steps)})")
        self.open_window()
        self.log(entry["text"])

    def pause(self, reason: str) -> None:
        s = self.state
        s.status, s.reason = st.PAUSED, reason
        s.record("pause", f"paused: {reason}")
        st.save_state(self.runtime, s)
        self.log(
            f"PAUSED: {reason}. The weights stay as they are; `weir rollout resume {s.model}` "
            f"takes over again, `weir rollout abort {s.model}` sends the canary to 0%"
        )

    def resume(self) -> str | None:
        s = self.state
        try:
            lives = self.lives()
        except EdgeUnreachable as exc:
            return f"{exc}: every edge must answer before the rollout goes on"
        for address, live in lives:
            for version in [s.canary, *s.stable]:
                if live.get("killed") or live.get("versions", {}).get(version, {}).get("killed"):
                    where = f" on edge {address}" if self.edges.several else ""
                    return (
                        f"a kill switch is still on for {s.model}{where}: revive it first "
                        "(weir revive)"
                    )
        s.status, s.reason = st.RUNNING, ""
        if s.weight >= 100:  # paused because the promotion failed: try it again
            self.promote()
            return None
        if not self.step_to(s.weight, f"resuming step {s.step + 1} ({s.weight:g}%)"):
            return None
        s.record("resume", f"resumed at step {s.step + 1} ({s.weight:g}%), a new window")
        self.open_window()
        self.log(f"resumed: canary {s.canary} at {s.weight:g}%, a new window")
        return None

    def stop_canary(self, status: str, text: str, **figures: Any) -> None:
        """The canary to 0% on every edge; an edge that does not take it is retried on every
        tick until it does (`pending_edges`), the controller running until then."""
        s = self.state
        s.set_weights = weights_at(s.canary, s.stable, 0.0)
        failed = self.edges.change("PUT", f"/admin/models/{s.model}/split", s.set_weights)
        s.pending_edges = sorted(failed)
        if failed:
            figures["pending_edges"] = failed
            text += (
                f"; NOT YET on {', '.join(sorted(failed))} ("
                + "; ".join(failed.values())
                + "): retried until it lands"
            )
        s.status, s.reason = status, text
        s.record(status, text, **figures)
        st.save_state(self.runtime, s)

    def land_pending(self) -> None:
        """Retry the rollback on each edge that has not taken it yet."""
        s = self.state
        for address in list(s.pending_edges):
            try:
                client = self.edges.client(address)
                client.checked("PUT", f"/admin/models/{s.model}/split", s.set_weights)
            except AdminError as exc:
                if self.clock() - self._retry_logged >= RETRY_LOG_S:
                    self._retry_logged = self.clock()
                    self.log(
                        f"edge {address} has still not taken canary {s.canary} at 0% ({exc}); "
                        "retrying until it does"
                    )
                continue
            s.pending_edges.remove(address)
            entry = s.record("landed", f"edge {address} took canary {s.canary} at 0%")
            st.save_state(self.runtime, s)
            self.log(entry["text"])

    def abort(self, reason: str) -> None:
        self.stop_canary(st.ABORTED, f"aborted: {reason}; canary {self.state.canary} at 0%")
        self.log(self.state.reason)

    def judge_window(self, breaker_open: bool = False) -> None:
        s = self.state
        try:
            signals = self.window_signals()
        except SignalsError as exc:
            self.log(f"cannot read the signals ({exc}); trying again")
            return
        if signals is None:
            entry = s.record(
                "restart",
                "counters went back (the edge or a sidecar restarted): the window starts again",
            )
            self.open_window()
            self.log(entry["text"])
            return
        s.last_judged = self.clock()
        stable = combine(signals.get(v, Signals()) for v in s.stable)
        canary = signals.get(s.canary, Signals())
        # Validated when the release was; stored in base units (fractions, seconds).
        bounds = Analysis.model_construct(**s.analysis)
        shadow = agreement(signals, s.canary, s.stable) if s.shadow else None
        verdict = judge(bounds, s.min_requests, stable, canary, shadow)
        figures = {
            "verdict": verdict.verdict,
            "window_s": round(self.clock() - s.window_started, 1),
            **st.verdict_to_json(verdict),
        }
        where = f"step {s.step + 1} ({s.weight:g}%)"
        if breaker_open or verdict.verdict == FAIL:
            why = verdict.summary() if verdict.verdict == FAIL else ""
            if breaker_open:
                figures["breaker"] = "open"
                why = BREAKER_OPEN + (f"; {why}" if why else "")
            text = f"ROLLED BACK at {where}: {why}; canary {s.canary} now at 0%"
            self.stop_canary(st.ROLLED_BACK, text, **figures)
            self.log(text)
        elif verdict.verdict == INCONCLUSIVE:
            text = f"{where} inconclusive, holding: {verdict.summary()}"
            s.record("hold", text, **figures)
            st.save_state(self.runtime, s)
            self.log(text)
        else:
            assert verdict.verdict == PASS
            text = f"{where} passed: {verdict.summary()}"
            self.passed_canary = combine([self.passed_canary or Signals(), canary])
            s.record("pass", text, **figures)
            self.log(text)
            self.next_step()

    def next_step(self) -> None:
        s = self.state
        s.step += 1
        if s.weight >= 100:
            self.promote()
            return
        if not self.step_to(s.weight, f"step {s.step + 1} ({s.weight:g}%)"):
            return
        entry = s.record(
            "step", f"canary {s.canary} at {s.weight:g}% (step {s.step + 1} of {len(s.steps)})"
        )
        self.open_window()
        self.log(entry["text"])

    def promote(self) -> None:
        s = self.state
        try:
            self.set_weights(weights_at(s.canary, s.stable, 100.0))
            revision, path, change = promoted_release(self.runtime, s)
            here = self.runtime_edge()
            message = (
                apply_release(path, self.runtime)
                if here
                else f"not applied here: no edge of {self.runtime.root} is among those it steps"
            )
            if here:
                self.edges.client(here).checked("DELETE", f"/admin/models/{s.model}/split")
            others = [a for a in self.edges.addresses if a != here]
            if others:
                message += (
                    f"; edges {', '.join(others)} keep canary {s.canary} at 100% through a "
                    f"live split until they serve revision {revision}: roll it out to them "
                    "(weir k8s), the split goes with their restart"
                )
        except Exception as exc:  # the canary serves 100% live; the file is for a person
            s.status, s.reason = st.PAUSED, f"promotion could not be applied: {exc}"
            s.record("pause", s.reason)
            st.save_state(self.runtime, s)
            self.log(
                f"PAUSED at 100%: the canary serves everything through a live split, but "
                f"applying the final revision failed ({exc}). Fix it, then `weir rollout "
                f"resume {s.model}` tries again, or apply the change below yourself"
            )
            return
        s.status, s.final_revision = st.PROMOTED, revision
        s.reason = f"promoted: canary {s.canary} serves 100% as revision {revision}"
        reference = capture_reference(self.runtime, s, self.passed_canary)
        s.record(st.PROMOTED, s.reason, applied=message, reference=reference)
        st.save_state(self.runtime, s)
        self.log(f"{s.reason} ({message}); {reference}")
        self.say(change)

    def runtime_edge(self) -> str | None:
        """The address of this runtime's own edge when it is one of the edges stepped: the
        one a promotion applies its revision to."""
        if not self.state.edges:
            return self.client.address
        try:
            here = AdminClient.for_runtime(self.runtime).address
        except AdminError:
            return None
        return here if here in self.edges.addresses else None

    # ------------------------------------------------------------------ the loop

    def command(self, control: dict[str, str]) -> None:
        s = self.state
        what, reason = control.get("command"), control.get("reason", "")
        if what == "pause" and s.status == st.RUNNING:
            self.pause(reason or "paused by hand (weir rollout pause)")
        elif what == "resume" and s.status == st.PAUSED:
            refused = self.resume()
            if refused:
                self.log(f"resume refused: {refused}")
        elif what == "abort":
            self.abort(reason or "by hand (weir rollout abort)")
        s.acked = control.get("id", "")
        st.save_state(self.runtime, s)

    def tick(self) -> None:
        s = self.state
        if s.pending_edges:
            self.land_pending()
        control = st.take_control(self.runtime, s.model)
        if control:
            self.command(control)
        if s.status != st.RUNNING:
            return
        if s.source == "local" and s.baseline is None:
            self.open_window()
            return
        try:
            lives = self.lives()
        except EdgeUnreachable as exc:
            self.pause(
                f"{exc}: the rollout can neither see nor step it (the other edges keep their "
                f"weights); resume once it answers sets every edge to this step again"
            )
            return
        for address, live in lives:
            reason = interference(live, s)
            if reason:
                self.pause(f"on edge {address}, {reason}" if self.edges.several else reason)
                return
        breakers = [
            live.get("versions", {}).get(s.canary, {}).get("breaker", {}).get("state")
            for _, live in lives
        ]
        if "open" in breakers:
            # Its requests now go to the fallback: the canary would starve, never judged.
            self.judge_window(breaker_open=True)
        elif self.clock() - max(s.window_started, s.last_judged) >= s.interval:
            self.judge_window()

    def run(self) -> int:
        while self.state.status in st.ACTIVE or self.state.pending_edges:
            try:
                self.tick()
            except (AdminError, SignalsError) as exc:
                self.log(f"the edge failed to answer ({exc}); trying again")
                time.sleep(1.0)
            time.sleep(POLL_S)
        return 0 if self.state.status == st.PROMOTED else 1


__all__ = [
    "Controller",
    "RolloutError",
    "interference",
    "promoted_release",
    "same_weights",
    "weights_at",
]
