-- Admin API (content_by_lua of the admin listener): authenticate (admin.auth), route, answer
-- JSON (or metrics text). handle(req) takes {method, path, body} (already authenticated) and
-- returns status, body (a table for JSON, a string for text), content type. Changes take effect
-- on the next request, with no reload: they are written to the shared dict and persisted to
-- the state file (overrides).
local auth = require("weir.admin.auth")
local cjson = require("cjson.safe")
local metrics = require("weir.metrics")
local names = require("weir.names")
local overrides = require("weir.overrides")
local report = require("weir.admin.status")
local settings = require("weir.settings")

local ngx = ngx

local _M = {}

local function err(status, message)
    return status, { error = message }
end

local function saved(status, body)
    local ok, perr = overrides.save()
    if not ok then
        -- The change is live but would not survive a restart: say so loudly.
        return 500, { error = "the change is live but could not be saved to the state file ("
            .. tostring(perr) .. "): check the runtime directory's permissions" }
    end
    return status, body
end

local function parse_split(model, body)
    local decoded = cjson.decode(body or "")
    if type(decoded) ~= "table" then
        return nil, 'send JSON weights per version, e.g. {"1": 90, "2": 10}'
    end
    local out, total = {}, 0
    for version, weight in pairs(decoded) do
        if not model.version_set[tostring(version)] then
            return nil, "version " .. tostring(version) .. " is not in the release (versions: "
                .. table.concat(model.versions, ", ") .. ")"
        end
        if type(weight) ~= "number" or weight < 0 or weight ~= weight or weight > 1e6 then
            return nil, "weight of version " .. tostring(version) .. " must be a number >= 0"
        end
        out[tostring(version)] = weight
        total = total + weight
    end
    if total <= 0 then
        return nil, "at least one version needs a weight above 0"
    end
    return out
end

-- A live change: the action of the request's method (or 405 and `usage`), saved to the state
-- file; an action may refuse with status, body.
local function change(method, name, actions, usage)
    local action = actions[method]
    if not action then
        return err(405, usage)
    end
    local status, body = action()
    if status then
        return status, body
    end
    return saved(200, report.model(name))
end

-- POST kills a model (version nil) or one version, DELETE revives it.
local function kill_switch(method, name, version)
    return change(method, name, {
        POST = function() overrides.kill(name, version) end,
        DELETE = function() overrides.revive(name, version) end,
    }, "use POST to kill, DELETE to revive")
end

-- PUT (or POST) sets live weights, DELETE goes back to the release's.
local function split(method, name, model, body)
    local function set()
        local weights, perr = parse_split(model, body)
        if not weights then
            return err(400, perr)
        end
        overrides.set_split(name, weights)
    end
    return change(method, name, {
        PUT = set,
        POST = set,
        DELETE = function() overrides.set_split(name, nil) end,
    }, "use PUT to set live weights, DELETE to go back to the release's")
end

local function model_route(method, name, rest, body)
    local model = settings.model(name)
    if not model then
        return err(404, "no model " .. name .. " in the applied release")
    end
    if rest == "" and method == "GET" then
        return 200, report.model(name)
    end
    if rest == "/kill" then
        return kill_switch(method, name, nil)
    end
    local version = rest:match("^/versions/([^/]+)/kill$")
    if version then
        if not model.version_set[version] then
            return err(404, "no version " .. version .. " of model " .. name .. " (versions: "
                .. table.concat(model.versions, ", ") .. ")")
        end
        return kill_switch(method, name, version)
    end
    if rest == "/split" then
        return split(method, name, model, body)
    end
    return err(404, "no such admin route; see GET /admin/status")
end

function _M.handle(req)
    local method, path = req.method, req.path
    if path == "/metrics" or path == "/admin/metrics" then
        if method ~= "GET" then
            return err(405, "use GET")
        end
        return 200, metrics.render(report.gauges()), "text/plain; version=0.0.4"
    end
    if path == "/admin/status" then
        return 200, report.all()
    end
    if path == "/admin/settings/reload" then
        if method ~= "POST" then
            return err(405, "use POST")
        end
        local published, perr = settings.publish(ngx.shared[names.DICT.STATE])
        if not published then
            return err(409, perr)
        end
        return 200, { revision = published.revision, checksum = published.checksum }
    end
    if path == "/admin/checksum" then
        local current = settings.get()
        return 200, { revision = current.revision, checksum = current.checksum }
    end
    local name, rest = path:match("^/admin/models/([a-z0-9][a-z0-9_-]*)(.*)$")
    if name then
        return model_route(method, name, rest, req.body)
    end
    return err(404, "no such admin route; try GET /admin/status")
end

-- content_by_lua of the admin listener.
function _M.content()
    local status, body = auth.deny()
    local content_type
    if not status then
        ngx.req.read_body()
        status, body, content_type = _M.handle({
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
