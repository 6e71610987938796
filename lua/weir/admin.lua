-- Admin API routes. handle(req) takes {method, path, body} (already authenticated) and returns
-- status, body (a table for JSON, a string for text), content type. Changes take effect on the
-- next request, with no reload: they are written to the shared dict and persisted to disk.
local cjson = require("cjson.safe")
local config = require("weir.config")
local state = require("weir.state")
local weights = require("weir.weights")

local _M = {}

local publish     -- function(): publish the current settings file; returns settings or nil, err
local breaker_of  -- function(): the breaker instance (injected by the phase shim)
local persist     -- function(): save the state file; returns ok, err
local metrics_text -- function(): Prometheus text

function _M.init(opts)
    publish, breaker_of, persist, metrics_text = opts.publish, opts.breaker, opts.persist,
        opts.metrics
end

local function err(status, message)
    return status, { error = message }
end

function _M.model_status(name)
    local model = config.model(name)
    local live = state.model(name)
    local breaker = breaker_of()
    local versions = {}
    local yaml_weights = live.split or model.weights
    local effective = live.killed and {} or weights.effective(model.versions, yaml_weights,
        live.killed_versions)
    for _, version in ipairs(model.versions) do
        local bstate, ends = breaker:state(name, version)
        versions[version] = {
            killed = live.killed_versions[version] == true,
            weight = effective[version] or 0,
            breaker = { state = bstate, open_until = ends },
            upstream = model.upstreams[version],
        }
    end
    return {
        killed = live.killed,
        versions = versions,
        weights = {
            release = model.weights,
            override = live.split or cjson.null,
            effective = effective,
        },
        fallback = model.fallback.version and { version = model.fallback.version }
            or { status = model.fallback.status },
    }
end

function _M.status()
    local settings = config.get()
    local models = {}
    for name in pairs(settings.models) do
        models[name] = _M.model_status(name)
    end
    return { revision = settings.revision, checksum = settings.checksum, models = models }
end

local function saved(status, body)
    local ok, perr = persist()
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

local function model_route(method, name, rest, body)
    local model = config.model(name)
    if not model then
        return err(404, "no model " .. name .. " in the applied release")
    end
    if rest == "" and method == "GET" then
        return 200, _M.model_status(name)
    end
    if rest == "/kill" then
        if method == "POST" then
            state.kill(name)
        elseif method == "DELETE" then
            state.revive(name)
        else
            return err(405, "use POST to kill, DELETE to revive")
        end
        return saved(200, _M.model_status(name))
    end
    local version, vrest = rest:match("^/versions/([^/]+)(/kill)$")
    if version then
        if not model.version_set[version] then
            return err(404, "no version " .. version .. " of model " .. name .. " (versions: "
                .. table.concat(model.versions, ", ") .. ")")
        end
        if vrest == "/kill" and method == "POST" then
            state.kill(name, version)
        elseif vrest == "/kill" and method == "DELETE" then
            state.revive(name, version)
        else
            return err(405, "use POST to kill, DELETE to revive")
        end
        return saved(200, _M.model_status(name))
    end
    if rest == "/split" then
        if method == "PUT" or method == "POST" then
            local split, perr = parse_split(model, body)
            if not split then
                return err(400, perr)
            end
            state.set_split(name, split)
        elseif method == "DELETE" then
            state.set_split(name, nil)
        else
            return err(405, "use PUT to set live weights, DELETE to go back to the release's")
        end
        return saved(200, _M.model_status(name))
    end
    return err(404, "no such admin route; see GET /admin/status")
end

function _M.handle(req)
    local method, path = req.method, req.path
    if path == "/metrics" or path == "/admin/metrics" then
        if method ~= "GET" then
            return err(405, "use GET")
        end
        return 200, metrics_text(), "text/plain; version=0.0.4"
    end
    if path == "/admin/status" then
        return 200, _M.status()
    end
    if path == "/admin/settings/reload" then
        if method ~= "POST" then
            return err(405, "use POST")
        end
        local settings, perr = publish()
        if not settings then
            return err(409, perr)
        end
        return 200, { revision = settings.revision, checksum = settings.checksum }
    end
    if path == "/admin/checksum" then
        local settings = config.get()
        return 200, { revision = settings.revision, checksum = settings.checksum }
    end
    local name, rest = path:match("^/admin/models/([a-z0-9][a-z0-9_-]*)(.*)$")
    if name then
        return model_route(method, name, rest, req.body)
    end
    return err(404, "no such admin route; try GET /admin/status")
end

return _M
