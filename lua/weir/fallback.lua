-- Fallback decisions: when a request cannot (or could not) be answered by its version, answer
-- with the model's fallback version, or with its placeholder (status and JSON body).
local response = require("weir.response")

local _M = {}

-- Reasons, as sent in X-Weir-Fallback and counted in weir_edge_fallbacks_total.
_M.KILLED = "killed"
_M.BREAKER_OPEN = "breaker-open"
_M.UPSTREAM_ERROR = "upstream-error"
_M.OVERLOADED = "overloaded"

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
-- usable(version) -> true | probe generation | nil. Returns one of
--   {version = v, probe = gen|nil}                     route to another version
--   {status = s, body = json, retry_after = seconds}   answer here
function _M.decide(model, name, reason, failed, usable, model_killed)
    local fb = model.fallback
    if fb.version and fb.version ~= failed and not model_killed then
        local allowed = usable(fb.version)
        if allowed then
            return { version = fb.version, probe = allowed ~= true and allowed or nil }
        end
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

return _M
