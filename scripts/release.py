"""The release YAML: one strict schema for everything the edge and the sidecars are told.

Every value that reaches an nginx template is checked here first, against a pattern that cannot
carry whitespace, `;`, braces, quotes or `$`: a release cannot inject nginx directives.
Errors name the file, the line, the key path, the bad value and what is allowed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
VERSION_RE = re.compile(r"^[1-9][0-9]{0,8}$")
HEADER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,62}$")
DURATION_RE = re.compile(r"^([0-9]{1,6})(ms|s|m|h)$")
SIZE_RE = re.compile(r"^([0-9]{1,6})([kmg]?)$", re.IGNORECASE)
RATE_RE = re.compile(r"^([1-9][0-9]{0,6})r/([sm])$")
HOSTPORT_RE = re.compile(
    r"^(?P<host>[A-Za-z0-9.-]{1,253}|\[[0-9a-fA-F:]{2,39}\]):(?P<port>[0-9]{1,5})$"
)
UNIX_RE = re.compile(r"^unix:/[A-Za-z0-9_./-]{1,200}$")
LOOPBACK_HOSTS = ("127.0.0.1", "[::1]")


class ReleaseError(ValueError):
    """A release that must not be applied; the message is meant for the person who wrote it."""


# ---------------------------------------------------------------------------- value types


def _parse_duration(value: Any) -> float:
    """'500ms' | '2s' | '1m' | '1h' -> seconds."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError("expected a duration such as 500ms, 2s, 1m")
    text = f"{value}s" if isinstance(value, int) else value.strip()
    match = DURATION_RE.match(text)
    if not match:
        raise ValueError("expected a duration such as 500ms, 2s, 1m or 1h")
    number, unit = int(match.group(1)), match.group(2)
    seconds = number * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    if seconds <= 0:
        raise ValueError("a duration must be longer than zero")
    return seconds


def _parse_size(value: Any) -> int:
    """'16m' | '512k' | 1048576 -> bytes."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError("expected a size such as 512k, 16m or 1g")
    match = SIZE_RE.match(str(value).strip())
    if not match:
        raise ValueError("expected a size such as 512k, 16m or 1g")
    number, unit = int(match.group(1)), match.group(2).lower()
    size = number * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit]
    if not 1024 <= size <= 4 * 1024**3:
        raise ValueError("a size must lie between 1k and 4g")
    return size


Duration = Annotated[float, BeforeValidator(_parse_duration)]
Size = Annotated[int, BeforeValidator(_parse_size)]


def _version_key(value: Any) -> str:
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not VERSION_RE.match(text):
        raise ValueError(f"version {value!r} is not allowed: versions are positive integers")
    return text


def _check_listen(value: Any, *, loopback: bool) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = f"{'127.0.0.1' if loopback else '0.0.0.0'}:{value}"
    if not isinstance(value, str):
        raise ValueError("expected a port (8080) or host:port (127.0.0.1:8080)")
    match = HOSTPORT_RE.match(value)
    if not match or not 1 <= int(match.group("port")) <= 65535:
        raise ValueError("expected a port (8080) or host:port (127.0.0.1:8080), port 1-65535")
    if loopback and match.group("host") not in LOOPBACK_HOSTS:
        raise ValueError("the admin listener must be on loopback: 127.0.0.1:PORT or [::1]:PORT")
    return value


# ---------------------------------------------------------------------------- sections


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Edge(Strict):
    """The edge's listeners and process settings."""

    listen: str = Field("0.0.0.0:8080", description="data-plane port or host:port")
    admin_listen: str = Field("127.0.0.1:9901", description="admin API, loopback only")
    admin_auth: Literal["token", "open"] = Field(
        "token",
        description="token: bearer token required (env WEIR_ADMIN_TOKEN or the token file); "
        "open: no token, an explicit choice for a loopback-only admin listener",
    )
    max_body: Size = Field(16 * 1024**2, description="largest request body accepted")
    workers: Literal["auto"] | Annotated[int, Field(ge=1, le=64)] = "auto"
    worker_connections: int = Field(4096, ge=64, le=65536)
    keepalive: int = Field(32, ge=0, le=1024, description="idle upstream connections per worker")
    access_log: bool = Field(False, description="write an access log (costs throughput)")

    @field_validator("listen", mode="before")
    @classmethod
    def _listen(cls, value: Any) -> str:
        return _check_listen(value, loopback=False)

    @field_validator("admin_listen", mode="before")
    @classmethod
    def _admin_listen(cls, value: Any) -> str:
        return _check_listen(value, loopback=True)


