"""Moved to `scripts/edge/nginx.py`. Kept only so that `scripts/render.py`, which the Lua work
moves into `scripts/edge/` in parallel, still imports; delete it when that move lands."""

from scripts.edge.nginx import NginxBinary, NginxNotFound, find_nginx

__all__ = ["NginxBinary", "NginxNotFound", "find_nginx"]
