-- V2 error bodies: {"error": "<what was wrong, and what to do>"}.
local cjson = require("cjson.safe")

local _M = {}

function _M.error_body(message)
    return cjson.encode({ error = message })
end

-- Answer with a JSON body (and Retry-After seconds, if given). The caller decides how the phase
-- ends: access phases exit, content phases simply return.
function _M.send(status, body, retry_after)
    ngx.status = status
    ngx.header["Content-Type"] = "application/json"
    if retry_after then
        ngx.header["Retry-After"] = retry_after
    end
    ngx.print(body)
end

return _M
