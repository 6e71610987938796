"""Names nginx.conf shares with the Lua modules, defined once on the Python side.

Twin: lua/weir/names.lua (DICT, VAR); tests/unit/edge/test_names.py checks that the two agree.
Render passes these into the template context, so no shared name is a literal in nginx.conf.j2.
Per-model variable names are built here only and reach Lua through the settings
(bucket_hi_var, bucket_lo_var, force_var).
"""

from __future__ import annotations

# lua_shared_dict zones: concern -> name, and each zone's size (wiring only: Lua never sizes).
DICT = {
    "STATE": "weir_state",
    "OVERRIDES": "weir_overrides",
    "BREAKER": "weir_breaker",
    "METRICS": "weir_metrics",
    "HEALTH": "weir_health",
}
STATE_DICT_BYTES = 1024 * 1024
DICT_SIZES = {
    "weir_state": f"{STATE_DICT_BYTES // 1024}k",
    "weir_overrides": "1m",
    "weir_breaker": "4m",
    "weir_metrics": "16m",
    "weir_health": "128k",
}
# The largest settings.json the edge takes. Lua publishes a new settings text beside the live
# one and deletes the old only once the new is in (a write that does not fit evicts nothing
# and changes nothing), so weir_state holds two, with headroom for its small keys and the slab
# allocator's page rounding.
SETTINGS_MAX_BYTES = STATE_DICT_BYTES // 2 - 64 * 1024

# nginx variables nginx.conf sets and Lua reads or writes.
VAR = {
    "MODEL": "weir_model",
    "VERSION": "weir_version",
    "FALLBACK": "weir_fallback",
    "PROBE": "weir_probe",
    "PINNED": "weir_pinned",
    "UPSTREAM_PATH": "weir_upstream_path",
    "SHADOW": "weir_shadow",
    # nginx's own: the upstream's X-Weir-Failure header, "server" on the sidecar's own failures.
    "FAILURE": "upstream_http_x_weir_failure",
}

# The request header naming a shadow version (set by the edge only). Twin:
# sidecar/serving/shadow.py SHADOW_HEADER.
SHADOW_HEADER = "X-Weir-Shadow"


def model_var(model: str) -> str:
    """A model name as it may appear inside an nginx variable name."""
    return model.replace("-", "_")


def header_var(header: str) -> str:
    """nginx's variable for a request header."""
    return "http_" + header.lower().replace("-", "_")


def sticky_key_var(model: str) -> str:
    """The model's sticky key when it is a header (else $remote_addr), mapped by nginx.conf."""
    return f"weir_key_{model_var(model)}"


def rate_key_var(model: str) -> str:
    """The model's rate-limit key when it is a header, mapped by nginx.conf (never empty unless
    a request without the header is to be refused)."""
    return f"weir_rl_key_{model_var(model)}"


def bucket_hi_var(model: str) -> str:
    """split_clients' first hash of the sticky key, read by Lua's routing."""
    return f"weir_bucket_hi_{model_var(model)}"


def bucket_lo_var(model: str) -> str:
    """split_clients' second, independent hash of the sticky key, read by Lua's routing."""
    return f"weir_bucket_lo_{model_var(model)}"


def upstream_prefix(model: str) -> str:
    """The upstream name of a version is this prefix and the version."""
    return f"weir_{model}_v"


def upstream_name(model: str, version: str) -> str:
    return f"{upstream_prefix(model)}{version}"
