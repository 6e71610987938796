"""One change at a time per runtime directory: two applies (or an apply and a rollback, or an
edge's start) must not interleave."""

from __future__ import annotations

import contextlib
import fcntl
import time
from collections.abc import Iterator

from scripts.edge.errors import DeployError
from scripts.runtime import RuntimeDir


@contextlib.contextmanager
def change_lock(runtime: RuntimeDir, wait: float = 30.0) -> Iterator[None]:
    runtime.edge.mkdir(parents=True, exist_ok=True)
    with (runtime.edge / "change.lock").open("w") as handle:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise DeployError(
                        f"another apply or rollback holds {runtime.edge / 'change.lock'} "
                        f"for over {wait:g}s; wait for it, or find it with `fuser`"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
