-- Process-wide objects the phase shims share: the breaker and the admin token.
local breaker = require("weir.breaker")
local metrics = require("weir.metrics")

local _M = {}

local function on_transition(model, version, from, to, detail)
    metrics.transition(model, version, from, to)
    ngx.log(ngx.WARN, "weir breaker ", model, "/", version, ": ", from, " -> ", to, " (", detail, ")")
end

_M.breaker = breaker.new(ngx.shared.weir_breaker, ngx.now, on_transition)
_M.token = nil

return _M
