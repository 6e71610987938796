"""`weir rollout status`: what is happening and why, in a few lines."""

from __future__ import annotations

import time

from scripts.rollout import state as st


def _clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))


def describe(
    state: st.RolloutState, *, controller_running: bool, now: float, record: str = ""
) -> str:
    s = state
    stable = ", ".join(f"{v}" for v in s.stable)
    head = f"{s.model}: canary {s.canary} against stable {stable} (from revision {s.revision})"
    last = s.decisions[-1] if s.decisions else None
    lines = [head]
    if s.edges:
        lines.append(f"  edges: {', '.join(s.edges)}")
    if s.pending_edges:
        lines.append(
            f"  canary {s.canary} NOT YET at 0% on {', '.join(s.pending_edges)}: "
            + (
                "the controller retries until it lands"
                if controller_running
                else f"NO CONTROLLER RUNS: `weir rollout start {s.model}` retries it"
            )
        )
    if s.status == st.RUNNING:
        age = now - s.window_started
        lines.append(
            f"  RUNNING step {s.step + 1} of {len(s.steps)}: canary at {s.weight:g}%; window "
            f"open {age:.0f}s, judged every {s.interval:g}s on at least {s.min_requests} "
            "requests per version"
        )
        if not controller_running:
            lines.append(
                f"  NO CONTROLLER RUNS: nothing moves until `weir rollout start {s.model}` "
                "goes on where it stopped"
            )
    elif s.status == st.PAUSED:
        lines.append(f"  PAUSED at step {s.step + 1} ({s.weight:g}%): {s.reason}")
        lines.append(
            f"  `weir rollout resume {s.model}` takes over again; "
            f"`weir rollout abort {s.model}` sends the canary to 0%"
        )
    elif s.status == st.PROMOTED:
        lines.append(f"  PROMOTED: {s.reason.removeprefix('promoted: ')}")
    else:
        lines.append(f"  {s.status.upper().replace('_', ' ')}: {s.reason}")
    judged = [d for d in s.decisions if d["kind"] in ("pass", "hold", st.ROLLED_BACK)]
    if judged:
        d = judged[-1]
        lines.append(f"  last judged {_clock(d['at'])} ({d['kind']}): {d['text']}")
    if last and last is not (judged[-1] if judged else None):
        lines.append(f"  last event {_clock(last['at'])}: {last['text']}")
    passed = [d for d in s.decisions if d["kind"] == "pass"]
    if passed:
        lines.append(
            "  steps passed: "
            + ", ".join(f"{d['weight']:g}%" for d in passed)
            + (f"; every decision with its figures: {record}" if record else "")
        )
    return "\n".join(lines)
