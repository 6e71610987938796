-- Names nginx.conf and the Lua modules share, defined once on this side.
-- Twin: scripts/edge/names.py (DICT, VAR), which renders them into nginx.conf;
-- tests/unit/edge/test_names.py checks that the two agree.
--
-- Shared-dict keys live here too (KEY): only Lua reads or writes the dicts, so they have no
-- Python twin. Per-model variable names (sticky buckets, force header) are built once, in
-- Python, and reach Lua through the settings (bucket_hi_var, bucket_lo_var, force_var).
local _M = {}

-- lua_shared_dict zones (their sizes are wiring: scripts/edge/names.py).
_M.DICT = {
    STATE = "weir_state",         -- the settings text as published, and the shared serial
    OVERRIDES = "weir_overrides", -- kill switches and live splits: nothing else writes there
    BREAKER = "weir_breaker",     -- circuit breaker state per model version
    METRICS = "weir_metrics",     -- edge counters and histograms
    HEALTH = "weir_health",       -- the upstreams' readiness, cached for /v2/health/ready
}

-- nginx variables set by nginx.conf (`set`, a location's named capture) and read or written
-- by Lua.
_M.VAR = {
    MODEL = "weir_model",         -- the model of the request's location
    VERSION = "weir_version",     -- the version proxy_pass goes to ("" for an edge answer)
    FALLBACK = "weir_fallback",   -- the fallback reason, when a fallback answers
    PROBE = "weir_probe",         -- the breaker's half-open probe generation, when a probe
    PINNED = "weir_pinned",       -- the version named in the URL, if any
    UPSTREAM_PATH = "weir_upstream_path",  -- a metadata request's URI, rebuilt from its captures
    SHADOW = "weir_shadow",       -- the shadow version to name in X-Weir-Shadow, if sampled
    -- nginx's own: the upstream's X-Weir-Failure header, "server" on the sidecar's own failures.
    FAILURE = "upstream_http_x_weir_failure",
}

-- Keys of the weir_state dict.
_M.KEY = {
    SERIAL = "serial",                 -- bumped by any change of settings, overrides or breakers
    SETTINGS = "settings|",            -- settings|<generation>: the published settings JSON
    GENERATION = "settings_generation",-- bumped by a settings publication only
    -- Keys of the weir_overrides dict.
    LOADED = "loaded",                 -- the state file was read into this dict already
    SAVE_LOCK = "save_lock",           -- one worker at a time writes the state file
    KILL = "kill|",                    -- kill|<model> or kill|<model>|<version>
    SPLIT = "split|",                  -- split|<model>: live weights, JSON
    -- Keys of the weir_health dict.
    READY = "ready",                   -- the upstreams not ready, "" when all are
    READY_CHECK = "ready_check",       -- held for an interval by the one request that checks
}

return _M
