"""`weir rollout start|status|pause|resume|abort MODEL`.

`start` runs the controller in the foreground (progress in the terminal, Ctrl-C stops the
controller and leaves the weights and the state as they are: `start` again goes on where it
stopped). `pause`, `resume` and `abort` from another shell are taken by the running controller
within a second; with none running they change the state themselves (`resume` then runs the
controller here). `status` reads the state file: what is happening and why.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from scripts.args import command_parser
from scripts.edge.admin_client import AdminError
from scripts.edge.errors import DeployError
from scripts.edge.revisions import current_revision
from scripts.release import ReleaseError, load_release
from scripts.rollout import state as st
from scripts.rollout.controller import Controller, RolloutError, weights_at
from scripts.rollout.edges import Edges, edge_address
from scripts.rollout.report import describe
from scripts.runtime import RuntimeDir

ACK_TIMEOUT_S = 10.0


def parser() -> argparse.ArgumentParser:
    p = command_parser(
        "rollout",
        "progressive delivery of the canary named in the release's models.MODEL.rollout: "
        "start (foreground), status, pause, resume, abort",
    )
    p.add_argument("action", choices=["start", "status", "pause", "resume", "abort"])
    p.add_argument("model", help="the model's name in the release (e.g. digits)")
    p.add_argument("--reason", default="", help="pause/abort: why, for the record")
    p.add_argument(
        "--prometheus",
        metavar="URL",
        help="start: judge on a Prometheus' sums over every edge replica and sidecar "
        "(http://prometheus:9090) instead of this machine's edge",
    )
    p.add_argument(
        "--edge",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="start: step the weights on this edge's admin API; repeat it for every edge "
        "replica (default: this runtime's edge alone). Needs --prometheus: each edge counts "
        "only its own traffic",
    )
    p.add_argument(
        "--release",
        metavar="FILE",
        help="start: the release holding models.MODEL.rollout (default: this runtime's "
        "applied revision), for a controller beside no edge of its own (--edge)",
    )
    p.add_argument(
        "--token-file",
        metavar="FILE",
        help="start --edge: the edges' admin token (default: WEIR_ADMIN_TOKEN, else the "
        "runtime's token file)",
    )
    return p


def _fail(text: str, code: int = 1) -> int:
    print(f"weir rollout: {text}", file=sys.stderr)
    return code


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    runtime = RuntimeDir.from_arg(args.runtime_dir)
    try:
        if args.action == "status":
            return status(runtime, args.model)
        if args.action == "start":
            edges = [edge_address(e) for e in args.edge]
            return start(
                runtime, args.model, args.prometheus, edges, args.token_file or "", args.release
            )
        return control(runtime, args.model, args.action, args.reason)
    except ValueError as exc:
        return _fail(str(exc), 2)
    except (AdminError, RolloutError, DeployError, st.StateError) as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        print(
            f"\nweir rollout: controller stopped; the weights stay as they are. "
            f"`weir rollout start {args.model}` goes on where it stopped.",
            file=sys.stderr,
        )
        return 130


def status(runtime: RuntimeDir, model: str) -> int:
    state = st.load_state(runtime, model)
    if state is None:
        print(f"{model}: no rollout has run in {runtime.root}")
        return 0
    with st.controller_lock(runtime, model) as free:
        record = str(st.state_path(runtime, model))
        print(describe(state, controller_running=not free, now=time.time(), record=record))
    return 0


def new_state(
    runtime: RuntimeDir, model: str, source: str, release_file: str | None = None
) -> st.RolloutState:
    if release_file:
        try:
            release = load_release(release_file).release
        except ReleaseError as exc:
            raise RolloutError(str(exc)) from None
    else:
        live = current_revision(runtime)
        if live is None:
            raise RolloutError(f"no applied release in {runtime.root}: `weir up FILE` first")
        release = live.load().release
    found = release.models.get(model)
    if found is None:
        raise RolloutError(
            f"revision {release.revision} has no model {model!r} (models: "
            f"{', '.join(release.models)})"
        )
    policy = found.rollout
    if policy is None:
        raise RolloutError(
            f"revision {release.revision} gives {model} no rollout policy: add "
            f'models.{model}.rollout: {{canary: "N"}} to the release file and `weir apply` it'
        )
    stable = {v: w for v, w in found.weights().items() if v != policy.canary and w > 0}
    return st.RolloutState(
        model=model,
        canary=policy.canary,
        stable=stable,
        steps=list(policy.steps),
        interval=policy.interval,
        min_requests=policy.min_requests,
        analysis=policy.analysis.model_dump(),
        revision=release.revision,
        source=source,
        shadow=found.shadow is not None and found.shadow.version == policy.canary,
        release_file=str(Path(release_file).absolute()) if release_file else "",
    )


def start(
    runtime: RuntimeDir,
    model: str,
    prometheus: str | None,
    edges: list[str],
    token_file: str,
    release_file: str | None = None,
) -> int:
    if edges and not prometheus:
        raise RolloutError(
            "--edge steps several edges, and each counts only its own traffic: give "
            "--prometheus URL too, so that the rollout judges the sum over every replica"
        )
    with st.controller_lock(runtime, model) as mine:
        if not mine:
            raise RolloutError(
                f"a controller already runs the rollout of {model} in {runtime.root}: "
                f"`weir rollout status {model}` says where it is"
            )
        state = st.load_state(runtime, model)
        if state is not None and (state.status in st.ACTIVE or state.pending_edges):
            controller = Controller(
                runtime, state, Edges.of(runtime, state.edges, state.token_file)
            )
            where = f" on edges {', '.join(state.edges)}" if state.edges else ""
            controller.log(
                f"going on with the rollout of canary {state.canary} at step "
                f"{state.step + 1} ({state.weight:g}%){where}, {state.status} (the controller "
                "restarted)"
            )
            return controller.run()
        fresh = new_state(runtime, model, prometheus or "local", release_file)
        fresh.edges = edges
        fresh.token_file = str(Path(token_file).absolute()) if token_file else ""
        stepped = Edges.of(runtime, fresh.edges, fresh.token_file)
        if state is not None:
            kept = st.archive_state(runtime, state)
            print(f"weir rollout: the {state.status} rollout of {state.canary} is kept in {kept}")
        state = fresh
        st.save_state(runtime, state)
        controller = Controller(runtime, state, stepped)
        where = f", on edges {', '.join(edges)}" if edges else ""
        controller.log(
            f"rolling out canary {state.canary} against {_stable(state)}: steps "
            f"{', '.join(f'{w:g}%' for w in state.steps)}, {state.interval:g}s windows, at least "
            f"{state.min_requests} requests per version and window{where}"
            + ("; shadow agreement with stable judged too" if state.shadow else "")
        )
        controller.begin()
        return controller.run()


def _stable(state: st.RolloutState) -> str:
    return "stable " + ", ".join(f"{v} ({w:g}%)" for v, w in state.stable.items())


def control(runtime: RuntimeDir, model: str, action: str, reason: str) -> int:
    state = st.load_state(runtime, model)
    if state is None or state.status not in st.ACTIVE:
        what = "no rollout" if state is None else f"the rollout is {state.status}"
        return _fail(f"{model}: {what}; nothing to {action}", 2)
    with st.controller_lock(runtime, model) as free:
        if free:
            edges = Edges.of(runtime, state.edges, state.token_file)
            controller = Controller(runtime, state, edges)
            if action == "pause":
                if state.status == st.RUNNING:
                    controller.pause(reason or "paused by hand (weir rollout pause)")
                return 0
            if action == "abort":
                controller.abort(reason or "by hand (weir rollout abort)")
                return controller.run() if state.pending_edges else 0
            refused = controller.resume() if state.status == st.PAUSED else None
            if refused:
                return _fail(refused)
            return controller.run()
    ident = st.send_control(runtime, model, action, reason)
    deadline = time.monotonic() + ACK_TIMEOUT_S
    while time.monotonic() < deadline:
        state = st.load_state(runtime, model)
        if state is not None and state.acked == ident:
            print(f"{model}: {action} taken by the controller; now {state.status}")
            return 0
        time.sleep(0.1)
    return _fail(f"the running controller did not take the {action} within {ACK_TIMEOUT_S:g}s")


__all__ = ["main", "parser", "weights_at"]
