-- log_by_lua of the data plane: the request's outcome, read once (outcome), handed to each
-- concern's own log handler. The common path (a success, no probe, no fallback) reads three
-- variables.
local fallback = require("weir.fallback")
local guard = require("weir.breaker.guard")
local metrics = require("weir.metrics")
local outcome = require("weir.outcome")

return {
    -- name: the model, when the location knows it (else $weir_model, after a redirect).
    infer = function(name)
        local ctx = outcome.read(name)
        if ctx then fallback.log(ctx) guard.log(ctx) metrics.log(ctx) end
    end,
}
