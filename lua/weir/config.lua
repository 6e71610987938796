-- The Lua settings of the running revision, rendered by `weir render` as JSON and loaded once
-- per configuration load (init_by_lua, in the master: workers inherit it on fork).
local cjson = require("cjson.safe")

local _M = {}

local settings = nil

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

-- Returns the decoded settings, or nil and a message saying what to do.
function _M.load(path)
    local data, err = read_file(path)
    if not data then
        return nil, "cannot read the Lua settings " .. path .. ": " .. tostring(err)
            .. " (render the release again with `weir apply`)"
    end
    local decoded, derr = cjson.decode(data)
    if type(decoded) ~= "table" or type(decoded.models) ~= "table" then
        return nil, "the Lua settings " .. path .. " are not valid: " .. tostring(derr)
    end
    for _, model in pairs(decoded.models) do
        model.version_set = {}
        for _, version in ipairs(model.versions) do
            model.version_set[version] = true
        end
    end
    settings = decoded
    return decoded
end

function _M.set(value)
    settings = value
end

function _M.get()
    return settings
end

function _M.model(name)
    return settings and settings.models[name]
end

return _M
