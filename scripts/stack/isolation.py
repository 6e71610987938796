"""A pool's CPU set and memory limit applied to its sidecar process group under `weir up`:
`docker run --cpus --memory` on one machine without Docker.

CPUs: `os.sched_setaffinity` in the sidecar's process before it execs, inherited by its
gunicorn workers and ONNX Runtime's threads (and `--intra-op-threads` = CPUs / workers, so ORT
does not start more threads than the set has CPUs). Indexes are checked against this
process's own affinity at start.

Memory: a cgroup per pool sidecar, the pid put in before exec, so every process it forks is
charged to it and the kernel OOM-kills inside it when the pool goes past its limit. cgroup v1:
`<memory mount>/<our own cgroup>/weir/<runtime>-<label>` with `memory.limit_in_bytes` (and
`memory.memsw.limit_in_bytes`, swap included, where swap accounting exists); v2: the same path
in the unified tree with `memory.max` (and `memory.swap.max` 0), where the memory controller can
be delegated to it. `<runtime>` is a hash of the runtime directory: two `weir up`s on one
machine never share a cgroup. Where neither is writable, the limit is not enforced, `weir up`
says so in one line at start, and starts anyway.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from scripts.fleet.pools import PoolSidecar

CGROUP_ROOT = Path("/sys/fs/cgroup")
PARENT = "weir"


class IsolationError(ValueError):
    """A pool's settings this machine cannot honour (a CPU it does not have)."""


def check_cpus(sidecars: list[PoolSidecar], available: set[int] | None = None) -> None:
    """Every pool's CPUs must be among those this process may run on."""
    available = os.sched_getaffinity(0) if available is None else available
    for sidecar in sidecars:
        missing = sorted(set(sidecar.spec.cpus or ()) - available)
        if missing:
            raise IsolationError(
                f"pool {sidecar.pool} asks for CPU(s) {', '.join(map(str, missing))}, which "
                f"`weir up` may not use here (it may use {_ranges(available)}): change "
                f"sidecars.pools.{sidecar.pool}.cpus in the release"
            )


def _ranges(cpus: set[int]) -> str:
    return ", ".join(map(str, sorted(cpus)))


def _own_cgroup(version: int) -> str:
    """This process's cgroup path in the v1 memory hierarchy or the v2 unified one."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            number, controllers, path = line.split(":", 2)
            if (version == 1 and "memory" in controllers.split(",")) or (
                version == 2 and number == "0" and not controllers
            ):
                return path.lstrip("/")
    return ""


@dataclass(frozen=True)
class MemoryCgroups:
    """Where pool cgroups go: `parent` (None: nowhere writable) and the hierarchy's version."""

    parent: Path | None
    version: int
    reason: str = ""

    @classmethod
    def find(cls, root: Path = CGROUP_ROOT) -> MemoryCgroups:
        """The writable memory hierarchy, if any; never raises (a limit is not worth a failed
        start: `summary` says what is not enforced)."""
        try:
            return cls._find(root)
        except OSError as exc:
            return cls(None, 0, f"cannot read {root}: {exc}")

    @classmethod
    def _find(cls, root: Path) -> MemoryCgroups:
        v1 = root / "memory"
        if (v1 / "memory.limit_in_bytes").exists():
            return cls._make(v1 / _own_cgroup(1), 1, [v1])
        for unified in (root, root / "unified"):
            controllers = unified / "cgroup.controllers"
            if controllers.exists() and "memory" in controllers.read_text().split():
                return cls._make(unified / _own_cgroup(2), 2, [unified])
        return cls(None, 0, f"no cgroup memory controller is mounted under {root}")

    @classmethod
    def _make(cls, own: Path, version: int, fallbacks: list[Path]) -> MemoryCgroups:
        problems = []
        for base in dict.fromkeys([own, *fallbacks]):
            parent = base / PARENT
            try:
                parent.mkdir(exist_ok=True)
                if version == 2:
                    _delegate_memory(base, parent)
                return cls(parent, version)
            except OSError as exc:
                problems.append(f"{parent}: {exc.strerror or exc}")
        return cls(None, version, "; ".join(problems))

    def for_sidecar(self, runtime_root: Path, sidecar: PoolSidecar) -> PoolCgroup | None:
        """The cgroup that caps `sidecar`'s memory, created and limited; None without a
        limit or where none can be made."""
        if sidecar.spec.memory is None or self.parent is None:
            return None
        cgroup = PoolCgroup(self.parent / cgroup_name(runtime_root, sidecar), self.version)
        cgroup.create(sidecar.spec.memory)
        return cgroup

    def summary(self, sidecars: list[PoolSidecar]) -> str | None:
        """The one line `weir up` prints on what is enforced (None: no pool asks for any)."""
        pinned = {s.pool: s.spec.cpus for s in sidecars if s.spec.cpus is not None}
        capped = {s.pool: s.spec.memory for s in sidecars if s.spec.memory is not None}
        if not pinned and not capped:
            return None
        parts = []
        if pinned:
            sets = "; ".join(f"{p}: {_ranges(set(c))}" for p, c in pinned.items())
            parts.append(f"CPU sets enforced by sched_setaffinity ({sets})")
        if capped:
            limits = "; ".join(f"{p}: {m // 2**20} MiB" for p, m in capped.items())
            if self.parent is not None:
                parts.append(
                    f"memory limits enforced by cgroup v{self.version} ({limits}) under "
                    f"{self.parent}"
                )
            else:
                parts.append(
                    f"memory limits NOT enforced ({limits}): no writable cgroup "
                    f"({self.reason}); the pools run without them"
                )
        return "isolation: " + "; ".join(parts)


