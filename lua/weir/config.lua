-- The Lua settings of the running revision, rendered by `weir render` as JSON.
--
-- The master loads them at every start and reload (init_by_lua) and publishes the text in the
-- `weir_state` dict. A release whose nginx wiring is unchanged is applied without a reload:
-- the admin API publishes the new text, and every worker picks it up on its next request
-- (sync), provided it was rendered for the same wiring as the worker's own.
local cjson = require("cjson.safe")

local _M = {}

-- SERIAL is shared with the live state (weir.state): one read per request notices either.
local SETTINGS, SERIAL, GENERATION = "settings", "serial", "settings_generation"

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

-- Decoded settings (with version sets), or nil and what is wrong.
function _M.decode(text, origin)
    local decoded, derr = cjson.decode(text or "")
    if type(decoded) ~= "table" or type(decoded.models) ~= "table" then
        return nil, "the Lua settings " .. origin .. " are not valid: " .. tostring(derr)
            .. " (render the release again with `weir apply`)"
    end
    for _, model in pairs(decoded.models) do
        for key, value in pairs(model) do
            if value == cjson.null then  -- JSON null is truthy in Lua: make it nil
                model[key] = nil
            end
        end
        model.bucket_hi_var = "weir_bucket_hi_" .. model.var
        model.bucket_lo_var = "weir_bucket_lo_" .. model.var
        model.version_set = {}
        for _, version in ipairs(model.versions) do
            model.version_set[version] = true
        end
    end
    return decoded
end

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

-- Master, at (re)load: read the file and publish it to the workers.
function _M.load(path, dict)
    local decoded, text = read(path)
    if not decoded then
        return nil, text
    end
    settings, settings_path, wiring = decoded, path, decoded.wiring
    if dict then
        dict:set(SETTINGS, text)
        seen_generation = dict:incr(GENERATION, 1, 0)
        dict:incr(SERIAL, 1, 0)
    end
    return decoded
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
    dict:set(SETTINGS, text)
    dict:incr(GENERATION, 1, 0)
    dict:incr(SERIAL, 1, 0)
    return decoded
end

-- Worker, once per request: adopt newly published settings. serial: the caller's read of
-- the shared serial, if it has one.
function _M.sync(dict, serial)
    serial = serial or dict:get(SERIAL)
    if serial == seen_serial then
        return
    end
    seen_serial = serial
    local generation = dict:get(GENERATION)
    if generation == seen_generation then
        return  -- the live state moved, not the settings
    end
    seen_generation = generation
    local decoded = _M.decode(dict:get(SETTINGS), "published")
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
