"""Render a release into an nginx config and a JSON file of Lua settings (lua_settings.py).

Jinja2 runs with StrictUndefined, and every value it prints passes `_finalize`, which refuses
anything that could end a directive or open a block: a bug or a hostile value fails the render
instead of reaching nginx.
"""

from __future__ import annotations

import grp
import hashlib
import json
import math
import os
import pwd
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from scripts.edge import names
from scripts.edge.lua_settings import HIGH, LOW, as_json, lua_settings
from scripts.edge.nginx import NginxBinary
from scripts.fleet.pools import pool_sidecars
from scripts.release import Model, Release
from scripts.runtime import RuntimeDir, resolve_devices

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_DIR = REPO_ROOT / "nginx" / "templates"
LUA_DIR = REPO_ROOT / "lua"
SAFE_VALUE = re.compile(r"^[A-Za-z0-9_.:/%*\[\]=$@+-]*$")
CONF_NAME = "nginx.conf"
SETTINGS_NAME = "settings.json"


class RenderError(RuntimeError):
    pass


def _finalize(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        raise RenderError(f"template printed {value!r}: a template bug, not a release problem")
    text = str(value)
    if not SAFE_VALUE.match(text) or ";" in text:
        raise RenderError(f"refusing to write {text!r} into nginx.conf: it could inject directives")
    return text


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        undefined=jinja2.StrictUndefined,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def _duration(value: float) -> str:
    """nginx time with its unit: nginx takes no fractions (`2.5s` fails `nginx -t`), so a
    sub-second or fractional duration is written in whole milliseconds."""
    if value == int(value):
        return f"{int(value)}s"
    return f"{round(value * 1000)}ms"


def _rate_limit(name: str, model: Model) -> dict[str, Any] | None:
    limit = model.rate_limit
    if limit is None:
        return None
    header = None
    if limit.key == "remote_addr":
        key = "$binary_remote_addr"
    elif limit.key == "global":
        key = "weir_global"
    else:
        # nginx does not count an empty key: a request without the header would pass unlimited.
        # nginx.conf maps it to "h:<value>", or to "a:<client address>" (or "" to refuse it)
        # when the header is missing; the prefixes keep the two key spaces apart.
        header = {
            "name": limit.key[7:],
            "var": names.header_var(limit.key[7:]),
            "reject": limit.missing_key == "reject",
        }
        key = "$" + names.rate_key_var(name)
    digest = hashlib.sha256(f"{key}|{limit.zone_size}".encode()).hexdigest()[:10]
    if limit.delay is not None:
        delay = f"delay={limit.delay}"
    else:
        delay = "nodelay" if limit.nodelay else ""
    return {
        "key": key,
        "key_var": key[1:],
        "header": header,
        "zone": f"weir_rl_{name.replace('-', '_')}_{digest}",
        "zone_size": f"{max(limit.zone_size // 1024, 32)}k",
        "rate": limit.rate,
        "burst": limit.burst,
        "delay": delay,
    }


def _check_settings_size(release: Release, text: str) -> None:
    """Refuse Lua settings the edge could not publish, before anything is written: Lua would
    refuse them too (evicting nothing), but only after `current` was switched."""
    size = len(text.encode())
    if size <= names.SETTINGS_MAX_BYTES:
        return
    bodies = {
        name: len(json.dumps(model.fallback.body))
        for name, model in release.models.items()
        if model.fallback is not None and model.fallback.body is not None
    }
    largest = max(bodies, key=bodies.__getitem__, default=None)
    hint = (
        f"; the largest fallback body is model {largest}'s, {bodies[largest]:,} bytes as JSON"
        if largest
        else ""
    )
    raise RenderError(
        f"the release's Lua settings are {size:,} bytes, more than the "
        f"{names.SETTINGS_MAX_BYTES:,} the edge holds (its {names.DICT['STATE']} shared dict is "
        f"{names.STATE_DICT_BYTES:,} bytes and keeps the live settings beside the new ones){hint}: "
        "make the fallback bodies smaller (or check YAML aliases that repeat large values); "
        "nothing was changed"
    )


# Metadata, readiness and server metadata: one limit per client address, answered 429.
META_LIMIT = {"zone": "weir_meta", "zone_size": "10m", "rate": "50r/s", "burst": 100}


@dataclass(frozen=True)
class Rendered:
    conf: str
    settings: dict[str, Any]
    checksum: str


def render(
    release: Release,
    runtime: RuntimeDir,
    nginx: NginxBinary,
    out_dir: Path,
    *,
    release_text: str = "",
) -> Rendered:
    """Render into out_dir (which the caller owns and later switches to)."""
    # Each model's versions go to its pool's sidecars, one per device.
    sidecars = pool_sidecars(release, resolve_devices(release.sidecars.devices))
    pool_servers = {
        pool: [s.address(runtime) for s in sidecars if s.pool == pool] for pool in release.pools()
    }
    models = []
    for name, model in release.models.items():
        sticky = model.release.sticky_key
        sticky_header_var = names.header_var(sticky[7:]) if sticky.startswith("header:") else None
        models.append(
            {
                "name": name,
                "var": names.model_var(name),
                "sticky_header_var": sticky_header_var,
                "sticky_var": names.sticky_key_var(name) if sticky_header_var else "remote_addr",
                "bucket_hi_var": names.bucket_hi_var(name),
                "bucket_lo_var": names.bucket_lo_var(name),
                "upstream_prefix": names.upstream_prefix(name),
                "rate_limit": _rate_limit(name, model),
                "timeout": _duration(model.timeout),
                "connect_timeout": _duration(min(model.timeout, 1.0)),
                "upstreams": [
                    {
                        "name": names.upstream_name(name, version),
                        "servers": spec.upstreams or pool_servers[model.pool],
                    }
                    for version, spec in model.versions.items()
                ],
            }
        )
    # As root, nginx would run its workers as `nobody`, who cannot write the state file:
    # run them as the runtime directory's owner instead.
    user = None
    if os.geteuid() == 0:
        owner = runtime.root.stat().st_uid if runtime.root.exists() else os.getuid()
        entry = pwd.getpwuid(owner)
        user = (entry.pw_name, grp.getgrgid(entry.pw_gid).gr_name)
    longest = release.longest_timeout
    settings_file = out_dir / SETTINGS_NAME
    context = {
        # Through the `current` link: a reload reads the settings of the revision switched to.
        "settings_file": runtime.current / SETTINGS_NAME,
        "revision": release.revision,
        "lua_dir": LUA_DIR,
        "dicts": [{"name": n, "size": size} for n, size in names.DICT_SIZES.items()],
        "var": names.VAR,
        "shadow_header": names.SHADOW_HEADER,
        "load_modules": list(nginx.load_modules),
        "user": user,
        "workers": release.edge.workers,
        "worker_connections": release.edge.worker_connections,
        "pid_file": runtime.pid_file,
        "error_log": runtime.error_log,
        "access_log": runtime.access_log if release.edge.access_log else None,
        "shutdown_timeout": math.ceil(2 * longest + 5),
        "tmp_dir": runtime.tmp,
        "max_body": release.edge.max_body,
        "body_buffer": min(release.edge.max_body, 1024 * 1024),
        "keepalive": release.edge.keepalive,
        "models": models,
        "meta_limit": META_LIMIT,
        "high": HIGH,
        "low": LOW,
        "high_percent": f"{100 / HIGH:g}%",
        "low_percent": f"{100 / LOW:g}%",
        "listen": release.edge.listen,
        "admin_listen": release.edge.admin_listen,
        # The optional metrics listener (edge.metrics_listen; None: no such server).
        "metrics_listen": release.edge.metrics_listen,
        # Every pool's sidecars: /metrics/sidecars/<label> (`scripts/fleet/pools.py`).
        "sidecar_metrics": [
            {"label": s.label, "url": f"http://{s.address(runtime)}:/metrics"} for s in sidecars
        ],
    }
    try:
        body = _environment().get_template("nginx.conf.j2").render(context)
    except jinja2.TemplateError as exc:
        raise RenderError(f"template error: {exc}") from None
    # The wiring hash tells whether a release needs nginx to reload, or only new Lua settings:
    # nginx.conf, and admin auth (the master reads the token, or refuses to start without one).
    wiring = f"{body}\nadmin_auth={release.edge.admin_auth}"
    unsummed = lua_settings(release, runtime, hashlib.sha256(wiring.encode()).hexdigest())
    checksum = hashlib.sha256(
        (
            body + json.dumps(as_json(unsummed, checksum=False), sort_keys=True) + release_text
        ).encode()
    ).hexdigest()
    settings = as_json(unsummed.model_copy(update={"checksum": checksum}))
    conf = f"# weir revision {release.revision} checksum {checksum}\n{body}"
    settings_text = json.dumps(settings, indent=2, sort_keys=True) + "\n"
    _check_settings_size(release, settings_text)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / CONF_NAME).write_text(conf)
    settings_file.write_text(settings_text)
    if release_text:
        (out_dir / "release.yaml").write_text(release_text)
    return Rendered(conf=conf, settings=settings, checksum=checksum)
