-- Routing on the request path (access_by_lua of the model locations): which version answers,
-- written to $weir_version, which proxy_pass turns into the version's upstream and URI.
-- Kill switches (overrides) and the breaker (breaker.guard) may send the request to its
-- fallback instead. The common path reads one shared dict key and writes one variable.
local choose = require("weir.routing.choose")
local fallback = require("weir.fallback")
local guard = require("weir.breaker.guard")
local names = require("weir.names")
local overrides = require("weir.overrides")
local response = require("weir.response")
local settings = require("weir.settings")
local shadow = require("weir.shadow")

local ngx = ngx
local var = ngx.var
local crc32 = ngx.crc32_long
local VERSION, PINNED, UPSTREAM_PATH = names.VAR.VERSION, names.VAR.PINNED, names.VAR.UPSTREAM_PATH

local _M = {}

local state_dict = ngx.shared[names.DICT.STATE]

local function no_version(name, model, version)
    return response.exit(404, response.error_body("model " .. name .. " has no version " .. version
        .. " in this release (versions: " .. table.concat(model.versions, ", ") .. ")"))
end

-- The sticky key's stable bucket as a number in [0, 1), from split_clients' two hashes of the
-- key; read only when a choice needs it.
local function read_bucket(model, req)
    local high, low = tonumber(var[model.bucket_hi_var]), tonumber(var[model.bucket_lo_var])
    local buckets = req.buckets
    if high and low then
        return (high * req.low_buckets + low + 0.5) / buckets
    end
    return (crc32(var.remote_addr or "") % buckets + 0.5) / buckets
end

-- One request at a time per worker: reuse the table instead of allocating per request.
local req = { pinned = nil, forced = nil, bucket = read_bucket, buckets = 1000, low_buckets = 40 }

local function request_of(model, pinned)
    local current = settings.get()
    req.pinned = pinned
    req.forced = model.force_var and var[model.force_var]
    req.buckets, req.low_buckets = current.buckets, current.low_buckets
    return req
end

-- The model's settings and live overrides, after adopting newly published settings.
local function current(name)
    local serial = overrides.serial()
    settings.sync(state_dict, serial)
    return settings.model(name), overrides.model(name, serial), serial
end

-- An infer request.
function _M.infer(name)
    if response.wrong_method("POST") then
        return ngx.exit(ngx.HTTP_OK)
    end
    local model, live, serial = current(name)
    if live.killed then
        return fallback.fall_back(name, model, fallback.KILLED, nil, true)
    end
    local version, why, bad = choose.version(model, request_of(model, var[PINNED]), live)
    if not version then
        if why == "unknown_version" then
            return no_version(name, model, bad)
        end
        return fallback.fall_back(name, model, fallback.KILLED, nil, false)
    end
    if live.killed_versions[version] then
        return fallback.fall_back(name, model, fallback.KILLED, version, false)
    end
    if not guard.allow(name, version, model, serial) then
        return fallback.fall_back(name, model, fallback.BREAKER_OPEN, version, false)
    end
    var[VERSION] = version
    shadow.mark(model, version, live)
end

-- Metadata and readiness of a model: no breaker, no fallback; a killed model is unavailable.
function _M.metadata(name)
    if response.wrong_method("GET") then
        return ngx.exit(ngx.HTTP_OK)
    end
    local model, live = current(name)
    local pinned = var[PINNED]
    local version
    if pinned and pinned ~= "" then
        if not model.version_set[pinned] then
            return no_version(name, model, pinned)
        end
        version = pinned
    else
        version = choose.version(model, request_of(model, nil), live)
    end
    if live.killed or not version then
        return response.exit(503, response.error_body("model " .. name
            .. " is switched off at the edge"), 1)
    end
    if live.killed_versions[version] then
        return response.exit(503, response.error_body("version " .. version .. " of model "
            .. name .. " is switched off at the edge"), 1)
    end
    var[VERSION] = version
    -- Forwarded as rebuilt from the location's captures: the raw URI (".../versions/1/../2")
    -- could name another version than the one routed to.
    var[UPSTREAM_PATH] = _M.metadata_path(name, pinned ~= "" and pinned or nil,
        var.uri:sub(-6) == "/ready")
end

-- The sidecar's URI for a metadata or readiness request of model `name`.
function _M.metadata_path(name, pinned, ready)
    return "/v2/models/" .. name .. (pinned and ("/versions/" .. pinned) or "")
        .. (ready and "/ready" or "")
end

return _M
