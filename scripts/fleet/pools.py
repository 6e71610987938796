"""The release's sidecar pools as processes: one sidecar per pool and device, and their names.

One place names a pool's sidecar, for every consumer (`weir up`, the edge's upstreams and metrics
relays, `weir k8s`'s containers, the scrape configs): the `default` pool keeps the names Weir
had before pools (label `<device>`: socket `sidecar-<device>.sock`, `/metrics/sidecars/<device>`,
log prefix and container `sidecar-<device>`), any other pool's label is `<pool>-<device>`. No
device has a `-` in it (`cpu` or a GPU index), so two labels never collide. Each pool has its own
view of the model repository: `repository` for `default`, `repository-<pool>` for the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts.release import Release
from scripts.release.sections import DEFAULT_POOL, Pool
from scripts.runtime import RuntimeDir, resolve_devices


def sidecar_label(pool: str, device: str) -> str:
    return device if pool == DEFAULT_POOL else f"{pool}-{device}"


def view_link(runtime: RuntimeDir, pool: str) -> Path:
    """The repository view the pool's sidecars serve (a symlink to its latest generation)."""
    return runtime.repository if pool == DEFAULT_POOL else runtime.root / f"repository-{pool}"


@dataclass(frozen=True)
class PoolSidecar:
    """One sidecar process group: pool `pool` on `device`, with the pool's settings."""

    pool: str
    device: str
    spec: Pool

    @property
    def label(self) -> str:
        return sidecar_label(self.pool, self.device)

    @property
    def name(self) -> str:
        """Its log prefix under `weir up`, and its container's name in Kubernetes."""
        return f"sidecar-{self.label}"

    def socket(self, runtime: RuntimeDir) -> Path:
        return runtime.sidecar_socket(self.label)

    def address(self, runtime: RuntimeDir) -> str:
        return f"unix:{self.socket(runtime)}"


def pool_sidecars(release: Release, devices: list[str] | None = None) -> list[PoolSidecar]:
    """Every sidecar the release runs: each pool in use, on each device (`devices`: the
    release's own, resolved on this machine, unless given)."""
    devices = resolve_devices(release.sidecars.devices) if devices is None else devices
    return [
        PoolSidecar(pool, device, spec)
        for pool, spec in release.pools().items()
        for device in devices
    ]


def pool_layout(release: Release) -> dict[str, Any]:
    """What running sidecars are fixed to when they start: the pools that run with their
    settings, and which pool holds each model (JSON-ready, for `weir up`'s manifest)."""
    return {
        "pools": {name: spec.model_dump() for name, spec in release.pools().items()},
        "models": {name: model.pool for name, model in release.models.items()},
    }
