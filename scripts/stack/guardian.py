"""The guardian of `weir up`'s children: a tiny process that outlives a SIGKILLed `weir up`.

Each child of `weir up` leads its own session (a Ctrl-C meant for `weir up` must not reach
gunicorn or nginx as a fast shutdown), so nothing stops them when `weir up` dies without its
`finally:` running (SIGKILL, the OOM killer). The guardian reads, on its stdin, `+PGID` for each
process group `weir up` starts and `-PGID` for each it has stopped and reaped, and `@PATH` for
each pool's memory cgroup (`isolation.py`); when its stdin closes (`weir up` is gone, however it
went) it SIGKILLs the groups still listed, removes those cgroups once their processes are gone
(an empty cgroup that nobody removes would stay until reboot), and exits.
Only groups `weir up` itself started are ever named. Run as a file (`python guardian.py`):
it imports nothing of Weir, so it starts in milliseconds.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time

CGROUP_WAIT_S = 5.0  # SIGKILLed processes leave their cgroup as they are reaped


def guard(lines: list[str] | None = None) -> list[int]:
    """Follow the +/-/@ lines until EOF; kill what is left, remove the cgroups; return the
    groups it killed."""
    groups: set[int] = set()
    cgroups: list[str] = []
    for line in lines if lines is not None else sys.stdin:
        line = line.strip()
        if line.startswith("@/"):
            cgroups.append(line[1:])
            continue
        with contextlib.suppress(ValueError):
            pgid = int(line[1:])
            if pgid > 1 and line[0] == "+":
                groups.add(pgid)
            elif line[0] == "-":
                groups.discard(pgid)
    killed = []
    for pgid in sorted(groups):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
            killed.append(pgid)
    remove(cgroups)
    return killed


def remove(cgroups: list[str], wait_s: float = CGROUP_WAIT_S) -> None:
    deadline = time.monotonic() + wait_s
    for path in cgroups:
        while os.path.isdir(path):
            try:
                os.rmdir(path)
            except OSError:  # still has processes (or is not a cgroup): try again, briefly
                if time.monotonic() > deadline:
                    break
                time.sleep(0.1)


if __name__ == "__main__":
    # A Ctrl-C or a hang-up of the terminal reaches the whole foreground group, this process
    # included: `weir up` stops its children itself then, and closes our stdin when done.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, signal.SIG_IGN)
    killed = guard()
    if killed:
        print(f"[up] weir up is gone: killed process groups {killed}", file=sys.stderr)
