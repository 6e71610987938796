-- Circuit breaker state machine per model version, state in a shared dict so every worker agrees.
-- (Pure: the request glue, allow/record per request and the probe marker, is breaker/guard.lua.)
--
-- closed --(failures within window)--> open --(open_for elapsed)--> half_open
-- half_open --(probes successes)--> closed;  half_open --(one failure)--> open, for twice as long
-- (capped at max_open_for). Only real upstream outcomes are recorded by callers: 5xx from the
-- sidecar, timeouts and connect errors; never the edge's own 429s or fallback answers.
--
-- Keys, with id = model|version:
--   g|id        generation of the current open period; absent while closed
--   u|id|gen    when that open period ends (ngx.now() seconds)
--   l|id        consecutive opens, for the doubling
--   f|id        failures in the current window (expires `window` after the first one)
--   p|id|gen    probes handed out in half-open; s|id|gen probe successes
--   h|id|gen    marks the open -> half_open transition (logged once)
--   r|id|gen    marks that a failed probe already re-opened this generation
-- Races: two workers may both hand out a probe past the limit between get and incr; incr's
-- atomic result decides, so at most `probes` probes run per generation.
local _M = {}
local mt = { __index = _M }

local KEEP = 86400  -- seconds bookkeeping keys outlive any sane open period

-- dict: a shared dict; now: clock in seconds; on_transition(model, version, from, to, detail).
function _M.new(dict, now, on_transition)
    return setmetatable({ dict = dict, now = now, on_transition = on_transition,
        seen_serial = -1, open_set = {} }, mt)
end

-- The versions whose breaker is not closed, as {model = {version = true}}, rescanned only when
-- `serial` moved (transitions bump it).
function _M:not_closed(serial)
    if serial ~= self.seen_serial then
        local found = {}
        for _, key in ipairs(self.dict:get_keys(0)) do
            local model, version = key:match("^g|([^|]+)|([^|]+)$")
            if model then
                found[model] = found[model] or {}
                found[model][version] = true
            end
        end
        self.seen_serial, self.open_set = serial, found
    end
    return self.open_set
end

-- allow(), with no shared dict access while the breaker is closed (the common case).
function _M:allow_cached(model, version, conf, serial)
    local open = self:not_closed(serial)[model]
    if not open or not open[version] then
        return true
    end
    return self:allow(model, version, conf)
end

local function id_of(model, version)
    return model .. "|" .. version
end

-- Every transition _transition reports, as {from, to} (metrics exports each at 0 from the start).
_M.TRANSITIONS = {
    { "closed", "open" }, { "open", "half_open" }, { "half_open", "closed" }, { "half_open", "open" },
}

function _M:_transition(model, version, from, to, detail)
    if self.on_transition then
        self.on_transition(model, version, from, to, detail)
    end
end

function _M:_open(model, version, conf, from, detail)
    local dict, id = self.dict, id_of(model, version)
    local level = dict:incr("l|" .. id, 1, 0)
    local period = math.min(conf.open_for * 2 ^ (level - 1), conf.max_open_for)
    local gen = dict:incr("n|" .. id, 1, 0)
    dict:set("u|" .. id .. "|" .. gen, self.now() + period, KEEP)
    dict:set("g|" .. id, gen)
    dict:delete("f|" .. id)
    self:_transition(model, version, from, "open",
        string.format("%s; open for %gs", detail, period))
end

function _M:_close(model, version)
    local dict, id = self.dict, id_of(model, version)
    dict:delete("g|" .. id)
    dict:delete("l|" .. id)
    dict:delete("f|" .. id)
    self:_transition(model, version, "half_open", "closed", "probes succeeded")
end

-- "closed" | "open" | "half_open", and when the open period ends.
function _M:state(model, version)
    local dict, id = self.dict, id_of(model, version)
    local gen = dict:get("g|" .. id)
    if not gen then
        return "closed"
    end
    local ends = dict:get("u|" .. id .. "|" .. gen) or 0
    if self.now() < ends then
        return "open", ends
    end
    return "half_open", ends
end

-- May a request go to this version? Returns true (closed), a probe generation (half-open), or
-- nil and "open" / "half_open" (no probe slot left).
function _M:allow(model, version, conf)
    local dict, id = self.dict, id_of(model, version)
    local gen = dict:get("g|" .. id)
    if not gen then
        return true
    end
    local ends = dict:get("u|" .. id .. "|" .. gen) or 0
    if self.now() < ends then
        return nil, "open"
    end
    if dict:add("h|" .. id .. "|" .. gen, true, KEEP) then
        self:_transition(model, version, "open", "half_open", "open period over")
    end
    -- A probe slot expires if its request never reports back (client gone, worker killed).
    local handed = dict:incr("p|" .. id .. "|" .. gen, 1, 0, conf.probe_ttl or 60)
    if handed and handed <= conf.probes then
        return gen
    end
    return nil, "half_open"
end

-- Record a real upstream outcome. probe: the generation allow() returned, if it was a probe.
function _M:record(model, version, conf, ok, probe)
    local dict, id = self.dict, id_of(model, version)
    local gen = dict:get("g|" .. id)
    if probe then
        if gen ~= probe then
            return  -- that open period is over already
        end
        if ok then
            local successes = dict:incr("s|" .. id .. "|" .. gen, 1, 0, KEEP)
            if successes == conf.probes then
                self:_close(model, version)
            end
        elseif dict:add("r|" .. id .. "|" .. gen, true, KEEP) then
            self:_open(model, version, conf, "half_open", "a probe failed")
        end
        return
    end
    if ok or gen then
        return  -- successes need no bookkeeping; outcomes while open were let in before it opened
    end
    local failures = dict:incr("f|" .. id, 1, 0, conf.window)
    if failures == conf.failures then
        self:_open(model, version, conf, "closed",
            string.format("%d upstream failures within %gs", failures, conf.window))
    end
end

-- Give back a probe slot whose request produced no upstream outcome.
function _M:release_probe(model, version, probe)
    local dict, id = self.dict, id_of(model, version)
    if dict:get("g|" .. id) == probe then
        dict:incr("p|" .. id .. "|" .. probe, -1, 0)
    end
end

return _M
