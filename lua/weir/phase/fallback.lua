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

-- Charge the failed attempt to its version's breaker; returns the upstream status (or nil).
local function record_failure(name, model)
    local pending = var.weir_pending
    if pending == "" then
        return nil
    end
    local status = outcome.last_status(var.upstream_status)
    if status then
        local probe = tonumber(var.weir_probe)
        context.breaker:record(name, pending, model.breaker, false, probe)
    end
    var.weir_pending = ""
    var.weir_probe = ""
    return status
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
    local previous = var.weir_fallback
    if previous ~= "" then
        -- The request was already on its fallback version: nothing left to try.
        local decision = fallback.decide(model, name, previous, failed, function() return nil end)
        var.weir_version = ""
        return access.send(decision.status, decision.body, decision.retry_after)
    end
    return access.fall_back(name, model, fallback.reason_for_status(status), failed, false)
end

-- After the fallback version failed too: the placeholder (content phase).
function _M.after_fallback_error()
    local name = var.weir_model
    local model = config.model(name)
    record_failure(name, model)
    local decision = fallback.decide(model, name, var.weir_fallback, var.weir_version,
        function() return nil end)
    var.weir_version = ""
    ngx.status = decision.status
    ngx.header["Content-Type"] = "application/json"
    if decision.retry_after then
        ngx.header["Retry-After"] = decision.retry_after
    end
    ngx.print(decision.body)
end

return _M
