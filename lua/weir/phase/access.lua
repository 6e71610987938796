-- access_by_lua for the data plane: choose the version, apply kill switches and the breaker,
-- and point proxy_pass at the chosen upstream (or answer with the fallback right here).
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

local function send(status, body, retry_after)
    ngx.status = status
    ngx.header["Content-Type"] = "application/json"
    if retry_after then
        ngx.header["Retry-After"] = retry_after
    end
    ngx.print(body)
    return ngx.exit(ngx.HTTP_OK)
end
_M.send = send

-- The sticky key's stable bucket as a number in [0, 1): split_clients' bucket (its hash of
-- the key), read only when a choice needs it.
local function bucket_of(model, buckets)
    return function()
        local bucket = tonumber(var["weir_bucket_" .. model.var])
        if bucket then
            return (bucket + 0.5) / buckets
        end
        return (crc32(var.remote_addr or "") % buckets + 0.5) / buckets
    end
end

local function usable(name, model)
    return function(version)
        if state.model(name).killed_versions[version] then
            return nil
        end
        return context.breaker:allow(name, version, model.breaker)
    end
end

-- Route this request to `version` of model `name`.
local function route(name, model, version, probe)
    var.weir_version = version
    var.weir_upstream = model.upstreams[version]
    var.weir_uri = "/v2/models/" .. name .. "/versions/" .. version .. "/infer"
    var.weir_pending = version
    var.weir_probe = probe or ""
end

-- Answer with the fallback for `reason`, after `failed` could not be used.
function _M.fall_back(name, model, reason, failed, model_killed)
    var.weir_fallback = reason
    local decision = fallback.decide(model, name, reason, failed, usable(name, model), model_killed)
    if decision.version then
        return route(name, model, decision.version, decision.probe)
    end
    var.weir_version = ""
    return send(decision.status, decision.body, decision.retry_after)
end

local state_dict = ngx.shared.weir_state

function _M.infer(name)
    config.sync(state_dict)
    local model = config.model(name)
    local live = state.model(name)
    if live.killed then
        return _M.fall_back(name, model, fallback.KILLED, nil, true)
    end
    local req = {
        pinned = var.weir_pinned,
        forced = model.force_var and var[model.force_var],
        bucket = bucket_of(model, config.get().buckets),
    }
    local version, why, bad = choose.version(model, req, live)
    if not version then
        if why == "unknown_version" then
            return send(404, response.error_body("model " .. name .. " has no version " .. bad
                .. " in this release (versions: " .. table.concat(model.versions, ", ") .. ")"))
        end
        return _M.fall_back(name, model, fallback.KILLED, nil, false)
    end
    if live.killed_versions[version] then
        return _M.fall_back(name, model, fallback.KILLED, version, false)
    end
    local allowed = context.breaker:allow(name, version, model.breaker)
    if not allowed then
        return _M.fall_back(name, model, fallback.BREAKER_OPEN, version, false)
    end
    return route(name, model, version, allowed ~= true and allowed or nil)
end

-- Metadata and readiness of a model: no breaker, no fallback; a killed model is unavailable.
function _M.metadata(name)
    config.sync(state_dict)
    local model = config.model(name)
    local live = state.model(name)
    local pinned = var.weir_pinned
    local version
    if pinned and pinned ~= "" then
        if not model.version_set[pinned] then
            return send(404, response.error_body("model " .. name .. " has no version " .. pinned
                .. " in this release (versions: " .. table.concat(model.versions, ", ") .. ")"))
        end
        version = pinned
    else
        version = choose.version(model, {
            forced = model.force_var and var[model.force_var],
            bucket = bucket_of(model, config.get().buckets),
        }, live)
    end
    if live.killed or not version or live.killed_versions[version] then
        return send(503, response.error_body("model " .. name .. " is switched off at the edge"), 1)
    end
    var.weir_version = version
    var.weir_upstream = model.upstreams[version]
end

return _M
