"""The live weights of a rollout: the canary's step with the stable versions sharing the rest,
and whether the live state of an edge is still what the controller set (a kill switch or a
split set by hand means someone took the controls)."""

from __future__ import annotations

from typing import Any

from scripts.rollout import state as st


def weights_at(canary: str, stable: dict[str, float], percent: float) -> dict[str, float]:
    """The canary at `percent`, the rest shared by the stable versions as the release shared
    it among them; 1 decimal each, summing to exactly 100."""
    rest = 100.0 - percent
    total = sum(stable.values())
    out = {v: round(rest * w / total, 1) for v, w in stable.items()}
    if out:
        largest = max(out, key=lambda v: out[v])
        out[largest] = round(out[largest] + rest - sum(out.values()), 1)
    out[canary] = round(percent, 1)
    return out


def same_weights(a: dict[str, Any] | None, b: dict[str, float]) -> bool:
    if not isinstance(a, dict):
        return False
    keys = {k for k, v in a.items() if float(v) > 0} | {k for k, v in b.items() if v > 0}
    return all(abs(float(a.get(k, 0)) - b.get(k, 0.0)) < 0.05 for k in keys)


def interference(live: dict[str, Any], state: st.RolloutState) -> str | None:
    """Why the live state is no longer what the controller set, or None."""
    if live.get("killed"):
        return f"the kill switch of {state.model} is on"
    for version in [state.canary, *state.stable]:
        if live.get("versions", {}).get(version, {}).get("killed"):
            return f"the kill switch of {state.model}/{version} is on"
    override = live.get("weights", {}).get("override")
    if not same_weights(override, state.set_weights):
        return (
            f"the live split of {state.model} is {_fmt(override)}, not the "
            f"{_fmt(state.set_weights)} the rollout set: someone changed it by hand (weir split)"
        )
    return None


def _fmt(weights: Any) -> str:
    if not isinstance(weights, dict):
        return "the release's (no override)"
    return "{" + ", ".join(f"{k}: {float(v):g}%" for k, v in sorted(weights.items())) + "}"
