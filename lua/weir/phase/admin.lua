-- content_by_lua for the admin listener: authenticate, route, answer JSON (or metrics text).
local admin = require("weir.admin")
local auth = require("weir.auth")
local cjson = require("cjson.safe")
local config = require("weir.config")
local context = require("weir.context")
local metrics = require("weir.metrics")
local state = require("weir.state")

local _M = {}

local function gauges()
    local settings = config.get()
    local bstate, killed = { name = "weir_edge_breaker_state",
        help = "Circuit breaker state: 0 closed, 1 open, 2 half-open.", rows = {} },
        { name = "weir_edge_killed", help = "1 when a kill switch is on (version \"\": the whole model).",
            rows = {} }
    local codes = { closed = 0, open = 1, half_open = 2 }
    local names = {}
    for name in pairs(settings.models) do
        names[#names + 1] = name
    end
    table.sort(names)
    for _, name in ipairs(names) do
        local live = state.model(name)
        killed.rows[#killed.rows + 1] = { { "model", "version" }, { name, "" }, live.killed and 1 or 0 }
        for _, version in ipairs(settings.models[name].versions) do
            local s = context.breaker:state(name, version)
            bstate.rows[#bstate.rows + 1] = { { "model", "version" }, { name, version }, codes[s] }
            killed.rows[#killed.rows + 1] = { { "model", "version" }, { name, version },
                live.killed_versions[version] and 1 or 0 }
        end
    end
    local info = { name = "weir_edge_config_info", help = "The applied release.",
        rows = { { { "revision", "checksum" }, { settings.revision, settings.checksum }, 1 } } }
    return { bstate, killed, info }
end

admin.init({
    publish = function() return config.publish(ngx.shared.weir_state) end,
    breaker = function() return context.breaker end,
    persist = function() return state.save(config.get().state_file) end,
    metrics = function() return metrics.render(gauges()) end,
})

-- nil when the request carries the admin token (or auth is open), else status, error body.
local function denied()
    config.sync(ngx.shared.weir_state)
    local status, message = auth.check(config.get().admin_auth, context.token,
        ngx.var.http_authorization)
    if not status then
        return nil
    end
    if status == 401 then
        ngx.header["WWW-Authenticate"] = 'Bearer realm="weir-admin"'
    end
    return status, { error = message }
end

-- access_by_lua for the sidecar metrics relayed on this listener: the same token as the API.
function _M.authorize()
    local status, body = denied()
    if status then
        ngx.status = status
        ngx.header["Content-Type"] = "application/json"
        ngx.print(cjson.encode(body))
        return ngx.exit(status)
    end
end

function _M.handle()
    local status, body = denied()
    local content_type
    if not status then
        ngx.req.read_body()
        status, body, content_type = admin.handle({
            method = ngx.req.get_method(),
            path = ngx.var.uri,
            body = ngx.req.get_body_data(),
        })
    end
    ngx.status = status
    ngx.header["Content-Type"] = content_type or "application/json"
    ngx.header["Cache-Control"] = "no-store"
    if type(body) == "table" then
        body = cjson.encode(body)
    end
    ngx.print(body)
end

return _M
