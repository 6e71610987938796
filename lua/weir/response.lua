-- HTTP answers the edge gives itself, in the V2 shape: error bodies {"error": "<what was wrong,
-- and what to do>"}, and the edge's own routes (health, server metadata, rate limited, too
-- large, unknown routes).
local cjson = require("cjson.safe")
local metrics = require("weir.metrics")
local names = require("weir.names")
local settings = require("weir.settings")

local ngx = ngx
local var = ngx.var

local _M = {}

function _M.error_body(message)
    return cjson.encode({ error = message })
end

-- Answer with a JSON body (and Retry-After seconds, if given), in a content phase.
function _M.send(status, body, retry_after)
    ngx.status = status
    ngx.header["Content-Type"] = "application/json"
    if retry_after then
        ngx.header["Retry-After"] = retry_after
    end
    ngx.print(body)
end
local send = _M.send

-- False when the request's method is `allowed` (GET takes HEAD too); otherwise answers 405
-- naming the method to use, and returns true. Every V2 route answers one method.
function _M.wrong_method(allowed)
    local method = ngx.req.get_method()
    if method == allowed or (allowed == "GET" and method == "HEAD") then
        return false
    end
    ngx.header["Allow"] = allowed == "GET" and "GET, HEAD" or allowed
    send(405, _M.error_body("method " .. method .. " not allowed here: use " .. allowed))
    return true
end
local wrong_method = _M.wrong_method

-- The same from an access phase: answer here and end the request (no proxy_pass).
function _M.exit(status, body, retry_after)
    send(status, body, retry_after)
    return ngx.exit(ngx.HTTP_OK)
end

-- Content handlers of the edge's own locations ---------------------------------------------

function _M.rate_limited()
    local name = var[names.VAR.MODEL]
    local model = settings.model(name)
    metrics.rate_limited(name)
    send(429, _M.error_body("rate limit of model " .. name .. " exceeded; slow down and "
        .. "retry after the Retry-After seconds"), model and model.retry_after or 1)
end

function _M.too_large()
    send(413, _M.error_body("request body too large for this edge (edge.max_body); "
        .. "send a smaller batch"))
end

function _M.unavailable()
    send(503, _M.error_body("model " .. var[names.VAR.MODEL] .. " did not answer; retry shortly"), 1)
end

function _M.not_found()
    local uri = var.uri
    local name = uri:match("^/v2/models/([^/]+)")
    local model = name and settings.model(name)
    if not model then
        if name then
            return send(404, _M.error_body("unknown model " .. name
                .. ": it is not in this release (GET /v2 lists the models)"))
        end
        return send(404, _M.error_body("no such route: the edge speaks the KServe V2 protocol "
            .. "under /v2"))
    end
    local version = uri:match("^/v2/models/[^/]+/versions/([^/]*)")
    if version then
        return send(400, _M.error_body("version " .. version .. " of model " .. name
            .. " is not valid: a version is a whole number, as in /v2/models/" .. name
            .. "/versions/N/infer (versions: " .. table.concat(model.versions, ", ") .. ")"))
    end
    send(404, _M.error_body("model " .. name .. " has no such route: use /v2/models/" .. name
        .. "[/versions/N] with /infer, /ready or nothing (metadata)"))
end

function _M.server_metadata()
    if wrong_method("GET") then
        return
    end
    local current = settings.get()
    local models = {}
    for name in pairs(current.models) do
        models[#models + 1] = name
    end
    table.sort(models)
    send(200, cjson.encode({ name = "weir", version = tostring(current.revision),
        extensions = { "binary_tensor_data" }, models = models }))
end

function _M.live()
    if wrong_method("GET") then
        return
    end
    send(200, '{"live":true}')
end

-- Readiness: ready when every upstream of every version is ready. The upstreams are asked
-- at most once per READY_EVERY seconds, by the one request that takes the check's key; every
-- other request answers from the cached result (a request that finds none yet, right after a
-- start, waits for it). After an apply the answer may speak of the old upstreams for up to
-- READY_EVERY seconds.
local READY_EVERY = 1
local READY_WAIT = 3  -- seconds a request waits for the first result
local health = ngx.shared[names.DICT.HEALTH]

local function not_ready_upstreams()
    local requests, upstreams = {}, {}
    for _, model in pairs(settings.get().models) do
        for _, upstream in pairs(model.upstreams) do
            requests[#requests + 1] = { "/_weir/ready", { args = { upstream = upstream } } }
            upstreams[#upstreams + 1] = upstream
        end
    end
    local answers = { ngx.location.capture_multi(requests) }
    local not_ready = {}
    for i, answer in ipairs(answers) do
        if answer.status ~= 200 then
            not_ready[#not_ready + 1] = upstreams[i]
        end
    end
    table.sort(not_ready)
    return table.concat(not_ready, ", ")
end

function _M.set_health_dict(dict)  -- for tests
    health = dict
end

function _M.ready()
    if wrong_method("GET") then
        return
    end
    local KEY = names.KEY
    if health:safe_add(KEY.READY_CHECK, true, READY_EVERY) then
        health:safe_set(KEY.READY, not_ready_upstreams())
    end
    local not_ready = health:get(KEY.READY)
    local deadline = ngx.now() + READY_WAIT
    while not_ready == nil and ngx.now() < deadline do
        ngx.sleep(0.02)
        not_ready = health:get(KEY.READY)
    end
    if not_ready == nil then
        return send(503, _M.error_body("readiness is being checked; retry shortly"), 1)
    end
    if not_ready ~= "" then
        return send(503, _M.error_body("not ready: " .. not_ready), 1)
    end
    send(200, '{"ready":true}')
end

return _M
