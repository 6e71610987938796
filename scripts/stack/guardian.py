"""The guardian of `weir up`'s children: a tiny process that outlives a SIGKILLed `weir up`.

Each child of `weir up` leads its own session (a Ctrl-C meant for `weir up` must not reach
gunicorn or nginx as a fast shutdown), so nothing stops them when `weir up` dies without its
`finally:` running (SIGKILL, the OOM killer). The guardian reads, on its stdin, `+PGID` for each
process group `weir up` starts and `-PGID` for each it has stopped and reaped; when its stdin
closes (`weir up` is gone, however it went) it SIGKILLs the groups still listed, and exits.
Only groups `weir up` itself started are ever named. Run as a file (`python guardian.py`):
it imports nothing of Weir, so it starts in milliseconds.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys


def guard(lines: list[str] | None = None) -> list[int]:
    """Follow the +/- lines until EOF; kill what is left; return the groups it killed."""
    groups: set[int] = set()
    for line in lines if lines is not None else sys.stdin:
        line = line.strip()
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
    return killed


if __name__ == "__main__":
    # A Ctrl-C or a hang-up of the terminal reaches the whole foreground group, this process
    # included: `weir up` stops its children itself then, and closes our stdin when done.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, signal.SIG_IGN)
    killed = guard()
    if killed:
        print(f"[up] weir up is gone: killed process groups {killed}", file=sys.stderr)
