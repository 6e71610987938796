-- V2 error bodies: {"error": "<what was wrong, and what to do>"}.
local cjson = require("cjson.safe")

local _M = {}

function _M.error_body(message)
    return cjson.encode({ error = message })
end

return _M