def cgroup_name(runtime_root: Path, sidecar: PoolSidecar) -> str:
    """`<hash of the runtime directory>-<label>`: unique per `weir up` and pool sidecar."""
    return f"{hashlib.sha256(str(runtime_root).encode()).hexdigest()[:8]}-{sidecar.label}"


def _delegate_memory(base: Path, parent: Path) -> None:
    """cgroup v2: a child gets memory.max only where its parent enables the controller."""
    for directory in (base, parent):
        control = directory / "cgroup.subtree_control"
        if "memory" not in control.read_text().split():
            control.write_text("+memory")


@dataclass(frozen=True)
class PoolCgroup:
    """One pool sidecar's memory cgroup."""

    path: Path
    version: int

    def create(self, limit: int) -> None:
        self.path.mkdir(exist_ok=True)
        if self.version == 1:
            # The swap-inclusive limit may never be below the memory limit: in whichever order
            # works for the values already there.
            files = ["memory.limit_in_bytes"]
            if (self.path / "memory.memsw.limit_in_bytes").exists():  # swap accounting on
                files.append("memory.memsw.limit_in_bytes")
            for order in (files, files[::-1]):
                try:
                    for name in order:
                        (self.path / name).write_text(str(limit))
                    break
                except OSError:
                    continue
            else:
                raise OSError(f"cannot set the memory limit of {self.path}")
        else:
            (self.path / "memory.max").write_text(str(limit))
            with contextlib.suppress(OSError):
                (self.path / "memory.swap.max").write_text("0")

    def join(self) -> None:
        """In the sidecar's process before it execs: everything it forks is charged here."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def oom_kills(self) -> int:
        """Processes the kernel killed for memory in this cgroup."""
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        with contextlib.suppress(OSError):
            for line in (self.path / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        return 0

    def remove(self, timeout_s: float = 5.0) -> None:
        """Once its processes are gone (they may take a moment to be reaped)."""
        deadline = time.monotonic() + timeout_s
        while self.path.exists() and time.monotonic() < deadline:
            try:
                self.path.rmdir()
            except OSError:
                time.sleep(0.1)
        with contextlib.suppress(OSError):  # the `weir` parent, when no other weir up uses it
            self.path.parent.rmdir()


def preexec(sidecar: PoolSidecar, cgroup: PoolCgroup | None) -> None:
    """The pool's CPU set and cgroup, in the sidecar's process before it execs."""
    if sidecar.spec.cpus is not None:
        os.sched_setaffinity(0, sidecar.spec.cpus)
    if cgroup is not None:
        try:
            cgroup.join()
        except OSError as exc:  # the sidecar starts anyway; its log says what is not enforced
            os.write(2, f"weir up: memory limit NOT enforced: {cgroup.path}: {exc}\n".encode())
