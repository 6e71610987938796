-- access_by_lua for the data plane: choose the version, apply kill switches and the breaker,
-- and set $weir_version, which proxy_pass turns into the version's upstream and URI (or answer
-- with the fallback right here). The common path reads one shared dict key and writes one
-- variable.
local choose = require("weir.choose")
local config = require("weir.config")
local context = require("weir.context")
local fallback = require("weir.fallback")
local response = require("weir.response")
local state = require("weir.state")

local ngx = ngx
local var = ngx.var
local crc32 = ngx.crc32_long

local _M = {}

-- Answer here and end the request (no proxy_pass).
local function send(status, body, retry_after)
    response.send(status, body, retry_after)
    return ngx.exit(ngx.HTTP_OK)
end
_M.send = send

local function no_version(name, model, version)
    return send(404, response.error_body("model " .. name .. " has no version " .. version
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

local function usable(name, model)
    return function(version)
        if state.model(name).killed_versions[version] then
            return nil
        end
        return context.breaker:allow(name, version, model.breaker)
    end
end

-- Mark this request with a probe generation or a fallback reason (see context.marked).
local function mark(name, value)
    if var[name] == "" then
        context.marked = context.marked + 1
    end
    var[name] = value
end
_M.mark = mark

-- Answer with the fallback for `reason`, after `failed` could not be used.
function _M.fall_back(name, model, reason, failed, model_killed)
    mark("weir_fallback", reason)
    local decision = fallback.decide(model, name, reason, failed, usable(name, model), model_killed)
    if decision.version then
        var.weir_version = decision.version
        if decision.probe then
            mark("weir_probe", decision.probe)
        end
        return
    end
    var.weir_version = ""
    return send(decision.status, decision.body, decision.retry_after)
end

local state_dict = ngx.shared.weir_state

function _M.infer(name)
    local serial = state.serial()
    config.sync(state_dict, serial)
    local model = config.model(name)
    local live = state.model(name, serial)
    if live.killed then
        return _M.fall_back(name, model, fallback.KILLED, nil, true)
    end
    req.pinned = var.weir_pinned
    req.forced = model.force_var and var[model.force_var]
    req.buckets, req.low_buckets = config.get().buckets, config.get().low_buckets
    local version, why, bad = choose.version(model, req, live)
    if not version then
        if why == "unknown_version" then
            return no_version(name, model, bad)
        end
        return _M.fall_back(name, model, fallback.KILLED, nil, false)
    end
    if live.killed_versions[version] then
        return _M.fall_back(name, model, fallback.KILLED, version, false)
    end
    local allowed = context.breaker:allow_cached(name, version, model.breaker, serial)
    if not allowed then
        return _M.fall_back(name, model, fallback.BREAKER_OPEN, version, false)
    end
    var.weir_version = version
    if allowed ~= true then
        mark("weir_probe", allowed)
    end
end

-- Metadata and readiness of a model: no breaker, no fallback; a killed model is unavailable.
function _M.metadata(name)
    local serial = state.serial()
    config.sync(state_dict, serial)
    local model = config.model(name)
    local live = state.model(name, serial)
    local pinned = var.weir_pinned
    local version
    if pinned and pinned ~= "" then
        if not model.version_set[pinned] then
            return no_version(name, model, pinned)
        end
        version = pinned
    else
        req.pinned = nil
        req.forced = model.force_var and var[model.force_var]
        req.buckets, req.low_buckets = config.get().buckets, config.get().low_buckets
        version = choose.version(model, req, live)
    end
    if live.killed or not version or live.killed_versions[version] then
        return send(503, response.error_body("model " .. name .. " is switched off at the edge"), 1)
    end
    var.weir_version = version
end

return _M
