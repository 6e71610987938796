"""Where nginx and its Lua module live on this machine: the one place that knows."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

# Debian's nginx loads the Lua module dynamically; OpenResty has it built in.
DEBIAN_MODULES = (
    Path("/usr/lib/nginx/modules/ndk_http_module.so"),
    Path("/usr/lib/nginx/modules/ngx_http_lua_module.so"),
)


class NginxNotFound(RuntimeError):
    """No nginx with the Lua module: the edge cannot run here."""


@dataclass(frozen=True)
class NginxBinary:
    path: str
    load_modules: tuple[str, ...] = field(default_factory=tuple)
    openresty: bool = False


def find_nginx() -> NginxBinary:
    """OpenResty when it is on the PATH, else Debian's nginx plus its dynamic Lua module."""
    openresty = shutil.which("openresty")
    if openresty:
        return NginxBinary(path=openresty, openresty=True)
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if nginx and all(module.exists() for module in DEBIAN_MODULES):
        return NginxBinary(path=nginx, load_modules=tuple(str(m) for m in DEBIAN_MODULES))
    raise NginxNotFound(
        "no nginx with the Lua module found: install OpenResty, or Debian's nginx-light, "
        "libnginx-mod-http-lua, lua-resty-core and lua-cjson (`make system-deps` does it)"
    )
