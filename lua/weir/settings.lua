-- The Lua settings of the running revision: settings.json, rendered by `weir render/apply`.
-- Twin: scripts/edge/lua_settings.py, class LuaSettings (the pydantic model that writes them,
-- and the JSON schema generated from it). FIELDS below declares every field Lua reads, with its
-- type; tests/unit/edge/test_lua_settings.py checks it against that schema and a rendered file.
--
-- The master loads them at every start and reload (init) and publishes the text in the
-- weir_state dict. A release whose nginx wiring is unchanged is applied without a reload:
-- the admin API publishes the new text, and every worker picks it up on its next request
-- (sync), provided it was rendered for the same wiring as the worker's own. (A little over 200
-- lines: the field declaration and its checker belong with the settings they guard.)
local cjson = require("cjson.safe")
local names = require("weir.names")
local shdict = require("weir.shdict")

local KEY = names.KEY

local _M = {}

-- Types: "string" | "number" | "integer"; a trailing "?" allows absent or null. Tables:
-- {fields = {...}} an object with these fields, {map = T} an object of T, {list = T} an array.
local BREAKER = { fields = {
    failures = "integer", window = "number", open_for = "number", max_open_for = "number",
    probes = "integer", probe_ttl = "number",
} }
local FALLBACK = { fields = { version = "string?", status = "integer?", body = "string?" } }
local MODEL = { fields = {
    versions = { list = "string" },
    upstreams = { map = "string" },
    weights = { map = "number" },
    force_var = "string?",
    bucket_hi_var = "string",
    bucket_lo_var = "string",
    fallback = FALLBACK,
    breaker = BREAKER,
    retry_after = "integer",
    shadow_version = "string?",
    shadow_sample = "number?",
} }
_M.FIELDS = { fields = {
    revision = "integer",
    checksum = "string",
    wiring = "string",
    buckets = "integer",
    low_buckets = "integer",
    admin_auth = "string",
    token_file = "string",
    state_file = "string",
    models = { map = MODEL },
} }

local function is_a(kind, value)
    if kind == "integer" then
        return type(value) == "number" and value == math.floor(value)
    end
    return type(value) == kind
end

-- An object of checked settings holds only the keys FIELDS declares, and refuses reads of any
-- other (a typo, a field Python renders for others): nil there would silently mean "absent".
-- A declared optional field that is absent reads nil. __index runs only for keys absent from
-- the table, so reads of present fields (the hot path) never reach it; pairs, next and
-- cjson.encode ignore it.
local function strict(declared, path)
    return { __index = function(_, key)
        if declared[key] == nil then
            error("weir settings: " .. path .. "." .. tostring(key) .. " is not a field Lua "
                .. "declares (FIELDS in lua/weir/settings.lua): a typo, or declare it there "
                .. "and in scripts/edge/lua_settings.py", 2)
        end
        return nil
    end }
end

-- Checks `value` against `spec`, turning JSON nulls of optional fields into nil and making
-- every object strict (above). Returns true, or nil and the path of the first wrong field with
-- what was wrong.
local function check(spec, value, path)
    if type(spec) == "string" then
        local kind, optional = spec:match("^(%a+)(%??)$")
        if value == nil or value == cjson.null then
            if optional == "?" then
                return true
            end
            return nil, path .. " is missing"
        end
        if not is_a(kind, value) then
            return nil, path .. " must be a " .. kind .. ", not " .. type(value)
        end
        return true
    end
    if type(value) ~= "table" then
        return nil, path .. " must be an object or array, not " .. type(value)
    end
    if spec.fields then
        for key, sub in pairs(spec.fields) do
            local ok, err = check(sub, value[key], path .. "." .. key)
            if not ok then
                return nil, err
            end
            if value[key] == cjson.null then  -- JSON null is truthy in Lua: make it nil
                value[key] = nil
            end
        end
        for key in pairs(value) do  -- rendered for others (admin_listen): Lua reads none
            if spec.fields[key] == nil then
                value[key] = nil
            end
        end
        setmetatable(value, strict(spec.fields, path))
        return true
    end
    local each = spec.map or spec.list
    for key, item in pairs(value) do
        local ok, err = check(each, item, path .. "." .. tostring(key))
        if not ok then
            return nil, err
        end
    end
    return true
end

