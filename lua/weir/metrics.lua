-- Edge metrics in a shared dict, exposed in Prometheus text format on the admin listener.
-- The hot path only adds to a per-worker Lua table; a timer flushes it into the shared dict
-- every FLUSH_SECONDS (and when the worker exits), so a scrape lags by at most that much.
-- Histogram buckets are stored non-cumulative and summed at scrape time. (A little over 200
-- lines: recording and rendering share the one key scheme, "kind|label|label...", kept here.)
local DICT = require("weir.names").DICT
local outcome = require("weir.outcome")

local ngx = ngx
local var = ngx.var

local _M = {}

local FLUSH_SECONDS = 0.5
_M.FLUSH_SECONDS = FLUSH_SECONDS

local BUCKETS = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 }
_M.BUCKETS = BUCKETS

local dict = ngx.shared[DICT.METRICS]

function _M.set_dict(value)  -- for tests
    dict = value
end

local function incr(key, by)
    local _, err, forcible = dict:incr(key, by or 1, 0)
    if err and not forcible then
        ngx.log(ngx.WARN, "weir metrics: ", err)
    end
end

local pending = {}  -- this worker's increments since the last flush

local function add(key, by)
    pending[key] = (pending[key] or 0) + (by or 1)
end

function _M.flush()
    local batch = pending
    pending = {}
    for key, value in pairs(batch) do
        incr(key, value)
    end
end

-- init_worker_by_lua: starts the flush timer.
function _M.init_worker()
    local ok, err = ngx.timer.every(FLUSH_SECONDS, function() _M.flush() end)
    if not ok then
        ngx.log(ngx.ERR, "weir metrics: cannot start the flush timer: ", err)
    end
end

-- Keys are built once per label set and cached: no string building per request.
local keys = {}  -- bounded: models x versions x statuses

local function key3(kind, a, b, c)
    local by_kind = keys[kind]
    if not by_kind then
        by_kind = {}
        keys[kind] = by_kind
    end
    local by_a = by_kind[a]
    if not by_a then
        by_a = {}
        by_kind[a] = by_a
    end
    local by_b = by_a[b]
    if not by_b then
        by_b = {}
        by_a[b] = by_b
    end
    local key = by_b[c]
    if not key then
        key = kind .. "|" .. a .. "|" .. b .. "|" .. c
        by_b[c] = key
    end
    return key
end

function _M.request(model, version, status)
    add(key3("req", model, version, status))
end

function _M.rate_limited(model)
    add("rl|" .. model)
end

function _M.fallback(model, reason)
    add("fb|" .. model .. "|" .. reason)
end

function _M.server_failure(model, version, status)
    add(key3("sf", model, version, status))
end

-- Rare and worth seeing at once: straight to the shared dict.
function _M.transition(model, version, from, to)
    incr("bt|" .. model .. "|" .. version .. "|" .. from .. "|" .. to)
end

function _M.upstream_seconds(model, version, seconds)
    local index = #BUCKETS + 1
    for i = 1, #BUCKETS do
        if seconds <= BUCKETS[i] then
            index = i
            break
        end
    end
    add(key3("hb", model, version, index))
    add(key3("hs", model, version, ""), seconds)
end

-- log_by_lua: count the request (ctx: outcome.read). A proxied answer's status is its
-- upstream's; nginx's is read only for the edge's own answers. Rate-limited requests never
-- reach this (their location has no log hook): they are not traffic.
function _M.log(ctx)
    local status = ctx.status
    if status then
        local seconds = outcome.last_seconds(var.upstream_response_time)
        if seconds then
            _M.upstream_seconds(ctx.name, ctx.version, seconds)
        end
    end
    _M.request(ctx.name, ctx.version, status or ngx.status)
end

-- Rendering -----------------------------------------------------------------------------------

