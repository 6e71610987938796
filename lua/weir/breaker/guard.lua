-- The breaker on the request path: one machine (breaker/machine.lua) per nginx, shared by all
-- workers through the weir_breaker dict; may this request go to its version (allow, in the
-- access phase), what its upstream did (record, in the log phase or a fallback location), and
-- the half-open probe marker ($weir_probe) that ties the two together.
local machine = require("weir.breaker.machine")
local marker = require("weir.marker")
local metrics = require("weir.metrics")
local names = require("weir.names")
local outcome = require("weir.outcome")

local ngx = ngx
local var = ngx.var
local VERSION = names.VAR.VERSION

local _M = {}

local state_dict = ngx.shared[names.DICT.STATE]

local function on_transition(model, version, from, to, detail)
    metrics.transition(model, version, from, to)
    -- Workers keep a cached set of versions whose breaker is not closed; make them rebuild it.
    state_dict:incr(names.KEY.SERIAL, 1, 0)
    ngx.log(ngx.WARN, "weir breaker ", model, "/", version, ": ", from, " -> ", to, " (", detail, ")")
end

_M.breaker = machine.new(ngx.shared[names.DICT.BREAKER], ngx.now, on_transition)

-- The half-open probe generation a request carries ($weir_probe).
local probe_marker = marker.new(names.VAR.PROBE)

-- The probe generation this request carries, used up: its outcome is being recorded.
local function take_probe()
    return tonumber(probe_marker:take(true))
end

-- May a request go to this version? true, or a probe generation (marked on the request), or
-- nil. serial: the caller's read of the shared serial, for no dict access while closed.
function _M.allow(name, version, model, serial)
    local allowed
    if serial then
        allowed = _M.breaker:allow_cached(name, version, model.breaker, serial)
    else
        allowed = _M.breaker:allow(name, version, model.breaker)
    end
    if allowed and allowed ~= true then
        probe_marker:set(allowed)
    end
    return allowed
end

-- A @weir_fallback location: the upstream of $weir_version answered an error; charge its
-- breaker when the error is the server's (outcome.verdict), else give back a probe slot.
-- Returns the upstream status, or nil when no upstream answered anything (the edge's own
-- error, e.g. a Lua error: no breaker hears of it).
function _M.record_failure(name, model)
    local version = var[VERSION]
    if version == "" then
        return nil
    end
    local status = outcome.last_status(var.upstream_status)
    local probe = take_probe()
    local verdict = outcome.request_verdict(status)
    if verdict == outcome.FAILED then
        _M.breaker:record(name, version, model.breaker, false, probe)
    elseif probe then
        _M.breaker:release_probe(name, version, probe)
    end
    return status, verdict
end

-- log_by_lua: the real upstream outcome feeds the breaker (ctx: outcome.read).
function _M.log(ctx)
    local probe = take_probe()
    if ctx.version == "" then
        return
    end
    local verdict = outcome.request_verdict(ctx.status)
    if verdict == outcome.FAILED then
        _M.breaker:record(ctx.name, ctx.version, ctx.model.breaker, false, probe)
    elseif verdict == outcome.SUCCEEDED and probe then  -- a plain success needs no bookkeeping
        _M.breaker:record(ctx.name, ctx.version, ctx.model.breaker, true, probe)
    elseif probe then  -- no outcome, or the client's: neither wins nor loses the probe
        _M.breaker:release_probe(ctx.name, ctx.version, probe)
    end
end

return _M
