"""What a crashed edge leaves behind is found by its master's process group and cleared; a
running edge is not touched. Real processes stand in for nginx (their command line says so)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.edge.errors import DeployError
from scripts.edge.process import clear_leftovers, nginx_group, worker_pids
from scripts.runtime import RuntimeDir
from tests.processes import alive

STARTED: list[int] = []


def fake_master(*children: str) -> tuple[subprocess.Popen[str], list[int]]:
    """A session leader ("nginx: master process") with children named `children` in its
    process group, as nginx forks its workers; returns it and the children's pids."""
    spawn = " ".join(f'(exec -a "{name}" sleep 60) & echo $!;' for name in children)
    master = subprocess.Popen(
        ["bash", "-c", f'{spawn} exec -a "nginx: master process x" sleep 60'],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert master.stdout is not None
    pids = [int(master.stdout.readline()) for _ in children]
    STARTED.extend([master.pid, *pids])
    # Each has exec'ed once its command line is the name it was given.
    deadline = time.monotonic() + 5
    for pid, name in zip([master.pid, *pids], ["nginx: master", *children], strict=True):
        while not Path(f"/proc/{pid}/cmdline").read_bytes().startswith(name.encode()):
            assert time.monotonic() < deadline, f"{pid} never became {name!r}"
            time.sleep(0.01)
    return master, pids


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[RuntimeDir]:
    rt = RuntimeDir(tmp_path)
    rt.ensure()
    yield rt
    for pid in STARTED:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    STARTED.clear()


def test_workers_of_a_sigkilled_master_are_cleared_and_nothing_else(runtime: RuntimeDir) -> None:
    master, (worker, bystander) = fake_master("nginx: worker process", "not-nginx")
    runtime.pid_file.write_text(f"{master.pid}\n")
    master.kill()
    master.wait()
    assert nginx_group(master.pid) == [worker]  # the bystander shares the group, not the name
    done = clear_leftovers(runtime)
    assert done is not None and f"(pid {master.pid})" in done
    assert not alive(worker) and alive(bystander)
    assert not runtime.pid_file.exists()


def test_a_master_whose_parent_lives_is_a_running_edge(runtime: RuntimeDir) -> None:
    master, (worker,) = fake_master("nginx: worker process")
    runtime.pid_file.write_text(f"{master.pid}\n")
    with pytest.raises(DeployError, match=f"an edge already runs .*pid {master.pid}"):
        clear_leftovers(runtime)
    assert alive(master.pid) and alive(worker)


def test_nothing_to_clear_without_a_pid_file_or_processes(runtime: RuntimeDir) -> None:
    assert clear_leftovers(runtime) is None
    runtime.pid_file.write_text("999999999\n")
    assert clear_leftovers(runtime) is None


def test_worker_pids_leaves_out_workers_shutting_down(runtime: RuntimeDir) -> None:
    master, (serving, leaving) = fake_master(
        "nginx: worker process", "nginx: worker process is shutting down"
    )
    assert worker_pids(master.pid) == [serving]
    assert leaving not in worker_pids(master.pid)
