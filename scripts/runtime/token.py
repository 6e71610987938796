"""The admin API's bearer token: WEIR_ADMIN_TOKEN, else a private file (mode 0600) in the
runtime directory, created by `weir up` or `weir edge --init-token`."""

from __future__ import annotations

import os
import secrets
import stat

from scripts.runtime.layout import RuntimeDir

TOKEN_ENV = "WEIR_ADMIN_TOKEN"


class TokenError(RuntimeError):
    pass


def read_token(runtime: RuntimeDir) -> str | None:
    """WEIR_ADMIN_TOKEN wins; else the token file, which must be private (mode 0600)."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        return token
    path = runtime.token_file
    if not path.exists():
        return None
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise TokenError(
            f"{path} is readable by others (mode {mode:o}): run `chmod 600 {path}` and retry"
        )
    token = path.read_text().strip()
    return token or None


def ensure_token(runtime: RuntimeDir) -> str:
    """The admin token, creating a random one in the token file when none exists."""
    token = read_token(runtime)
    if token:
        return token
    runtime.edge.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(runtime.token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    return token
