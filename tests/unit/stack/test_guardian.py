"""A SIGKILLed supervisor leaves none of its children, nor their children, running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from scripts.stack.guardian import guard
from tests.processes import alive

ROOT = Path(__file__).resolve().parents[3]

# A supervisor with one child that forks a grandchild ignoring SIGTERM (a stuck worker); it
# prints the pids, then waits to be killed.
SUPERVISOR = """
import subprocess, sys, time
from scripts.stack.supervisor import Child, Guardian, Supervisor
grandchild = (
    "import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "p = subprocess.Popen([sys.executable, '-c', 'import signal, time; "
    "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)']); "
    "print('grandchild', p.pid, flush=True); time.sleep(120)"
)
sup = Supervisor(Guardian())
child = sup.add(Child("worker", [sys.executable, "-c", grandchild]))
print("child", child.pid, flush=True)
sup.run_until_stopped()
"""


def _wait(predicate, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_the_guardian_kills_only_the_groups_still_listed() -> None:
    assert guard(["+999999999", "-999999999", "garbage", "+1", "-"]) == []


def test_a_sigkilled_supervisor_takes_its_children_and_grandchildren_with_it() -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    pids: dict[str, int] = {}
    try:
        assert process.stdout is not None
        for line in process.stdout:
            name, _, pid = line.rpartition(" ")
            if name.endswith(("child", "grandchild")):
                pids[name.split()[-1]] = int(pid)
            if len(pids) == 2:
                break
        assert all(alive(pid) for pid in pids.values()), pids
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        assert _wait(lambda: not any(alive(pid) for pid in pids.values())), pids
    finally:
        for pid in pids.values():
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
