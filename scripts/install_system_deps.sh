#!/usr/bin/env bash
# Installs what Weir needs from the system's packages, only when it is missing:
# nginx with the Lua module (OpenResty when present, else Debian's nginx + lua module),
# wrk for benchmarks, busted, luacheck and lua5.1 + lua-cjson for the Lua tests, Prometheus for
# the observability tests, and a C compiler with the Python headers: the meinheld worker ships no
# wheel and is built from source at install time.
set -euo pipefail

need=()
have_lua_nginx() {
    command -v openresty >/dev/null 2>&1 && return 0
    [ -x /usr/sbin/nginx ] && [ -f /usr/lib/nginx/modules/ngx_http_lua_module.so ] \
        && [ -d /usr/share/lua/5.1/resty/core ] || return 1
}
have_lua_nginx || need+=(nginx-light libnginx-mod-http-lua lua-resty-core)
[ -f /usr/lib/x86_64-linux-gnu/lua/5.1/cjson.so ] || ls /usr/lib/*/lua/5.1/cjson.so >/dev/null 2>&1 \
    || command -v openresty >/dev/null 2>&1 || need+=(lua-cjson)
# The Python<->Lua contract tests (tests/unit/edge) run settings.lua under lua5.1 with cjson:
# busted's own Lua is 5.2 on Debian 12, so lua5.1 is named here, not left to lua-check's deps.
command -v lua5.1 >/dev/null 2>&1 || need+=(lua5.1)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v busted >/dev/null 2>&1 || need+=(lua-busted)
command -v luacheck >/dev/null 2>&1 || need+=(lua-check)
# Prometheus and promtool: the suite checks the dashboard, scrape config and alert rules with them.
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v gcc >/dev/null 2>&1 || need+=(gcc)
[ -f /usr/include/stdio.h ] || need+=(libc6-dev)
py_include=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])' 2>/dev/null || true)
[ -n "$py_include" ] && [ -f "$py_include/Python.h" ] || need+=(python3-dev)

[ ${#need[@]} -eq 0 ] && exit 0

echo "weir: installing system packages: ${need[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || {
        echo "weir: need root or sudo to install: ${need[*]}" >&2
        echo "      run: sudo apt-get install -y ${need[*]}" >&2
        exit 1
    }
    sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian enables the packaged nginx (:80) and Prometheus (:9090) as system services; Weir and its
# tests run their own instances.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $sudo systemctl disable --now nginx >/dev/null 2>&1 || true
    $sudo systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
