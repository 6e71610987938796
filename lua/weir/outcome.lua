-- Reading nginx's upstream variables: "$upstream_status" holds every attempt of a request,
-- "502, 200" across servers of one upstream and "504 : 200" across internal redirects.
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

return _M
