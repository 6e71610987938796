-- What a request's upstream did, for the log phase: nginx's "$upstream_status" holds every
-- attempt of a request, "502, 200" across servers of one upstream and "504 : 200" across
-- internal redirects. read() gathers the few variables every log handler needs, once.
local names = require("weir.names")
local settings = require("weir.settings")

local var = ngx.var
local MODEL, VERSION = names.VAR.MODEL, names.VAR.VERSION

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

-- Real upstream failure: 5xx from the sidecar, or nginx's 502/504 for connect errors/timeouts.
function _M.failed(status)
    return status >= 500
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
