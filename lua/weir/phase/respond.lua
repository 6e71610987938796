-- Answers the edge gives itself: rate limited, too large, unknown routes, health.
local cjson = require("cjson.safe")
local config = require("weir.config")
local metrics = require("weir.metrics")
local response = require("weir.response")

local var = ngx.var

local _M = {}

local send = response.send

function _M.rate_limited()
    local name = var.weir_model
    local model = config.model(name)
    metrics.rate_limited(name)
    send(429, response.error_body("rate limit of model " .. name .. " exceeded; slow down and "
        .. "retry after the Retry-After seconds"), model and model.retry_after or 1)
end

function _M.too_large()
    send(413, response.error_body("request body too large for this edge (edge.max_body); "
        .. "send a smaller batch"))
end

function _M.unavailable()
    send(503, response.error_body("model " .. var.weir_model .. " did not answer; retry shortly"), 1)
end

function _M.not_found()
    local model = ngx.var.uri:match("^/v2/models/([^/]+)")
    if model then
        return send(404, response.error_body("unknown model " .. model
            .. ": it is not in this release (GET /v2 lists the models)"))
    end
    send(404, response.error_body("no such route: the edge speaks the KServe V2 protocol "
        .. "under /v2"))
end

function _M.server_metadata()
    local settings = config.get()
    local names = {}
    for name in pairs(settings.models) do
        names[#names + 1] = name
    end
    table.sort(names)
    send(200, cjson.encode({ name = "weir", version = tostring(settings.revision),
        extensions = { "binary_tensor_data" }, models = names }))
end

function _M.live()
    send(200, '{"live":true}')
end

-- Ready when every upstream of every version is ready.
function _M.ready()
    local settings = config.get()
    local requests, names = {}, {}
    for _, model in pairs(settings.models) do
        for _, upstream in pairs(model.upstreams) do
            requests[#requests + 1] = { "/_weir/ready", { args = { upstream = upstream } } }
            names[#names + 1] = upstream
        end
    end
    local answers = { ngx.location.capture_multi(requests) }
    local not_ready = {}
    for i, answer in ipairs(answers) do
        if answer.status ~= 200 then
            not_ready[#not_ready + 1] = names[i]
        end
    end
    if #not_ready > 0 then
        table.sort(not_ready)
        return send(503, response.error_body("not ready: " .. table.concat(not_ready, ", ")), 1)
    end
    send(200, '{"ready":true}')
end

return _M