local function split(key)
    local parts = {}
    for part in (key .. "|"):gmatch("([^|]*)|") do
        parts[#parts + 1] = part
    end
    return parts
end

local function labels(names, values)
    local out = {}
    for i, name in ipairs(names) do
        out[i] = name .. '="' .. tostring(values[i]):gsub('[\\"\n]', "_") .. '"'
    end
    return "{" .. table.concat(out, ",") .. "}"
end

local COUNTERS = {
    req = { "weir_edge_requests_total", { "model", "version", "status" },
        "Requests that passed the rate limit, by answering version (empty: placeholder) and status." },
    rl = { "weir_edge_rate_limited_total", { "model" }, "Requests rejected with 429 by the rate limit." },
    fb = { "weir_edge_fallbacks_total", { "model", "reason" },
        "Requests answered by the fallback (killed, breaker-open, upstream-error, overloaded)." },
    bt = { "weir_edge_breaker_transitions_total", { "model", "version", "from", "to" },
        "Circuit breaker state changes." },
    sf = { "weir_edge_server_failures_total", { "model", "version", "status" },
        "Answers of a version that were the server's failure (marked 5xx, 502, 504), replaced by "
            .. "the fallback; the request itself is counted under the version that answered it." },
}
local ORDER = { "req", "rl", "fb", "bt", "sf" }

-- extra: list of {name, help, type, rows = {{labels_names, label_values, value}}} (gauges).
-- known: {kind = {label_values, ...}}, the label sets the settings make known ("rl", "fb",
-- "bt"): each is exported at 0 until counted, so a panel or an alert has data from the start.
-- They are filled here, at scrape time, not written into the shared dict.
function _M.render(extra, known)
    local series, hist, seen = {}, {}, {}
    for _, key in ipairs(dict:get_keys(0)) do
        local parts = split(key)
        local kind = table.remove(parts, 1)
        local value = dict:get(key)
        if COUNTERS[kind] and value then
            series[kind] = series[kind] or {}
            table.insert(series[kind], { parts, value })
            seen[key] = true
        elseif (kind == "hb" or kind == "hs") and value then
            local id = parts[1] .. "|" .. parts[2]
            local h = hist[id] or { model = parts[1], version = parts[2], buckets = {}, sum = 0 }
            hist[id] = h
            if kind == "hb" then
                h.buckets[tonumber(parts[3])] = value
            else
                h.sum = value
            end
        end
    end
    for kind, sets in pairs(known or {}) do
        for _, values in ipairs(sets) do
            if not seen[kind .. "|" .. table.concat(values, "|")] then
                series[kind] = series[kind] or {}
                table.insert(series[kind], { values, 0 })
            end
        end
    end
    local out = {}
    for _, kind in ipairs(ORDER) do
        local name, names, help = COUNTERS[kind][1], COUNTERS[kind][2], COUNTERS[kind][3]
        out[#out + 1] = "# HELP " .. name .. " " .. help
        out[#out + 1] = "# TYPE " .. name .. " counter"
        local rows = series[kind] or {}
        table.sort(rows, function(a, b) return table.concat(a[1], "|") < table.concat(b[1], "|") end)
        for _, row in ipairs(rows) do
            out[#out + 1] = name .. labels(names, row[1]) .. " " .. string.format("%.17g", row[2])
        end
    end
    local hname = "weir_edge_upstream_response_seconds"
    out[#out + 1] = "# HELP " .. hname .. " Upstream response time seen by the edge."
    out[#out + 1] = "# TYPE " .. hname .. " histogram"
    local ids = {}
    for id in pairs(hist) do
        ids[#ids + 1] = id
    end
    table.sort(ids)
    for _, id in ipairs(ids) do
        local h, acc = hist[id], 0
        for i = 1, #BUCKETS + 1 do
            acc = acc + (h.buckets[i] or 0)
            local le = BUCKETS[i] and string.format("%g", BUCKETS[i]) or "+Inf"
            out[#out + 1] = hname .. "_bucket" .. labels({ "model", "version", "le" },
                { h.model, h.version, le }) .. " " .. acc
        end
        local l = labels({ "model", "version" }, { h.model, h.version })
        out[#out + 1] = hname .. "_sum" .. l .. " " .. string.format("%.6f", h.sum)
        out[#out + 1] = hname .. "_count" .. l .. " " .. acc
    end
    for _, gauge in ipairs(extra or {}) do
        out[#out + 1] = "# HELP " .. gauge.name .. " " .. gauge.help
        out[#out + 1] = "# TYPE " .. gauge.name .. " gauge"
        for _, row in ipairs(gauge.rows) do
            out[#out + 1] = gauge.name .. labels(row[1], row[2]) .. " " .. tostring(row[3])
        end
    end
    return table.concat(out, "\n") .. "\n"
end

return _M
