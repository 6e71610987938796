-- What a request's upstream did, for the log phase: nginx's "$upstream_status" holds every
-- attempt of a request, "502, 200" across servers of one upstream and "504 : 200" across
-- internal redirects. read() gathers the few variables every log handler needs, once.
local names = require("weir.names")
local settings = require("weir.settings")

local var = ngx.var
local MODEL, VERSION, FAILURE = names.VAR.MODEL, names.VAR.VERSION, names.VAR.FAILURE

local _M = {}

-- The status of the last attempt, or nil when no upstream answered anything.
function _M.last_status(value)
    if not value or value == "" then
        return nil
    end
    -- One attempt (the common case) is a plain number: no pattern matching on the hot path.
    return tonumber(value) or tonumber(value:match("(%d%d%d)[^%d]*$"))
end

-- The last attempt's duration in seconds, or nil.
function _M.last_seconds(value)
    if not value or value == "" then
        return nil
    end
    return tonumber(value) or tonumber(value:match("([%d.]+)[^%d.]*$"))
end

-- Whose outcome an upstream answer is, for the breaker: FAILED (the server's failure),
-- SUCCEEDED, or nil (neither: it says nothing about the version's health).
-- The sidecar marks every answer for its own failure (500, 503) with `X-Weir-Failure: server`
-- and never a 4xx; `failure` is that header's value. Without the mark:
--   502, 504: nginx's own answers for a connect error, a reset or a timeout (no upstream
--     answer at all; or a proxy in between that reached no sidecar): the server's failure.
--   500, 503 and any other 5xx: not counted. A client can provoke them (an older sidecar's
--     500 on a hostile body, a proxy in between), and no client may open a breaker.
--   4xx: the client's mistake. Neither a failure nor a success: a half-open probe that meets
--     one gives its slot back instead of closing or re-opening the breaker.
_M.FAILED, _M.SUCCEEDED = "failed", "succeeded"

function _M.verdict(status, failure)
    if failure == "server" or status == 502 or status == 504 then
        return _M.FAILED
    end
    if status < 400 then
        return _M.SUCCEEDED
    end
    return nil
end

-- The verdict on the last upstream attempt of this request (nil status: no attempt).
-- The marker header is read only for a 5xx: the common path reads no extra variable.
function _M.request_verdict(status)
    if not status then
        return nil
    end
    return _M.verdict(status, status >= 500 and var[FAILURE] or nil)
end

-- Log phases never yield and run one at a time per worker: one table serves every request.
local ctx = { name = nil, model = nil, version = "", status = nil }

-- The request's outcome: {name, model, version ("" for an edge answer), status (the last
-- upstream attempt's, or nil)}; nil when the request belongs to no model of the release.
-- name: the model, when the location knows it (else $weir_model, after a redirect).
function _M.read(name)
    name = name or var[MODEL]
    local model = settings.model(name)
    if not model then
        return nil
    end
    local version = var[VERSION]
    ctx.name, ctx.model, ctx.version = name, model, version
    ctx.status = version ~= "" and _M.last_status(var.upstream_status) or nil
    return ctx
end

return _M
