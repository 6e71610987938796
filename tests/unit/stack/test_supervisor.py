"""The supervisor restarts crashed children with backoff and leaves no process behind, even
when it is SIGKILLed itself (the guardian)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from scripts.stack import supervisor
from scripts.stack.guardian import guard
from scripts.stack.supervisor import Child, Supervisor

ROOT = Path(__file__).resolve().parents[3]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it has exited all the same.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(")")[-1].split()[0] != "Z"


def _wait_for(predicate, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_a_crashed_child_is_restarted_after_its_backoff(monkeypatch, capsys):
    monkeypatch.setattr(supervisor, "BACKOFF_FIRST_S", 0.2)
    sup = Supervisor()
    child = sup.add(Child("flaky", [sys.executable, "-c", "print('up'); raise SystemExit(3)"]))
    first_pid = child.pid
    try:
        assert _wait_for(lambda: (sup.check(), child.pid != first_pid)[1])
        assert child.backoff_s == 0.4  # doubled for the next crash
    finally:
        sup.stop()
    out = capsys.readouterr().out
    assert "[flaky] up" in out
    assert "[flaky] exited with 3; restarting in 0s" in out


def test_stop_drains_with_the_stop_signal_then_kills_the_whole_group(tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    # The child forks a grandchild that ignores SIGTERM, as a stuck worker would.
    script = (
        "import os, signal, subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-c', "
        "'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)'])\n"
        f"open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
        "time.sleep(60)\n"
    )
    sup = Supervisor()
    child = sup.add(Child("stuck", [sys.executable, "-c", script], grace_s=0.5))
    assert _wait_for(lambda: pidfile.exists() and pidfile.read_text() != "")
    grandchild = int(pidfile.read_text())
    sup.stop()
    assert not child.running()
    assert _wait_for(lambda: not _alive(grandchild))


def test_a_stopping_supervisor_restarts_nothing():
    sup = Supervisor()
    child = sup.add(Child("once", [sys.executable, "-c", "pass"], stop_signal=signal.SIGINT))
    child.process.wait()
    sup.stopping.set()
    sup.check()
    assert child.restart_at is None


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
        assert all(_alive(pid) for pid in pids.values()), pids
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        assert _wait_for(lambda: not any(_alive(pid) for pid in pids.values())), pids
    finally:
        for pid in pids.values():
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_the_guardian_removes_the_cgroups_it_was_told_of_once_empty(tmp_path) -> None:
    empty, busy = tmp_path / "empty", tmp_path / "busy"
    empty.mkdir()
    busy.mkdir()
    (busy / "tasks").write_text("")  # a plain directory with a file: rmdir fails, as when busy
    from scripts.stack import guardian

    guardian.remove([str(empty), str(busy)], wait_s=0.3)
    assert not empty.exists() and busy.exists()
    assert guard([f"@{busy}", "@relative/ignored"]) == []
