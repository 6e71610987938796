-- nginx's own errors in a model location, in the V2 shape. A malformed chunked body is found
-- while nginx reads it, before any upstream is asked, and nginx answers 400 with its HTML page:
-- the model location cannot list `error_page 400` (templates/nginx_errors.conf.j2 does, for the
-- others, and a location's own error_page list replaces the server's), because with
-- `proxy_intercept_errors on` (which the fallback needs for the sidecar's 500 and 503)
-- error_page also intercepts the sidecar's own 400s, and an intercepted answer's body (the
-- sidecar's message) is gone. These two output filters rewrite only nginx's own answers: an
-- error with no upstream contacted ($upstream_status empty) in nginx's text/html.
local cjson = require("cjson.safe")

local ngx = ngx
local var = ngx.var

local _M = {}

local BODIES = {
    [400] = cjson.encode({ error = "bad request: the edge could not read its body (malformed "
        .. "chunked encoding?); send it again, with Content-Length or valid chunks" }),
}
local function body_for(status)
    return BODIES[status] or cjson.encode({ error = "the edge could not take this request "
        .. "(HTTP " .. status .. "); retry, and tell its operators if it persists" })
end
-- This worker's answers being rewritten now: while 0 (nearly always), the body filter returns
-- at once, without touching the request.
local rewriting = 0

-- header_filter_by_lua: one status comparison on the common path.
function _M.header()
    local status = ngx.status
    if status < 400 or var.upstream_status or ngx.header["Content-Type"] ~= "text/html" then
        return
    end
    local body = body_for(status)
    ngx.header["Content-Type"] = "application/json"
    ngx.header["Content-Length"] = #body
    ngx.ctx.weir_nginx_error = body
    rewriting = rewriting + 1
end

-- body_filter_by_lua: nginx's HTML replaced with the JSON body, sent with the last buffer
-- (nginx sends its page in one call, the last buffer included).
function _M.body()
    local body = rewriting > 0 and ngx.ctx.weir_nginx_error
    if not body then
        return
    end
    if ngx.arg[2] then
        ngx.arg[1] = body
        ngx.ctx.weir_nginx_error = nil
        rewriting = rewriting - 1
    else
        ngx.arg[1] = ""
    end
end

return _M
