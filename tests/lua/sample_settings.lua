-- A complete, valid settings table for the specs (what scripts/edge/lua_settings.py renders),
-- with `changes` merged into it at the top level and into model "digits".
local cjson = require("cjson.safe")

return function(changes, model_changes)
    local digits = {
        versions = { "1", "2" },
        upstreams = { ["1"] = "weir_digits_v1", ["2"] = "weir_digits_v2" },
        weights = { ["1"] = 90, ["2"] = 10 },
        force_var = cjson.null,
        bucket_hi_var = "weir_bucket_hi_digits",
        bucket_lo_var = "weir_bucket_lo_digits",
        fallback = { version = "1" },
        breaker = { failures = 5, window = 10, open_for = 5, max_open_for = 300, probes = 3,
            probe_ttl = 9 },
        retry_after = 1,
    }
    local settings = {
        revision = 4, checksum = "abc", wiring = "w", buckets = 1000, low_buckets = 40,
        admin_auth = "token", admin_listen = "127.0.0.1:9901",
        token_file = "/nonexistent/admin.token", state_file = os.tmpname(),
        models = { digits = digits },
    }
    for key, value in pairs(changes or {}) do
        settings[key] = value
    end
    for key, value in pairs(model_changes or {}) do
        digits[key] = value
    end
    return settings
end
