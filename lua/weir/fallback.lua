-- Fallback: when a request cannot (or could not) be answered by its version, answer with the
-- model's fallback version, or with its placeholder (status and JSON body). Used when the model
-- or version is killed, its breaker is open, its upstream failed or is overloaded; the reason
-- travels in $weir_fallback (X-Weir-Fallback) and is counted in the log phase.
local guard = require("weir.breaker.guard")
local marker = require("weir.marker")
local metrics = require("weir.metrics")
local names = require("weir.names")
local outcome = require("weir.outcome")
local overrides = require("weir.overrides")
local response = require("weir.response")
local settings = require("weir.settings")

local var = ngx.var
local FALLBACK, VERSION, MODEL = names.VAR.FALLBACK, names.VAR.VERSION, names.VAR.MODEL

local _M = {}

-- Reasons, as sent in X-Weir-Fallback and counted in weir_edge_fallbacks_total.
_M.KILLED = "killed"
_M.BREAKER_OPEN = "breaker-open"
_M.UPSTREAM_ERROR = "upstream-error"
_M.OVERLOADED = "overloaded"
_M.REASONS = { _M.KILLED, _M.BREAKER_OPEN, _M.UPSTREAM_ERROR, _M.OVERLOADED }

local MESSAGES = {
    ["killed"] = "model %s is switched off at the edge; retry later",
    ["breaker-open"] = "model %s is failing and resting for a few seconds; retry shortly",
    ["upstream-error"] = "model %s failed to answer; retry shortly",
    ["overloaded"] = "model %s is overloaded; retry after a short pause",
}

-- The reason an upstream status stands for.
function _M.reason_for_status(status)
    if status == 503 then
        return _M.OVERLOADED
    end
    return _M.UPSTREAM_ERROR
end

-- model: settings; name: model name; failed: the version that could not answer (or nil);
-- usable(version) -> truthy when that version may answer. Returns one of
--   {version = v}                                      route to another version
--   {status = s, body = json, retry_after = seconds}   answer here
function _M.decide(model, name, reason, failed, usable, model_killed)
    local fb = model.fallback
    if fb.version and fb.version ~= failed and not model_killed and usable(fb.version) then
        return { version = fb.version }
    end
    if fb.status then
        return { status = fb.status, body = fb.body, retry_after = fb.status >= 500 and 1 or nil }
    end
    -- A version fallback that cannot answer either: a clear V2 error.
    return {
        status = 503,
        body = response.error_body(string.format(MESSAGES[reason] or MESSAGES["upstream-error"], name)),
        retry_after = 1,
    }
end

-- The fallback reason a request carries ($weir_fallback).
local reason_marker = marker.new(names.VAR.FALLBACK)

local function usable(name, model)
    return function(version)
        if overrides.model(name).killed_versions[version] then
            return nil
        end
        return guard.allow(name, version, model)
    end
end

-- Answer with the fallback for `reason`, after `failed` could not be used (an access phase:
-- an answer here ends the request, a fallback version goes on to proxy_pass).
function _M.fall_back(name, model, reason, failed, model_killed)
    reason_marker:set(reason)
    local decision = _M.decide(model, name, reason, failed, usable(name, model), model_killed)
    if decision.version then
        var[VERSION] = decision.version
        return
    end
    var[VERSION] = ""
    return response.exit(decision.status, decision.body, decision.retry_after)
end

local function nothing_else()
    return nil
end

local function placeholder(model, name, reason, failed)
    var[VERSION] = ""
    return _M.decide(model, name, reason, failed, nothing_else)
end

-- The answer a fallback replaces is counted under the version that failed (the request is then
-- counted under the version that answered it): what a rollout's error ratio reads. Off the hot
-- path: only requests that failed come here. Only the server's failures, as the breaker counts.
function _M.count_server_failure(name, version, status, verdict)
    if status and version ~= "" and verdict == outcome.FAILED then
        metrics.server_failure(name, version, status)
    end
end

-- access_by_lua of @weir_fallback_M: the chosen version failed (5xx, timeout, refused); charge
-- its breaker, then try the fallback version, or answer with the placeholder.
function _M.after_upstream_error()
    local name = var[MODEL]
    local model = settings.model(name)
    if not model then
        return response.exit(500, response.error_body("the edge lost track of this request; retry"))
    end
    local failed = var[VERSION]
    local status, verdict = guard.record_failure(name, model)
    _M.count_server_failure(name, failed, status, verdict)
    local previous = reason_marker:peek()
    if previous ~= "" then
        -- The request was already on its fallback version: nothing left to try.
        local decision = placeholder(model, name, previous, failed)
        return response.exit(decision.status, decision.body, decision.retry_after)
    end
    return _M.fall_back(name, model, _M.reason_for_status(status), failed, false)
end

-- content_by_lua of @weir_fallback_failed: the fallback version failed too; the placeholder.
function _M.after_fallback_error()
    local name = var[MODEL]
    local model = settings.model(name)
    local failed = var[VERSION]
    _M.count_server_failure(name, failed, guard.record_failure(name, model))
    local decision = placeholder(model, name, var[FALLBACK], failed)
    response.send(decision.status, decision.body, decision.retry_after)
end

-- log_by_lua: count the fallback that answered, if one did (ctx: outcome.read).
function _M.log(ctx)
    local reason = reason_marker:take()
    if reason ~= "" then
        metrics.fallback(ctx.name, reason)
    end
end

return _M
