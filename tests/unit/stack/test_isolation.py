"""A pool's CPU set and memory cgroup under `weir up`: checked against this machine, created in
a cgroup tree (a fake one here: the real one is exercised by tests/integration/up/test_pools.py),
and reported in one line that says exactly what is enforced."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.fleet.pools import pool_sidecars
from scripts.release import parse_release
from scripts.stack.isolation import IsolationError, MemoryCgroups, PoolCgroup, check_cpus

RELEASE = """
revision: 1
sidecars:
  devices: cpu
  pools:
    light: {cpus: [0]}
    heavy: {cpus: [1, 3], memory: 256m}
models:
  digits: {versions: {"1": {}}, pool: light}
  cnn: {versions: {"1": {}}, pool: heavy}
"""


def sidecars():
    return pool_sidecars(parse_release(RELEASE))


def test_cpus_this_process_may_not_use_are_refused_with_what_it_may() -> None:
    check_cpus(sidecars(), available={0, 1, 3})
    with pytest.raises(IsolationError) as info:
        check_cpus(sidecars(), available={0, 1})
    assert str(info.value) == (
        "pool heavy asks for CPU(s) 3, which `weir up` may not use here (it may use 0, 1): "
        "change sidecars.pools.heavy.cpus in the release"
    )


def fake_v1(root: Path) -> Path:
    memory = root / "memory"
    memory.mkdir(parents=True)
    (memory / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    return memory


def test_a_v1_cgroup_per_pool_sidecar_with_its_limit(tmp_path: Path) -> None:
    fake_v1(tmp_path)
    cgroups = MemoryCgroups.find(tmp_path)
    assert cgroups.version == 1 and cgroups.parent is not None
    assert cgroups.parent.name == "weir"
    light, heavy = sidecars()
    assert cgroups.for_sidecar(Path("/srv/a"), light) is None  # no memory limit asked
    cgroup = cgroups.for_sidecar(Path("/srv/a"), heavy)
    assert cgroup is not None and cgroup.path.parent == cgroups.parent
    assert cgroup.path.name.endswith("-heavy-cpu")
    other = cgroups.for_sidecar(Path("/srv/b"), heavy)
    assert other is not None and other.path != cgroup.path  # two runtime dirs never share one
    assert (cgroup.path / "memory.limit_in_bytes").read_text() == str(256 * 1024**2)
    line = cgroups.summary(sidecars())
    assert line is not None
    assert "CPU sets enforced by sched_setaffinity (light: 0; heavy: 1, 3)" in line
    assert f"memory limits enforced by cgroup v1 (heavy: 256 MiB) under {cgroups.parent}" in line


def test_without_a_writable_cgroup_the_line_says_the_limit_is_not_enforced(tmp_path: Path) -> None:
    cgroups = MemoryCgroups.find(tmp_path / "nothing")
    assert cgroups.parent is None
    assert cgroups.for_sidecar(Path("/srv/a"), sidecars()[1]) is None
    line = cgroups.summary(sidecars()) or ""
    assert "memory limits NOT enforced (heavy: 256 MiB): no writable cgroup" in line
    assert "no cgroup memory controller is mounted" in line
    assert "CPU sets enforced" in line


def test_no_line_when_no_pool_asks_for_isolation() -> None:
    plain = parse_release('revision: 1\nmodels: {digits: {versions: {"1": {}}}}\n')
    assert MemoryCgroups(None, 0).summary(pool_sidecars(plain)) is None


def test_oom_kills_are_read_from_the_cgroups_own_counters(tmp_path: Path) -> None:
    v1 = PoolCgroup(tmp_path / "a", 1)
    v1.path.mkdir()
    (v1.path / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")
    assert v1.oom_kills() == 3
    v2 = PoolCgroup(tmp_path / "b", 2)
    v2.path.mkdir()
    (v2.path / "memory.events").write_text("low 0\nhigh 0\nmax 9\noom 2\noom_kill 2\n")
    assert v2.oom_kills() == 2
    v2.remove(timeout_s=0.2)
    assert v2.path.exists()  # its files are not the kernel's: rmdir fails, remove gives up
