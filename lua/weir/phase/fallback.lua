-- The @weir_fallback locations: an upstream answered 5xx, timed out or refused the connection.
-- Record that real outcome in the breaker, then answer with the fallback.
local access = require("weir.phase.access")
local config = require("weir.config")
local context = require("weir.context")
local fallback = require("weir.fallback")
local outcome = require("weir.outcome")
local response = require("weir.response")

local var = ngx.var

local _M = {}

local function nothing_else()
    return nil
end

-- Charge the failed attempt to its version's breaker; returns the upstream status (or nil:
-- the error was the edge's own, e.g. a Lua error, and no breaker hears of it).
local function record_failure(name, model)
    local version = var.weir_version
    if version == "" then
        return nil
    end
    local status = outcome.last_status(var.upstream_status)
    if status then
        local probe = context.marked > 0 and tonumber(var.weir_probe) or nil
        context.breaker:record(name, version, model.breaker, false, probe)
        if probe then
            var.weir_probe = ""
            context.marked = context.marked - 1
        end
    end
    return status
end

local function placeholder(model, name, reason, failed)
    local decision = fallback.decide(model, name, reason, failed, nothing_else)
    var.weir_version = ""
    return decision
end

-- After the chosen version failed: try the fallback version, or answer with the placeholder.
function _M.after_upstream_error()
    local name = var.weir_model
    local model = config.model(name)
    if not model then
        return access.send(500, response.error_body("the edge lost track of this request; retry"))
    end
    local failed = var.weir_version
    local status = record_failure(name, model)
    local previous = context.marked > 0 and var.weir_fallback or ""
    if previous ~= "" then
        -- The request was already on its fallback version: nothing left to try.
        local decision = placeholder(model, name, previous, failed)
        return access.send(decision.status, decision.body, decision.retry_after)
    end
    return access.fall_back(name, model, fallback.reason_for_status(status), failed, false)
end

-- After the fallback version failed too: the placeholder (content phase).
function _M.after_fallback_error()
    local name = var.weir_model
    local model = config.model(name)
    local failed = var.weir_version
    record_failure(name, model)
    local decision = placeholder(model, name, var.weir_fallback, failed)
    response.send(decision.status, decision.body, decision.retry_after)
end

return _M
