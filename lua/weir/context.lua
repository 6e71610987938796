-- Process-wide objects the phase shims share: the breaker, the admin token, and per-worker
-- counts that let the log phase skip reading variables no request in flight has set.
local breaker = require("weir.breaker")
local metrics = require("weir.metrics")

local _M = {}

local state_dict = ngx.shared.weir_state

local function on_transition(model, version, from, to, detail)
    metrics.transition(model, version, from, to)
    -- Workers keep a cached set of versions whose breaker is not closed; make them rebuild it.
    state_dict:incr("serial", 1, 0)
    ngx.log(ngx.WARN, "weir breaker ", model, "/", version, ": ", from, " -> ", to, " (", detail, ")")
end

_M.breaker = breaker.new(ngx.shared.weir_breaker, ngx.now, on_transition)
_M.token = nil

-- Requests of this worker, in flight, that carry a probe or a fallback marker. Access and log
-- phases of one request run in the same worker, so while these are 0 the log phase knows
-- $weir_probe and $weir_fallback are empty without reading them.
_M.marked = 0

return _M
