"""New model versions reach the sidecars of `weir up` before the edge routes to them.

`weir up` records its sidecars in the runtime directory (`sidecars.json`: its pid, the model
repository, the devices, the pool layout). While it runs, `weir apply` publishes the new
release's view of the repository for every pool (a new generation each), waits until every
live worker of every sidecar of each pool has loaded its pool's and answers ready for each
version the release routes there, and only then switches the edge. If that fails, every
pool's previous view is put back and the edge is left alone. The pools themselves (which run,
their CPUs, memory and workers, which pool holds a model) are fixed while `weir up` runs: a
release that changes them is refused, as a device change is; a new model in a running pool
is loaded like a new version.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from prometheus_client.parser import text_string_to_metric_families

from scripts.fleet import probe
from scripts.fleet.model_view import point, publish_view
from scripts.fleet.pools import PoolSidecar, pool_layout, pool_sidecars, view_link
from scripts.release import Release
from scripts.release.sections import DEFAULT_POOL, Pool
from scripts.runtime import RuntimeDir, resolve_devices

MANIFEST = "sidecars.json"
LOAD_TIMEOUT_S = 180.0


class SidecarSyncError(RuntimeError):
    """The sidecars cannot serve the release; the message says which version and why."""


@dataclass(frozen=True)
class LocalSidecars:
    """The sidecars one `weir up` runs: `pid` is weir up's own; `poll_seconds` how often its
    sidecars rescan the repository (0: never); `max_body_bytes` the largest request body they
    accept, fixed when they start (None: a manifest written before it was recorded);
    `layout` the pools they run (`pools.pool_layout`; None: every model in the default pool,
    as before pools)."""

    pid: int
    models: str
    devices: list[str]
    poll_seconds: float = 2.0
    max_body_bytes: int | None = None
    layout: dict[str, Any] | None = None

    def hold(self, runtime: RuntimeDir) -> IO[str]:
        """Write the manifest and lock it for as long as the returned file stays open: the
        lock, not the pid, tells `weir apply` that this `weir up` still runs."""
        manifest = (runtime.root / MANIFEST).open("w")
        fcntl.flock(manifest, fcntl.LOCK_EX)
        manifest.write(json.dumps(asdict(self)) + "\n")
        manifest.flush()
        return manifest

    @classmethod
    def read(cls, runtime: RuntimeDir) -> LocalSidecars | None:
        """The manifest of a `weir up` that is still running, else None."""
        try:
            with (runtime.root / MANIFEST).open() as manifest:
                try:
                    fcntl.flock(manifest, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:
                    return cls(**json.loads(manifest.read()))
                return None  # nobody holds it: left by a `weir up` that is gone
        except (OSError, ValueError, TypeError):
            return None

    @staticmethod
    def forget(runtime: RuntimeDir, held: IO[str] | None) -> None:
        with contextlib.suppress(OSError):
            (runtime.root / MANIFEST).unlink()
        if held is not None:
            held.close()


def local_versions(release: Release, pool: str | None = None) -> list[tuple[str, str]]:
    """(model, version) pairs the release routes to local sidecars (of `pool`, when given)."""
    return [
        (name, version)
        for name, model in release.models.items()
        for version, spec in model.versions.items()
        if not spec.upstreams and pool in (None, model.pool)
    ]


def layout_change(release: Release, local: LocalSidecars) -> str | None:
    """How the release's pools differ from those `weir up` runs (None: they do not)."""
    # A manifest from before pools: every model in the default pool, with its defaults.
    running = local.layout or {"pools": {DEFAULT_POOL: Pool().model_dump()}, "models": {}}
    wanted = pool_layout(release)
    if wanted["pools"] != running["pools"]:
        return f"pools {_show(wanted['pools'])}, where it runs {_show(running['pools'])}"
    moved = [
        f"{name} to {pool} (it runs in {running['models'][name]})"
        for name, pool in wanted["models"].items()
        if running["models"].get(name, pool) != pool
    ]
    return f"it moves {', '.join(moved)}" if moved else None


def _show(pools: dict[str, Any]) -> str:
    def settings(spec: dict[str, Any]) -> str:
        shown = {**spec, "memory": spec["memory"] and f"{spec['memory'] // 2**20}m"}
        given = ", ".join(f"{k}: {v}" for k, v in shown.items() if v is not None)
        return f" {{{given}}}" if given else ""

    return "; ".join(f"{name}{settings(spec)}" for name, spec in pools.items())


def missing_versions(release: Release, models: Path) -> list[str]:
    """Release versions served by local sidecars whose model file is absent from `models`."""
    return [
        f"{name}/{version}"
        for name, version in local_versions(release)
        if not (models / name / version / "model.onnx").is_file()
    ]


def loaded_state(metrics: str) -> tuple[int | None, dict[tuple[str, str], float]]:
    """From a sidecar's Prometheus text: the repository generation every live worker has
    loaded, and `weir_model_ready` per (model, version) (the lowest over live workers)."""
    number: int | None = None
    ready: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            if sample.name == "weir_repository_generation":
                number = int(sample.value)
            elif sample.name == "weir_model_ready":
                ready[(sample.labels["model"], sample.labels["version"])] = sample.value
    return number, ready


@dataclass(frozen=True)
class Synced:
    """Sidecars now on new views, (link, previous target) per pool; `undo` points each back
    at its previous one."""

    message: str
    views: list[tuple[Path, Path | None]]

    def undo(self) -> None:
        for link, previous in self.views:
            if previous is not None:
                point(link, previous)


