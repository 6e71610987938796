-- What the admin API reports: per model, its kill switches, versions (weights, breaker state)
-- and fallback (GET /admin/status); the same as Prometheus gauges for /metrics.
local cjson = require("cjson.safe")
local fallback = require("weir.fallback")
local guard = require("weir.breaker.guard")
local machine = require("weir.breaker.machine")
local overrides = require("weir.overrides")
local settings = require("weir.settings")
local weights = require("weir.routing.weights")

local _M = {}

function _M.model(name)
    local model = settings.model(name)
    local live = overrides.model(name)
    local versions = {}
    local yaml_weights = live.split or model.weights
    local effective = live.killed and {} or weights.effective(model.versions, yaml_weights,
        live.killed_versions)
    for _, version in ipairs(model.versions) do
        local bstate, ends = guard.breaker:state(name, version)
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

function _M.all()
    local current = settings.get()
    local models = {}
    for name in pairs(current.models) do
        models[name] = _M.model(name)
    end
    return { revision = current.revision, checksum = current.checksum, models = models }
end

local BREAKER_CODES = { closed = 0, open = 1, half_open = 2 }

-- Gauges for metrics.render: breaker states, kill switches, the applied release.
function _M.gauges()
    local current = settings.get()
    local bstate = { name = "weir_edge_breaker_state",
        help = "Circuit breaker state: 0 closed, 1 open, 2 half-open.", rows = {} }
    local killed = { name = "weir_edge_killed",
        help = "1 when a kill switch is on (version \"\": the whole model).", rows = {} }
    local share = { name = "weir_edge_version_weight",
        help = "Percent of the model's requests each version is routed now (the live split or the "
            .. "release's, kill switches applied): a rollout's current step.", rows = {} }
    local models = {}
    for name in pairs(current.models) do
        models[#models + 1] = name
    end
    table.sort(models)
    for _, name in ipairs(models) do
        local live = overrides.model(name)
        killed.rows[#killed.rows + 1] = { { "model", "version" }, { name, "" }, live.killed and 1 or 0 }
        local model = current.models[name]
        local effective = live.killed and {} or weights.effective(model.versions,
            live.split or model.weights, live.killed_versions)
        for _, version in ipairs(model.versions) do
            share.rows[#share.rows + 1] = { { "model", "version" }, { name, version },
                effective[version] or 0 }
            local s = guard.breaker:state(name, version)
            bstate.rows[#bstate.rows + 1] = { { "model", "version" }, { name, version }, BREAKER_CODES[s] }
            killed.rows[#killed.rows + 1] = { { "model", "version" }, { name, version },
                live.killed_versions[version] and 1 or 0 }
        end
    end
    local info = { name = "weir_edge_config_info", help = "The applied release.",
        rows = { { { "revision", "checksum" }, { current.revision, current.checksum }, 1 } } }
    return { bstate, killed, share, info }
end

-- The counters' label sets the settings make known, for metrics.render to export at 0:
-- rate-limited per model, fallbacks per model and reason, breaker transitions per version.
function _M.known_counters()
    local known = { rl = {}, fb = {}, bt = {} }
    for name, model in pairs(settings.get().models) do
        known.rl[#known.rl + 1] = { name }
        for _, reason in ipairs(fallback.REASONS) do
            known.fb[#known.fb + 1] = { name, reason }
        end
        for _, version in ipairs(model.versions) do
            for _, pair in ipairs(machine.TRANSITIONS) do
                known.bt[#known.bt + 1] = { name, version, pair[1], pair[2] }
            end
        end
    end
    return known
end

return _M
