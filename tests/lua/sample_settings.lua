-- Settings for the specs: sample() is a complete, valid settings table (what
-- scripts/edge/lua_settings.py renders), with `changes` merged into it at the top level and
-- `model_changes` into model "digits"; sample.write(path, value) writes one as settings.json.
local cjson = require("cjson.safe")

local function build(changes, model_changes)
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

local function write(path, value)
    local handle = assert(io.open(path, "wb"))
    handle:write(cjson.encode(value))
    handle:close()
end

return setmetatable({ write = write }, { __call = function(_, ...) return build(...) end })