def sync_sidecars(
    release: Release, runtime: RuntimeDir, timeout_s: float = LOAD_TIMEOUT_S
) -> Synced | None:
    """Make the running sidecars serve every version of `release`; None when no `weir up`
    runs here (the sidecars, if any, are managed elsewhere). On failure the previous view is
    back in place."""
    local = LocalSidecars.read(runtime)
    if local is None:
        return None
    devices = resolve_devices(release.sidecars.devices)
    if devices != local.devices:
        raise SidecarSyncError(
            f"the release runs sidecars on {', '.join(devices)} but `weir up` (pid {local.pid}) "
            f"runs them on {', '.join(local.devices)}: a device change needs a restart of "
            "`weir up` with this release"
        )
    if local.max_body_bytes is not None and release.edge.max_body > local.max_body_bytes:
        raise SidecarSyncError(
            f"the release's edge.max_body ({release.edge.max_body} bytes) is above the "
            f"{local.max_body_bytes} bytes `weir up` (pid {local.pid}) started its sidecars "
            "with: the edge would pass bodies the sidecars cut off (a broken pipe, a 503). "
            "Restart `weir up` with this release, or keep max_body at most that"
        )
    change = layout_change(release, local)
    if change is not None:
        raise SidecarSyncError(
            f"the release changes the sidecar pools of `weir up` (pid {local.pid}): {change}. "
            "Pools are fixed while it runs: restart `weir up` with this release"
        )
    models = Path(local.models)
    missing = missing_versions(release, models)
    if missing:
        raise SidecarSyncError(
            f"the release routes to model versions that {models} does not hold: "
            f"{', '.join(missing)}; copy each to {models}/<name>/<version>/model.onnx first"
        )
    if local.poll_seconds <= 0:
        raise SidecarSyncError(
            f"`weir up` (pid {local.pid}) runs its sidecars with WEIR_REPOSITORY_POLL_SECONDS=0, "
            "so they never load new versions: restart it with this release instead"
        )
    synced = Synced("", [])
    try:
        numbers: dict[str, int] = {}
        for pool in release.pools():
            link = view_link(runtime, pool)
            previous = link.resolve() if link.is_symlink() else None
            try:
                numbers[pool] = publish_view(release, models, link, pool)
            except (OSError, ValueError) as exc:
                raise SidecarSyncError(
                    f"could not build the sidecars' view of {models}: {exc}"
                ) from None
            synced.views.append((link, previous))
        deadline = time.monotonic() + timeout_s
        sidecars = pool_sidecars(release, local.devices)
        for sidecar in sidecars:
            wait_loaded(release, runtime, sidecar, numbers[sidecar.pool], deadline)
    except BaseException:
        synced.undo()
        raise
    on = ", ".join(local.devices)
    loaded = "; ".join(
        f"{'sidecars' if pool == DEFAULT_POOL else f'pool {pool} sidecars'} on {on} loaded "
        f"repository generation {number}"
        for pool, number in numbers.items()
    )
    return Synced(loaded, synced.views)


def wait_loaded(
    release: Release, runtime: RuntimeDir, sidecar: PoolSidecar, number: int, deadline: float
) -> None:
    """Until every live worker of `sidecar` has loaded generation `number` of its pool's view
    and reports each of the release's versions in its pool ready (or `deadline`, a monotonic
    time, passes)."""
    address = sidecar.address(runtime)
    name = f"the sidecar {sidecar.name}"
    wanted = local_versions(release, sidecar.pool)
    seen: int | None = None
    problem = "it has not answered yet"
    while True:
        try:
            status, body = probe.get(address, "/metrics", timeout=5.0)
        except (OSError, http.client.HTTPException) as exc:
            status, body, problem = 0, b"", f"nothing answers at {address} ({exc})"
        if status == 200:
            seen, ready = loaded_state(body.decode("utf-8", "replace"))
            problem = f"it reports repository generation {seen}, wanted {number}"
            if seen is not None and seen >= number:
                not_ready = [key for key in wanted if ready.get(key) != 1.0]
                if not not_ready:
                    return
                raise SidecarSyncError(
                    f"{name} cannot serve {', '.join('/'.join(k) for k in not_ready)}: "
                    + why_not_ready(address, not_ready[0])
                )
        elif status:
            problem = f"its /metrics answered {status}"
        if time.monotonic() > deadline:
            raise SidecarSyncError(
                f"{name} has not loaded the new models in time: {problem}; `weir up`'s "
                f"[{sidecar.name}] log lines say what it is doing"
            )
        time.sleep(0.2)


def why_not_ready(address: str, key: tuple[str, str]) -> str:
    """The sidecar's own words on a version that is not ready (e.g. why it failed to load).
    Any worker may answer: ask a few times for one that does not hold it."""
    path = f"/v2/models/{key[0]}/versions/{key[1]}/ready"
    for _ in range(8):
        try:
            status, body = probe.get(address, path, timeout=5.0)
        except (OSError, http.client.HTTPException) as exc:
            return f"it did not answer {path} ({exc})"
        if status != 200:
            detail = body.decode("utf-8", "replace").strip()
            with contextlib.suppress(ValueError, TypeError, KeyError):
                detail = json.loads(detail)["error"]
            return detail
    return "some of its workers do not report it ready; `weir up`'s log lines say why"