class Sidecars(Strict):
    devices: Literal["auto", "cpu"] | list[Annotated[int, Field(ge=0, le=63)]] = "auto"

    @field_validator("devices")
    @classmethod
    def _devices(cls, value: Any) -> Any:
        if isinstance(value, list) and (not value or len(set(value)) != len(value)):
            raise ValueError("list GPU indexes once each, at least one: [0, 1]")
        return value


class Batching(Strict):
    """Passed to the sidecars untouched (they own its meaning)."""

    max_batch_size: int = Field(32, ge=1, le=4096)
    max_queue_delay_ms: float = Field(2, ge=0, le=1000)
    max_queue_size: int = Field(256, ge=1, le=100_000)


class Version(Strict):
    batching: Batching | None = None
    upstreams: list[str] | None = Field(
        None, description="explicit sidecars for this version: host:port or unix:/path.sock"
    )

    @field_validator("upstreams")
    @classmethod
    def _upstreams(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("name at least one upstream, or leave the key out")
        for item in value:
            hostport = HOSTPORT_RE.match(item)
            port_ok = hostport is not None and 1 <= int(hostport.group("port")) <= 65535
            if not (UNIX_RE.match(item) or port_ok):
                raise ValueError(
                    f"upstream {item!r} is not allowed: use host:port (127.0.0.1:9000) "
                    "or unix:/absolute/path.sock (letters, digits, _ . / - only)"
                )
        if len(set(value)) != len(value):
            raise ValueError("an upstream is listed twice")
        return value


class ReleasePolicy(Strict):
    split: dict[str, Annotated[float, Field(ge=0, le=100)]] | None = Field(
        None, description="percent per version, summing to 100 (at most 1 decimal)"
    )
    sticky_key: str = Field("remote_addr", description="remote_addr or header:NAME")
    force_header: str | None = Field(None, description="a header naming the version to use")

    @field_validator("split", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {_version_key(k): v for k, v in value.items()}
        return value

    @field_validator("split")
    @classmethod
    def _split(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is None:
            return None
        for version, weight in value.items():
            if round(weight, 1) != weight:
                raise ValueError(f"weight {weight} of version {version}: at most 1 decimal")
        if abs(sum(value.values()) - 100) > 1e-6:
            raise ValueError(f"weights must sum to 100 (they sum to {sum(value.values()):g})")
        return value

    @field_validator("sticky_key")
    @classmethod
    def _sticky(cls, value: str) -> str:
        if value == "remote_addr":
            return value
        if value.startswith("header:") and HEADER_RE.match(value[7:]):
            return value
        raise ValueError("expected remote_addr or header:NAME (NAME: letters, digits and -)")

    @field_validator("force_header")
    @classmethod
    def _force(cls, value: str | None) -> str | None:
        if value is not None and not HEADER_RE.match(value):
            raise ValueError("expected a header name: letters, digits and - (X-Weir-Version)")
        return value


class RateLimit(Strict):
    rate: str = Field(description="NNNr/s or NNNr/m")
    burst: int = Field(0, ge=0, le=1_000_000)
    nodelay: bool = True
    delay: int | None = Field(None, ge=0, le=1_000_000, description="requests served undelayed")
    key: str = Field("remote_addr", description="remote_addr | header:NAME | global")
    missing_key: Literal["remote_addr", "reject"] = Field(
        "remote_addr",
        description="key header:NAME, request without it: limited on its client's address "
        "(remote_addr) or refused with 401 (reject)",
    )
    zone_size: Size = Field(10 * 1024**2, description="shared memory for the keys")

    @field_validator("rate")
    @classmethod
    def _rate(cls, value: str) -> str:
        if not RATE_RE.match(value):
            raise ValueError("expected requests per second or minute: 500r/s or 30r/m")
        return value

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        if value in ("remote_addr", "global"):
            return value
        if value.startswith("header:") and HEADER_RE.match(value[7:]):
            return value
        raise ValueError("expected remote_addr, global or header:NAME")

    @model_validator(mode="after")
    def _delay(self) -> RateLimit:
        if self.delay is not None and self.delay > self.burst:
            raise ValueError(f"delay ({self.delay}) cannot exceed burst ({self.burst})")
        if self.missing_key != "remote_addr" and not self.key.startswith("header:"):
            raise ValueError("missing_key applies to key: header:NAME only; leave it out")
        return self

    @property
    def per_second(self) -> float:
        match = RATE_RE.match(self.rate)
        assert match
        return int(match.group(1)) / (1 if match.group(2) == "s" else 60)


class Breaker(Strict):
    failures: int = Field(5, ge=1, le=10_000, description="upstream failures that open it")
    window: Duration = Field(10.0, description="...counted within this window")
    open_for: Duration = Field(5.0, description="first open period; doubles on each re-open")
    max_open_for: Duration = Field(300.0, description="cap of the doubling")
    probes: int = Field(3, ge=1, le=1000, description="half-open probes that must succeed")

    @model_validator(mode="after")
    def _cap(self) -> Breaker:
        if self.max_open_for < self.open_for:
            raise ValueError("max_open_for must be at least open_for")
        return self


class Fallback(Strict):
    version: str | None = Field(None, description="answer with this version instead")
    status: int | None = Field(None, ge=200, le=599, description="placeholder status")
    body: dict[str, Any] | list[Any] | None = Field(None, description="placeholder JSON body")

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: Any) -> Any:
        return None if value is None else _version_key(value)

    @model_validator(mode="after")
    def _one_kind(self) -> Fallback:
        if self.version is not None and (self.status is not None or self.body is not None):
            raise ValueError("a fallback is either {version: V} or {status: S, body: {...}}")
        if self.version is None and self.status is None:
            raise ValueError("give either version: V or status: S (with an optional body)")
        return self


class Model(Strict):
    versions: dict[str, Version] = Field(min_length=1)
    release: ReleasePolicy = ReleasePolicy()
    rate_limit: RateLimit | None = None
    breaker: Breaker = Breaker()
    fallback: Fallback | None = None
    timeout: Duration = Field(10.0, description="upstream read/send timeout per request")

    @field_validator("versions", mode="before")
    @classmethod
    def _version_keys(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {_version_key(k): ({} if v is None else v) for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _references(self) -> Model:
        if self.timeout > 3600:
            raise ValueError("timeout must be at most 1h")
        for version in self.release.split or {}:
            if version not in self.versions:
                raise ValueError(
                    f"release.split names version {version}, which is not under versions "
                    f"(versions: {', '.join(self.versions)})"
                )
        if self.fallback and self.fallback.version and self.fallback.version not in self.versions:
            raise ValueError(
                f"fallback.version {self.fallback.version} is not under versions "
                f"(versions: {', '.join(self.versions)})"
            )
        return self

    def weights(self) -> dict[str, float]:
        """The YAML's split, or everything on the newest version when none is given."""
        if self.release.split:
            return dict(self.release.split)
        newest = max(self.versions, key=int)
        return {v: (100.0 if v == newest else 0.0) for v in self.versions}


class Release(Strict):
    revision: int = Field(ge=1, le=2**53, description="must increase with every apply")
    edge: Edge = Edge()
    sidecars: Sidecars = Sidecars()
    models: dict[str, Model] = Field(min_length=1)

    @field_validator("models", mode="before")
    @classmethod
    def _model_names(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for name in value:
                if not isinstance(name, str) or not NAME_RE.match(name):
                    raise ValueError(
                        f"model name {name!r} is not allowed: lowercase letters, digits, _ and -, "
                        "starting with a letter or digit, at most 63 characters"
                    )
            # The rendered config spells a model's name with _ for - in nginx variables,
            # upstream and zone names: two names that differ only there would collide.
            seen: dict[str, str] = {}
            for name in value:
                other = seen.setdefault(name.replace("-", "_"), name)
                if other != name:
                    raise ValueError(
                        f"model names {other!r} and {name!r} differ only by - and _, which the "
                        "edge's nginx config spells the same: rename one of them"
                    )
        return value

    @property
    def longest_timeout(self) -> float:
        return max(model.timeout for model in self.models.values())


# ---------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class LoadedRelease:
    release: Release
    path: Path
    text: str


def _node_at(root: yaml.Node | None, loc: tuple[Any, ...]) -> yaml.Node | None:
    """The YAML node a pydantic error location points at (or the deepest one that exists)."""
    node = root
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            found = None
            for key_node, value_node in node.value:
                if str(key_node.value) == str(key):
                    found = value_node
                    break
            if found is None:
                # An unknown key: point at the key itself.
                for key_node, _ in node.value:
                    if str(key_node.value) == str(key):
                        return key_node
                return node
            node = found
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            return node
    return node


def _allowed_keys(loc: tuple[Any, ...]) -> str:
    model: Any = Release
    for key in loc[:-1]:
        fields = getattr(model, "model_fields", None)
        if fields and key in fields:
            annotation = fields[key].annotation
            model = _model_in(annotation)
        elif model is Model and key in ("versions",):
            model = Version
        else:
            model = _model_in(model) if model is not None else None
    fields = getattr(model, "model_fields", None)
    return ", ".join(fields) if fields else ""


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _is_pydantic_tag(part: Any) -> bool:
    """Union-member and validator tags pydantic puts into error locations."""
    text = str(part)
    return text.startswith(("function-", "union", "literal[", "list[")) or text in ("str", "int")


def _format_errors(path: Path, root: yaml.Node | None, error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        loc = tuple(p for p in item["loc"] if not _is_pydantic_tag(p))
        node = _node_at(root, loc)
        line = node.start_mark.line + 1 if node is not None else 1
        key_path = ".".join(str(p) for p in loc) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            allowed = _allowed_keys(loc)
            message = f"unknown key {loc[-1]!r}" + (f"; allowed keys: {allowed}" if allowed else "")
        elif item["type"] == "missing":
            message = "required key is missing"
        else:
            bad = item.get("input")
            if not isinstance(bad, dict | list) and bad is not None:
                message = f"{bad!r}: {message}"
        lines.append(f"{path}:{line}: {key_path}: {message}")
    return "\n".join(dict.fromkeys(lines))


def parse_release(text: str, path: Path | str = "release.yaml") -> Release:
    """Parse and validate a release; raise ReleaseError with every problem, one per line."""
    path = Path(path)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ReleaseError(f"{path}:{line}: {problem} (fix the YAML syntax)") from None
    if not isinstance(data, dict):
        raise ReleaseError(f"{path}:1: a release is a mapping: revision, edge, sidecars, models")
    try:
        return Release.model_validate(data)
    except ValidationError as exc:
        raise ReleaseError(_format_errors(path, root, exc)) from None


def load_release(path: Path | str) -> LoadedRelease:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ReleaseError(f"{path}: cannot read the release file ({exc.strerror})") from None
    return LoadedRelease(release=parse_release(text, path), path=path, text=text)
