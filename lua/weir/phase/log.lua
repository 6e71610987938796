-- log_by_lua for the data plane: the upstream outcome feeds the breaker; metrics are counted.
-- Rate-limited requests never reach this (their location has no log hook): they are not traffic.
-- The common path (a success, no probe, no fallback) reads three variables.
local config = require("weir.config")
local context = require("weir.context")
local metrics = require("weir.metrics")
local outcome = require("weir.outcome")

local ngx = ngx
local var = ngx.var

local _M = {}

-- name: the model, when the location knows it (else read from $weir_model after a redirect).
function _M.infer(name)
    name = name or var.weir_model
    local model = config.model(name)
    if not model then
        return
    end
    local probe, reason
    if context.marked > 0 then
        probe, reason = tonumber(var.weir_probe), var.weir_fallback
        if probe then
            context.marked = context.marked - 1
        end
        if reason ~= "" then
            context.marked = context.marked - 1
            metrics.fallback(name, reason)
        end
    end
    local version = var.weir_version
    local status
    if version ~= "" then
        status = outcome.last_status(var.upstream_status)
        if status then
            local failed = outcome.failed(status)
            if failed or probe then  -- a plain success needs no breaker bookkeeping
                context.breaker:record(name, version, model.breaker, not failed, probe)
            end
            local seconds = outcome.last_seconds(var.upstream_response_time)
            if seconds then
                metrics.upstream_seconds(name, version, seconds)
            end
        elseif probe then
            context.breaker:release_probe(name, version, probe)
        end
    end
    -- A proxied answer's status is its upstream's; read nginx's only for the edge's own.
    metrics.request(name, version, status or ngx.status)
end

return _M
