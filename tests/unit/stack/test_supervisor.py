"""The supervisor restarts crashed children with backoff and leaves no process behind."""

import os
import signal
import sys
import time

from scripts.stack import supervisor
from scripts.stack.supervisor import Child, Supervisor


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
