-- Admin API (content_by_lua of the admin listener): authenticate (admin.auth), route, answer
-- JSON (or metrics text). handle(req) takes {method, path, body} (already authenticated) and
-- returns status, body (a table for JSON, a string for text), content type. Changes take effect
-- on the next request, with no reload: they are written to the shared dict and persisted to
-- the state file (overrides). metrics() answers the metrics listener's GET /metrics with the
-- same text, no token. (A few lines over 200: every admin route with its own checks of method
-- and body, one table of routes to read.)
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

-- Strict JSON for the split body: no hex, NaN or Infinity (cjson's lenient default).
local strict_json = cjson.new()
strict_json.decode_invalid_numbers(false)

local SPLIT_USAGE = 'send a JSON object of percent per version summing to 100, e.g. '
    .. '{"1": 90, "2": 10}'

-- Live weights as the release's split takes them: an object of version -> percent, each a
-- number from 0 to 100 with at most one decimal, summing to 100.
function _M.parse_split(model, body)
    if not (body or ""):match("^%s*{") then
        return nil, SPLIT_USAGE
    end
    local decoded = strict_json.decode(body)
    if type(decoded) ~= "table" then
        return nil, SPLIT_USAGE .. " (the body is not valid JSON: numbers in decimal only)"
    end
    local out, total = {}, 0
    for version, weight in pairs(decoded) do
        if type(version) ~= "string" or not model.version_set[version] then
            return nil, "version " .. tostring(version) .. " is not in the release (versions: "
                .. table.concat(model.versions, ", ") .. ")"
        end
        if type(weight) ~= "number" or weight ~= weight or weight < 0 or weight > 100
                or math.floor(weight * 10 + 0.5) ~= weight * 10 then
            return nil, "weight of version " .. version .. " must be a percent from 0 to 100 "
                .. "with at most one decimal, not " .. tostring(weight)
        end
        out[version] = weight
        total = total + weight
    end
    if math.abs(total - 100) > 1e-6 then
        return nil, "the weights must sum to 100 (they sum to " .. tostring(total) .. ")"
    end
    return out
end

-- What a failed live change answers: nothing changed, and why.
local function stored(undo, why)
    if undo then
        return undo
    end
    return nil, 507, "nothing changed: " .. tostring(why)
end

-- A live change: the action of the request's method (or 405 and `usage`), saved to the state
-- file. An action returns the change's undo, or nil, status, message (nothing changed); a
-- change the state file cannot take is undone, so live state and state file always agree.
local function change(method, name, actions, usage)
    local action = actions[method]
    if not action then
        return err(405, usage)
    end
    local undo, status, message = action()
    if not undo then
        return err(status, message)
    end
    local ok, perr = overrides.save()
    if not ok then
        undo()
        return err(500, "nothing changed: the state file could not be saved (" .. tostring(perr)
            .. "); check the runtime directory's permissions and space")
    end
    return 200, report.model(name)
end

-- POST kills a model (version nil) or one version, DELETE revives it.
local function kill_switch(method, name, version)
    return change(method, name, {
        POST = function() return stored(overrides.kill(name, version)) end,
        DELETE = function() return stored(overrides.revive(name, version)) end,
    }, "use POST to kill, DELETE to revive")
end

-- PUT (or POST) sets live weights, DELETE goes back to the release's.
local function split(method, name, model, body)
    local function set()
        local weights, perr = _M.parse_split(model, body)
        if not weights then
            return nil, 400, perr
        end
        return stored(overrides.set_split(name, weights))
    end
    return change(method, name, {
        PUT = set,
        POST = set,
        DELETE = function() return stored(overrides.set_split(name, nil)) end,
    }, "use PUT to set live weights, DELETE to go back to the release's")
end

local function model_route(method, name, rest, body)
    local model = settings.model(name)
    if not model then
        return err(404, "no model " .. name .. " in the applied release")
    end
    if rest == "" then
        if method ~= "GET" then
            return err(405, "use GET")
        end
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

local function metrics_text()
    return 200, metrics.render(report.gauges(), report.known_counters()), "text/plain; version=0.0.4"
end

local function reload_settings()
    local published, perr = settings.publish(ngx.shared[names.DICT.STATE])
    if not published then
        return err(409, perr)
    end
    return 200, { revision = published.revision, checksum = published.checksum }
end

local function checksum()
    local current = settings.get()
    return 200, { revision = current.revision, checksum = current.checksum }
end

-- The fixed routes: path -> the one method it answers, and its handler.
local ROUTES = {
    ["/metrics"] = { "GET", metrics_text },
    ["/admin/metrics"] = { "GET", metrics_text },
    ["/admin/status"] = { "GET", function() return 200, report.all() end },
    ["/admin/settings/reload"] = { "POST", reload_settings },
    ["/admin/checksum"] = { "GET", checksum },
}

function _M.handle(req)
    local method, path = req.method, req.path
    local route = ROUTES[path]
    if route then
        if method ~= route[1] then
            return err(405, "use " .. route[1])
        end
        return route[2]()
    end
    local name, rest = path:match("^/admin/models/([a-z0-9][a-z0-9_-]*)(.*)$")
    if name then
        return model_route(method, name, rest, req.body)
    end
    return err(404, "no such admin route; try GET /admin/status")
end

local function send(status, body, content_type)
    ngx.status = status
    ngx.header["Content-Type"] = content_type or "application/json"
    ngx.header["Cache-Control"] = "no-store"
    if type(body) == "table" then
        body = cjson.encode(body)
    end
    ngx.print(body)
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
    send(status, body, content_type)
end

-- content_by_lua of the metrics listener's `location = /metrics` (edge.metrics_listen): the
-- admin listener's /metrics route, with no token (metrics carry no secrets) and nothing else.
function _M.metrics()
    local method = ngx.req.get_method()
    if method ~= "GET" and method ~= "HEAD" then
        return send(err(405, "use GET"))
    end
    send(metrics_text())
end

return _M
