"""The edges a rollout steps: this runtime's own (the default), or every edge replica named
with `--edge HOST:PORT` (their admin listeners, e.g. through `kubectl port-forward`), all with
one admin token (`--token-file`, else WEIR_ADMIN_TOKEN, else the runtime's token file).

Every change goes to every edge and every read comes from every edge; what one edge did not
take is returned by name, never dropped: the controller pauses on it, or (a rollback) retries
it until it lands.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts.edge.admin_client import AdminClient, AdminError
from scripts.runtime import RuntimeDir, TokenError, read_token


class EdgeUnreachable(AdminError):
    """One of several edges did not answer; `address` says which."""

    def __init__(self, address: str, message: str) -> None:
        super().__init__(f"edge {address}: {message}")
        self.address = address


def token_for(runtime: RuntimeDir, token_file: str) -> str | None:
    if token_file:
        try:
            return Path(token_file).read_text().strip() or None
        except OSError as exc:
            raise AdminError(f"cannot read the admin token file {token_file}: {exc}") from None
    try:
        return read_token(runtime)
    except TokenError as exc:
        raise AdminError(str(exc)) from None


@dataclass(frozen=True)
class Edges:
    clients: tuple[AdminClient, ...]

    @classmethod
    def of(cls, runtime: RuntimeDir, addresses: list[str], token_file: str = "") -> Edges:
        """The named edges, or this runtime's own when none is named."""
        if not addresses:
            return cls((AdminClient.for_runtime(runtime),))
        token = token_for(runtime, token_file)
        return cls(tuple(AdminClient(address, token) for address in addresses))

    @property
    def several(self) -> bool:
        return len(self.clients) > 1

    @property
    def addresses(self) -> list[str]:
        return [c.address for c in self.clients]

    def client(self, address: str) -> AdminClient:
        return next(c for c in self.clients if c.address == address)

    def change(self, method: str, path: str, body: Any = None) -> dict[str, str]:
        """Send the change to every edge; what failed, by edge (empty: all took it)."""
        failed: dict[str, str] = {}
        for client in self.clients:
            try:
                client.checked(method, path, body)
            except AdminError as exc:
                failed[client.address] = str(exc)
        return failed

    def read(self, path: str) -> list[tuple[str, Any]]:
        """Every edge's answer, in order; EdgeUnreachable names the first that failed."""
        out = []
        for client in self.clients:
            try:
                out.append((client.address, client.checked("GET", path)))
            except AdminError as exc:
                if not self.several:
                    raise
                raise EdgeUnreachable(client.address, str(exc)) from None
        return out


def edge_address(value: str) -> str:
    """`--edge` as host:port (an http:// prefix and a trailing / are dropped)."""
    text = value.removeprefix("http://").rstrip("/")
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(
            f"--edge {value!r}: give the edge's admin listener as HOST:PORT (127.0.0.1:9901)"
        )
    return text