-- Decoded and checked settings (with version sets), or nil and what is wrong.
function _M.decode(text, origin)
    local decoded, derr = cjson.decode(text or "")
    if type(decoded) ~= "table" then
        return nil, "the Lua settings " .. origin .. " are not valid JSON: " .. tostring(derr)
            .. " (render the release again with `weir apply`)"
    end
    local ok, err = check(_M.FIELDS, decoded, "settings")
    if not ok then
        return nil, "the Lua settings " .. origin .. " do not fit this edge's Lua: " .. err
            .. " (render the release again with the same Weir as the running edge)"
    end
    for _, model in pairs(decoded.models) do
        model.version_set = {}  -- derived here, not read from the file
        -- Derived too: one read of a present key per request (an absent one costs a call).
        model.shadow = model.shadow_version
            and { version = model.shadow_version, sample = model.shadow_sample } or false
        for _, version in ipairs(model.versions) do
            model.version_set[version] = true
        end
    end
    return decoded
end

local settings = nil
local settings_path = nil
local wiring = nil       -- the wiring hash of the nginx.conf this process was started with
local seen_serial, seen_generation = -1, -1

local function read_file(path)
    local handle, err = io.open(path, "rb")
    if not handle then
        return nil, err
    end
    local data = handle:read("*a")
    handle:close()
    return data
end
_M.read_file = read_file

local function read(path)
    local text, err = read_file(path)
    if not text then
        return nil, "cannot read the Lua settings " .. path .. ": " .. tostring(err)
    end
    local decoded, derr = _M.decode(text, path)
    if not decoded then
        return nil, derr
    end
    return decoded, text
end

-- Publish a settings text to the workers, double-buffered: the new text goes in beside the
-- live one (safe_set: it never evicts), and only once it is in does the generation move to it
-- and the old one go. A text that does not fit is refused with nothing changed (a plain set
-- would free the live text first, then evict kill switches' neighbours to make room).
-- Returns the new generation, or nil and why.
local function announce(dict, text)
    local previous = dict:get(KEY.GENERATION) or 0
    local generation = previous + 1
    local ok, err = shdict.checked(dict:safe_set(KEY.SETTINGS .. generation, text))
    if ok then
        ok, err = shdict.checked(dict:safe_set(KEY.GENERATION, generation))
        if not ok then
            dict:delete(KEY.SETTINGS .. generation)
        end
    end
    if not ok then
        return nil, "the Lua settings (" .. #text .. " bytes) do not fit the "
            .. names.DICT.STATE .. " shared dict (" .. tostring(err) .. "): nothing changed; "
            .. "make the release smaller (its fallback bodies, YAML aliases)"
    end
    dict:delete(KEY.SETTINGS .. previous)
    dict:delete("settings")  -- the single text of an edge before double-buffering (a reload)
    dict:incr(KEY.SERIAL, 1, 0)
    return generation
end

-- Master, at (re)load: read the file and publish it to the workers.
function _M.load(path, dict)
    local decoded, text = read(path)
    if not decoded then
        return nil, text
    end
    if dict then
        local generation, err = announce(dict, text)
        if not generation then
            return nil, err
        end
        seen_generation = generation
    end
    settings, settings_path, wiring = decoded, path, decoded.wiring
    return decoded
end

-- init_by_lua: nginx refuses to start on settings it cannot use.
function _M.init(path)
    assert(_M.load(path, ngx.shared[names.DICT.STATE]))
end

-- Admin API: re-read the file and publish it, if it fits this nginx.conf's wiring.
function _M.publish(dict)
    local decoded, text = read(settings_path)
    if not decoded then
        return nil, text
    end
    if decoded.wiring ~= wiring then
        return nil, "the new revision changes nginx wiring: it needs a reload (HUP), "
            .. "which `weir apply` does"
    end
    local generation, err = announce(dict, text)
    if not generation then
        return nil, err
    end
    return decoded
end

-- Worker, once per request: adopt newly published settings. serial: the caller's read of
-- the shared serial, if it has one.
function _M.sync(dict, serial)
    serial = serial or dict:get(KEY.SERIAL)
    if serial == seen_serial then
        return
    end
    seen_serial = serial
    local generation = dict:get(KEY.GENERATION)
    if generation == seen_generation then
        return  -- the live state moved, not the settings
    end
    seen_generation = generation
    local decoded = _M.decode(dict:get(KEY.SETTINGS .. tostring(generation)), "published")
    -- An old worker finishing its last requests after a reload keeps its own settings.
    if decoded and decoded.wiring == wiring then
        settings = decoded
    end
end

function _M.set(value)
    settings, wiring = value, value and value.wiring
end

function _M.get()
    return settings
end

function _M.model(name)
    return settings and settings.models[name]
end

return _M
