"""A client of the edge's admin API: the address from the applied revision, the token from
WEIR_ADMIN_TOKEN or the runtime directory's token file, answers for an operator."""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any

from scripts.runtime import RuntimeDir, TokenError, read_token


class AdminError(RuntimeError):
    """The admin API could not be reached, or refused: `status` is its answer's, if any."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class AdminClient:
    address: str  # host:port
    token: str | None
    timeout: float = 5.0

    @classmethod
    def for_runtime(cls, runtime: RuntimeDir, timeout: float = 5.0) -> AdminClient:
        settings_file = runtime.current / "settings.json"
        try:
            settings = json.loads(settings_file.read_text())
        except (OSError, ValueError):
            raise AdminError(
                f"no applied release in {runtime.root} (missing {settings_file}): "
                "start an edge on a release first (`weir edge FILE` or `weir up FILE`; "
                "`weir apply FILE` then changes what a running edge serves)"
            ) from None
        try:
            token = read_token(runtime)
        except TokenError as exc:
            raise AdminError(str(exc)) from None
        return cls(settings["admin_listen"], token, timeout)

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One request on a fresh connection (so a reload's new workers answer)."""
        host, _, port = self.address.rpartition(":")
        conn = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=self.timeout)
        headers = {"Connection": "close"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        payload = None if body is None else json.dumps(body)
        if payload is not None:
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            raw = response.read()
        except OSError as exc:
            raise AdminError(
                f"the edge's admin API at {self.address} does not answer ({exc}): "
                "is the edge running? (`weir edge`)"
            ) from None
        finally:
            conn.close()
        content_type = response.getheader("Content-Type", "")
        if content_type.startswith("application/json"):
            try:
                return response.status, json.loads(raw)
            except ValueError:
                pass
        return response.status, raw.decode(errors="replace")

    def checked(self, method: str, path: str, body: Any = None) -> Any:
        status, data = self.request(method, path, body)
        if status >= 400:
            message = data.get("error") if isinstance(data, dict) else data
            raise AdminError(f"{method} {path} -> {status}: {message}", status)
        return data


def token_or_none(runtime: RuntimeDir) -> str | None:
    """The admin token, or None when none is set or the file may not be read."""
    try:
        return read_token(runtime)
    except TokenError:
        return None


def admin_refusal(runtime: RuntimeDir, address: str, status: int, data: object) -> str:
    """What an admin API answer other than 200 means, for the operator."""
    message = data.get("error") if isinstance(data, dict) else str(data).strip()[:200]
    text = f"the edge's admin API at {address} answered {status} {message}"
    if status == 403:
        return text + (
            ": the WEIR_ADMIN_TOKEN in your shell (else the token file "
            f"{runtime.token_file}) differs from the edge's, read when it started: use the "
            "edge's token, or restart the edge with yours"
        )
    if status == 401:
        return text + (
            ": your shell has no admin token (WEIR_ADMIN_TOKEN, or the token file "
            f"{runtime.token_file}) and the edge requires one: export the edge's token"
        )
    return text
