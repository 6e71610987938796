-- log_by_lua for the data plane: the upstream outcome feeds the breaker; metrics are counted.
-- Rate-limited requests never reach this (their location has no log hook): they are not traffic.
local config = require("weir.config")
local context = require("weir.context")
local metrics = require("weir.metrics")
local outcome = require("weir.outcome")

local var = ngx.var

local _M = {}

function _M.infer()
    local name = var.weir_model
    local model = config.model(name)
    if not model then
        return
    end
    local pending = var.weir_pending
    if pending ~= "" then
        local status = outcome.last_status(var.upstream_status)
        local probe = tonumber(var.weir_probe)
        if status then
            context.breaker:record(name, pending, model.breaker, not outcome.failed(status), probe)
            local seconds = outcome.last_seconds(var.upstream_response_time)
            if seconds then
                metrics.upstream_seconds(name, pending, seconds)
            end
        elseif probe then
            context.breaker:release_probe(name, pending, probe)
        end
    end
    metrics.request(name, var.weir_version, ngx.status)
    local reason = var.weir_fallback
    if reason ~= "" then
        metrics.fallback(name, reason)
    end
end

return _M
