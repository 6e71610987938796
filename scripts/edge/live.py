"""Putting a revision live in a running edge and proving it: reload (HUP) when the nginx wiring
changed, else hand the workers the new Lua settings over the admin API (no connection closed);
then wait until the workers report the revision's checksum, or nginx's error log says why not.
"""

from __future__ import annotations

import os
import signal
import time

from scripts.edge.admin_client import AdminClient, AdminError, admin_refusal, token_or_none
from scripts.edge.errors import DeployError
from scripts.edge.process import log_offset, new_errors
from scripts.edge.revisions import Revision
from scripts.runtime import RuntimeDir

VERIFY_SECONDS = 10.0


def running_checksum(runtime: RuntimeDir, revision: Revision) -> tuple[str | None, str]:
    """The checksum the running workers report, or None and why it could not be read."""
    address = revision.admin_listen
    client = AdminClient(address, token_or_none(runtime), timeout=2.0)
    try:
        status, data = client.request("GET", "/admin/checksum")
    except AdminError as exc:
        return None, str(exc)
    if status != 200 or not isinstance(data, dict):
        return None, admin_refusal(runtime, address, status, data)
    return data.get("checksum"), ""


def wait_for_checksum(
    runtime: RuntimeDir, revision: Revision, log_offset: int, timeout: float = VERIFY_SECONDS
) -> None:
    """Until the running workers report revision's checksum; log_offset: where the error log
    ended before the action being verified (older lines are not about it)."""
    deadline = time.monotonic() + timeout
    seen, problem = None, ""
    while time.monotonic() < deadline:
        seen, problem = running_checksum(runtime, revision)
        if seen == revision.checksum:
            return
        errors = new_errors(runtime.error_log, log_offset)
        if errors:
            raise DeployError("nginx refused the new config:\n    " + "\n    ".join(errors[-5:]))
        if " answered 403 " in problem:  # a wrong token stays wrong: no point waiting
            raise DeployError(f"could not verify the new config: {problem}")
        time.sleep(0.05)
    if problem:
        raise DeployError(
            f"the edge did not report the new checksum within {timeout:g}s: {problem}"
        )
    raise DeployError(
        f"the edge did not report the new checksum within {timeout:g}s "
        f"(it reports {seen or 'nothing'}); see {runtime.error_log}"
    )


def reload_and_verify(runtime: RuntimeDir, pid: int, revision: Revision) -> None:
    offset = log_offset(runtime)
    os.kill(pid, signal.SIGHUP)
    wait_for_checksum(runtime, revision, offset)


def publish_settings(runtime: RuntimeDir, revision: Revision) -> None:
    """Same wiring: hand the workers the new Lua settings; no reload, no connection closed."""
    address = revision.admin_listen
    client = AdminClient(address, token_or_none(runtime), timeout=5.0)
    offset = log_offset(runtime)
    try:
        status, data = client.request("POST", "/admin/settings/reload")
    except AdminError as exc:
        raise DeployError(str(exc)) from None
    if status != 200:
        raise DeployError(
            "the edge did not take the new settings: "
            + admin_refusal(runtime, address, status, data)
        )
    wait_for_checksum(runtime, revision, offset)
