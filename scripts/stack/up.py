"""`weir up`: the whole stack on this machine, in the foreground.

`weir up FILE` applies FILE once, through the one pipeline, when it is newer than what this
runtime directory serves (the same text as `current`: served as it is; an older revision: it
says what to do instead). `weir up` without a file serves the last applied revision. The
sidecars start on the view of what serves (`first_view`): FILE's view reaches them only in the
pipeline's sidecar sync, so a failed apply leaves them on the live revision's.
One sidecar per pool and device of the release (`devices: auto` = one per visible GPU, else one
on the CPU; pools: `sidecars.pools`, each model in one, `default` unless it says), each on its
pool's view of the repository, with its pool's CPU set, memory limit and workers
(`isolation.py`), each waited for until ready with its pool's versions loaded; then the edge,
started without a file: it, and every restart of it after a crash, serves the last applied
revision (so what `weir apply` and `weir rollback` put live since survives a crash). Every
component's log lines carry a `[name]` prefix; a
crashed component is restarted with backoff (meanwhile the edge's breaker and fallbacks answer
for a dead sidecar). Ctrl-C or SIGTERM drains the edge, then the sidecars, and leaves no
process behind; so does a SIGKILL of `weir up` itself (the supervisor's guardian). The sidecars
accept bodies as large as the release's `edge.max_body` (`scripts/fleet/limits.py`).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from pydantic import ValidationError

from scripts.args import add_release_file, command_parser
from scripts.deploy.changes import Change, require_newer
from scripts.deploy.pipeline import run
from scripts.edge.errors import DeployError
from scripts.edge.revisions import current_revision
from scripts.fleet import probe
from scripts.fleet.limits import sidecar_args, sidecar_max_body
from scripts.fleet.model_view import publish_view
from scripts.fleet.pools import PoolSidecar, pool_layout, pool_sidecars, view_link
from scripts.fleet.sync import LocalSidecars, missing_versions, wait_loaded
from scripts.release import Release, ReleaseError
from scripts.runtime import RuntimeDir, TokenError, ensure_token, resolve_devices
from scripts.stack.edge import plan_start
from scripts.stack.isolation import IsolationError, MemoryCgroups, PoolCgroup, check_cpus, preexec
from scripts.stack.supervisor import Child, Guardian, Supervisor, say
from sidecar.settings import Settings

READY_TIMEOUT_S = 300.0


def _weir(*args: str) -> list[str]:
    return [sys.executable, "-m", "scripts.cli", *args]


def wait_ready(child: Child, address: str, path: str, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Block until `address` answers 200 on `path`; raise if the child dies or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not child.running():
            raise RuntimeError(f"{child.name} exited before it was ready: see its log lines above")
        try:
            if probe.get(address, path, timeout=2.0)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{child.name} was not ready after {timeout_s:.0f}s at {address}{path}")


def local_address(listen: str) -> str:
    """Where a client on this machine reaches a listener bound to `listen` (host:port)."""
    host, _, port = listen.rpartition(":")
    return f"{'127.0.0.1' if host in ('', '0.0.0.0', '[::]') else host}:{port}"


def write_example(runtime: RuntimeDir) -> Path:
    """A ready-to-send V2 request for the sample `digits` model (an 8x8 image, pixels / 16)."""
    path = runtime.root / "examples" / "digits.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tensor = {"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0.5] * 64}
    path.write_text(json.dumps({"id": "example-1", "inputs": [tensor]}) + "\n")
    return path


IMAGE_MODEL = "handwriting"
IMAGE_SAMPLE = "seven.png"


def write_image_example(runtime: RuntimeDir, release: Release, models: Path) -> Path | None:
    """The sample image of a handwritten 7 (models/handwriting/seven.png), copied beside the
    JSON example when the release serves `handwriting`; None when it does not."""
    source = models / IMAGE_MODEL / IMAGE_SAMPLE
    if IMAGE_MODEL not in release.models or not source.is_file():
        return None
    path = runtime.root / "examples" / IMAGE_SAMPLE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(source.read_bytes())
    return path


def banner(
    listen: str, admin: str, token_hint: str, example: Path, image: Path | None = None
) -> str:
    edge, admin_url = f"http://{local_address(listen)}", f"http://{admin}"
    auth = f'-H "Authorization: Bearer {token_hint}"'
    upload = (
        [
            "  # an image file, as a lab client uploads it: its label and confidence",
            f"  curl -s -F image=@{image} {edge}/v2/models/{IMAGE_MODEL}/infer",
        ]
        if image is not None
        else []
    )
    return "\n".join(
        [
            "",
            f"Weir is up. Send V2 inference requests to {edge}",
            f"  admin API (loopback only): {admin_url}",
            "",
            "  # an inference (the edge picks the version; X-User-Id keeps a user on one)",
            f"  curl -s -H 'X-User-Id: alice' {edge}/v2/models/digits/infer -d @{example}",
            *upload,
            "  # live state of every model",
            f"  curl -s {auth} {admin_url}/admin/status",
            "  # kill switch for digits version 2, and its undo",
            f"  curl -s -XPOST   {auth} {admin_url}/admin/models/digits/versions/2/kill",
            f"  curl -s -XDELETE {auth} {admin_url}/admin/models/digits/versions/2/kill",
            "",
            "Ctrl-C stops everything.",
            "",
        ]
    )


def first_view(runtime: RuntimeDir, change: Change, models: Path) -> Release:
    """The release whose view of `models` the sidecars start on: what serves now.

    A start serves its revision. An apply of a file over a live revision starts them on the
    live one's view; the file's reaches them only through the pipeline's sidecar sync, which
    puts the live one's back should the apply fail. Without a live revision (or one whose
    versions `models` no longer holds, or whose pools are not the file's: the sidecars run
    the file's pools), there is only the file's.
    """
    if change.action != "apply":
        return change.loaded.release
    live = current_revision(runtime)
    if live is None:
        return change.loaded.release
    try:
        release = live.load().release
    except ReleaseError:
        return change.loaded.release
    file_layout = pool_layout(change.loaded.release)
    if missing_versions(release, models) or pool_layout(release) != file_layout:
        return change.loaded.release
    return release


def sidecar_argv(
    release: Release, runtime: RuntimeDir, sidecar: PoolSidecar, settings: Settings
) -> list[str]:
    """`weir sidecar` for one pool on one device: its view, socket, workers and threads."""
    argv = _weir("sidecar", "--models", str(view_link(runtime, sidecar.pool)))
    argv += ["--device", sidecar.device, "--socket", str(sidecar.socket(runtime))]
    argv += sidecar_args(release, settings)
    if sidecar.spec.workers is not None:
        argv += ["--workers", str(sidecar.spec.workers)]
    if sidecar.spec.intra_op_threads is not None:
        argv += ["--intra-op-threads", str(sidecar.spec.intra_op_threads)]
    return argv


def parser() -> argparse.ArgumentParser:
    parser = command_parser("up", "run sidecars and edge on this machine, in the foreground")
    add_release_file(parser, optional=True)
    parser.add_argument(
        "--models",
        type=Path,
        default=Path(os.environ.get("WEIR_MODELS_DIR", "models")),
        help="model repository (models/<name>/<version>/model.onnx)",
    )
    return parser


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    runtime = RuntimeDir.from_arg(args.runtime_dir)
    try:
        change = plan_start(runtime, args.file)
        if change.action == "apply":  # checked again under the change lock when applied
            require_newer(change.loaded, runtime)
    except ReleaseError as exc:  # the input is wrong (scripts/args.py: EXIT_CODES)
        print(f"weir up: {exc}", file=sys.stderr)
        return 2
    except DeployError as exc:
        print(f"weir up: {exc}", file=sys.stderr)
        return 1
    release = change.loaded.release
    missing = missing_versions(release, args.models)
    if missing:
        print(
            f"weir up: {change.loaded.path} names model versions that {args.models} does not "
            f"hold: {', '.join(missing)}. Add models/<name>/<version>/model.onnx or remove "
            "them from the release.",
            file=sys.stderr,
        )
        return 1
    runtime.ensure()
    env = {**os.environ, "WEIR_RUNTIME_DIR": str(runtime.root)}
    token_hint = "$WEIR_ADMIN_TOKEN"
    if release.edge.admin_auth == "token":
        try:
            ensure_token(runtime)
        except TokenError as exc:
            print(f"weir up: {exc}", file=sys.stderr)
            return 1
        if not os.environ.get("WEIR_ADMIN_TOKEN"):
            token_hint = f"$(cat {runtime.token_file})"

    devices = resolve_devices(release.sidecars.devices)
    pool_list = pool_sidecars(release, devices)
    try:
        check_cpus(pool_list)
    except IsolationError as exc:
        print(f"weir up: {exc}", file=sys.stderr)
        return 2
    starting = first_view(runtime, change, args.models.absolute())
    generations: dict[str, int] = {}
    try:
        for pool in release.pools():
            link = view_link(runtime, pool)
            generations[pool] = publish_view(starting, args.models.absolute(), link, pool)
    except (OSError, ValueError) as exc:
        print(f"weir up: cannot build the sidecars' view of {args.models}: {exc}", file=sys.stderr)
        return 1
    # `weir apply` reads this to load new model versions in these sidecars before the edge
    # routes to them; the lock held on it says this `weir up` still runs.
    try:
        settings = Settings.from_env()
    except ValidationError as exc:
        print(f"weir up: a WEIR_* sidecar setting is invalid:\n{exc}", file=sys.stderr)
        return 1
    max_body = sidecar_max_body(release, settings)  # fixed for as long as they run
    manifest = LocalSidecars(
        os.getpid(),
        str(args.models.absolute()),
        devices,
        settings.repository_poll_seconds,
        max_body,
        pool_layout(release),
    ).hold(runtime)
    grace_s = release.longest_timeout + 15
    guardian = Guardian()
    sup = Supervisor(guardian)
    sidecars: list[Child] = []
    edge: Child | None = None

    def stop(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, stop)
    capped = any(s.spec.memory is not None for s in pool_list)
    cgroups = MemoryCgroups.find() if capped else MemoryCgroups(None, 0)
    limits: list[PoolCgroup] = []
    try:
        summary = cgroups.summary(pool_list)
        if summary:
            say("up", summary)
        for sidecar in pool_list:
            try:
                cgroup = cgroups.for_sidecar(runtime.root, sidecar)
            except OSError as exc:
                say("up", f"{sidecar.name}: memory limit NOT enforced: {exc}")
                cgroup = None
            if cgroup is not None:
                limits.append(cgroup)
                guardian.remove_when_gone(cgroup.path)
            sidecars.append(
                sup.add(
                    Child(
                        sidecar.name,
                        sidecar_argv(release, runtime, sidecar, settings),
                        env=env,
                        grace_s=grace_s,
                        preexec=functools.partial(preexec, sidecar, cgroup),
                    )
                )
            )
        for child, sidecar in zip(sidecars, pool_list, strict=True):
            wait_ready(child, sidecar.address(runtime), "/v2/health/ready")
            # Ready means "serving what loaded": the release's versions must all be among it.
            deadline = time.monotonic() + READY_TIMEOUT_S
            wait_loaded(starting, runtime, sidecar, generations[sidecar.pool], deadline)
            say("up", f"{child.name} is ready")
        if change.action == "apply":  # the file's view reaches the sidecars in its sync step
            say("up", run(runtime, change).message)
        # No file: this edge, and every restart of it after a crash, serves the last applied
        # revision, whatever `weir apply` or `weir rollback` put live since.
        edge = sup.add(Child("edge", _weir("edge"), env=env, grace_s=grace_s))
        wait_ready(edge, local_address(release.edge.listen), "/v2/health/ready")
        example = write_example(runtime)
        image = write_image_example(runtime, release, args.models)
        edge_at, admin_at = release.edge.listen, release.edge.admin_listen
        say("up", banner(edge_at, admin_at, token_hint, example, image))
        sup.run_until_stopped()
    except KeyboardInterrupt:
        say("up", "stopping: draining the edge, then the sidecars")
    except (RuntimeError, ValueError, OSError) as exc:
        say("up", f"cannot start: {exc}")
        stop_all(sup, [c for c in (edge, *sidecars) if c], limits)
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        LocalSidecars.forget(runtime, manifest)
    stop_all(sup, [c for c in (edge, *sidecars) if c], limits)
    say("up", "stopped")
    return 0


def stop_all(sup: Supervisor, order: list[Child], cgroups: list[PoolCgroup]) -> None:
    """Stop the children in order, then remove the pools' cgroups they ran in."""
    sup.stop(order)
    for cgroup in cgroups:
        cgroup.remove()
