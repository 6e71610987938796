-- Live overrides set through the admin API: kill switches (a model, or one version) and split
-- overrides (live weights). They live in their own shared dict, weir_overrides (shared by all
-- workers, kept across reloads; nothing else writes there, so nothing competes for its room),
-- every write checked (shdict) and undone if the change cannot be completed; persisted to the
-- state file (save, after each change), read back when nginx starts with an empty dict (init):
-- neither a restart nor a failed apply silently revives a killed model. (About 250 lines: the
-- dict's writes, their undo and the state file they are persisted to share one key scheme and
-- one lock; the state file is the candidate to split out should it grow.)
local cjson = require("cjson.safe")
local names = require("weir.names")
local settings = require("weir.settings")
local shdict = require("weir.shdict")

local _M = {}

local KEY = names.KEY
local SERIAL = KEY.SERIAL  -- bumped on every change; workers rebuild their snapshot when it moves

local dict = ngx.shared[names.DICT.OVERRIDES]
local state = ngx.shared[names.DICT.STATE]  -- the serial every worker reads per request
local cached_serial, cached = -1, nil

function _M.set_dict(value, state_dict)  -- for tests
    dict, state = value, state_dict or value
    cached_serial, cached = -1, nil
end

local function kill_key(model, version)
    if version then
        return KEY.KILL .. model .. "|" .. version
    end
    return KEY.KILL .. model
end

local function entry(models, name)
    local m = models[name]
    if not m then
        m = { killed = false, killed_versions = {}, split = nil }
        models[name] = m
    end
    return m
end

local function rebuild(serial)
    local models = {}
    for _, key in ipairs(dict:get_keys(0)) do
        local kind, model, version = key:match("^(%a+|)([^|]+)|?([^|]*)$")
        if kind == KEY.KILL then
            if version ~= "" then
                entry(models, model).killed_versions[version] = true
            else
                entry(models, model).killed = true
            end
        elseif kind == KEY.SPLIT then
            entry(models, model).split = cjson.decode(dict:get(key) or "null")
        end
    end
    cached_serial, cached = serial, { models = models }
    return cached
end

-- The whole live state as one table, rebuilt only when the serial changed.
-- {models = {name = {killed = bool, killed_versions = {v = true}, split = {v = w} | nil}}}
-- serial: the caller's read of the shared serial, if it has one.
function _M.snapshot(serial)
    serial = serial or state:get(SERIAL) or 0
    if serial == cached_serial and cached then
        return cached
    end
    return rebuild(serial)
end

local EMPTY = { killed = false, killed_versions = {}, split = nil }

function _M.model(name, serial)
    return _M.snapshot(serial).models[name] or EMPTY
end

function _M.serial()
    return state:get(SERIAL) or 0
end

local function changed()
    return shdict.checked(state:incr(SERIAL, 1, 0))
end

local function put(key, value)
    if value == nil then
        dict:delete(key)
        return true
    end
    return shdict.checked(dict:safe_set(key, value))
end

-- Write one key (value nil: delete it) and tell the workers. Returns a function that undoes
-- the change, or nil and why nothing changed (a failed write is undone at once).
local function write(key, value)
    local previous = dict:get(key)
    local ok, err = put(key, value)
    if ok then
        ok, err = changed()
        if not ok then
            put(key, previous)
        end
    end
    if not ok then
        return nil, "the " .. names.DICT.OVERRIDES .. " shared dict refused " .. key .. " ("
            .. tostring(err) .. ")"
    end
    return function()
        local undone, uerr = put(key, previous)
        changed()
        if not undone then
            ngx.log(ngx.ERR, "weir: could not undo the live change of ", key, ": ", uerr)
        end
        return undone
    end
end

-- Each change returns an undo function, or nil and why nothing changed.
function _M.kill(model, version)
    return write(kill_key(model, version), true)
end

function _M.revive(model, version)
    return write(kill_key(model, version), nil)
end

function _M.set_split(model, split)
    return write(KEY.SPLIT .. model, split and cjson.encode(split) or nil)
end

-- Persistence -------------------------------------------------------------------------------

function _M.encode()
    local out = { killed_models = {}, killed_versions = {}, splits = {} }
    for name, m in pairs(_M.snapshot().models) do
        if m.killed then
            out.killed_models[#out.killed_models + 1] = name
        end
        for version in pairs(m.killed_versions) do
            out.killed_versions[#out.killed_versions + 1] = name .. "/" .. version
        end
        if m.split then
            out.splits[name] = m.split
        end
    end
    table.sort(out.killed_models)
    table.sort(out.killed_versions)
    return cjson.encode(out)
end

local SAVE_LOCK = KEY.SAVE_LOCK
local LOCK_HOLD = 5       -- seconds: a worker that died holding the lock frees it after this
local LOCK_WAIT = 3       -- seconds a save waits for another worker's save before giving up

local function write_file(path, tmp)
    local handle, err = io.open(tmp, "wb")
    if not handle then
        return nil, err
    end
    -- A full disk may fail only when the buffer is flushed or the file closed: check every
    -- step, or an empty file would be renamed over the state and lose the kills on restart.
    local ok, werr = handle:write(_M.encode(), "\n")
    if ok then
        ok, werr = handle:flush()
    end
    local closed, cerr = handle:close()
    if ok and not closed then
        ok, werr = nil, cerr
    end
    if not ok then
        os.remove(tmp)
        return nil, werr
    end
    local renamed, rerr = os.rename(tmp, path)
    if not renamed then
        os.remove(tmp)
        return nil, rerr
    end
    return true
end

-- Write the state file atomically (a crash never leaves half a file). Every worker saves after
-- its own changes: each writes its own tmp file, and a shared-dict lock around
-- snapshot + write + rename makes the saves take turns, so the last one to rename took its
-- snapshot after every change before it (a stale snapshot never overwrites a newer one).
-- path: the settings' state file by default.
function _M.save(path)
    path = path or settings.get().state_file
    local deadline = ngx.now() + LOCK_WAIT
    while true do
        local locked, lerr = dict:safe_add(SAVE_LOCK, true, LOCK_HOLD)
        if locked then
            break
        end
        if lerr ~= "exists" then
            return nil, "cannot take the state file's lock: " .. tostring(lerr)
        end
        if ngx.now() >= deadline then
            return nil, "another worker's save of the state file held its lock for "
                .. LOCK_WAIT .. "s"
        end
        ngx.sleep(0.002)
    end
    local ok, err = write_file(path, path .. "." .. ngx.worker.pid() .. ".tmp")
    dict:delete(SAVE_LOCK)
    return ok, err
end

-- Fill the dict from the state file unless this dict already holds state (a reload).
function _M.load_once(path, read_file)
    local fresh, ferr = dict:safe_add(KEY.LOADED, true)
    if not fresh then
        if ferr == "exists" then
            return true, "kept"
        end
        return nil, "cannot mark the " .. names.DICT.OVERRIDES .. " dict loaded: " .. ferr
    end
    local data = read_file(path)
    if not data then
        return true, "none"
    end
    local decoded = cjson.decode(data)
    if type(decoded) ~= "table" then
        return nil, "the state file " .. path .. " is not valid JSON: fix or delete it"
    end
    local ok, err = true, nil
    local function load(key, value)
        if ok then
            ok, err = put(key, value)
        end
    end
    for _, name in ipairs(decoded.killed_models or {}) do
        load(kill_key(name), true)
    end
    for _, pair in ipairs(decoded.killed_versions or {}) do
        local name, version = pair:match("^([^/]+)/(.+)$")
        if name then
            load(kill_key(name, version), true)
        end
    end
    for name, split in pairs(decoded.splits or {}) do
        load(KEY.SPLIT .. name, cjson.encode(split))
    end
    if ok then
        ok, err = changed()
    end
    if not ok then
        return nil, "the state file " .. path .. " does not fit the " .. names.DICT.OVERRIDES
            .. " shared dict (" .. tostring(err) .. "): nginx would serve without its kill "
            .. "switches, so it does not start"
    end
    return true, "loaded"
end

-- init_by_lua, after the settings: nginx refuses to start on a state file it cannot read.
function _M.init()
    assert(_M.load_once(settings.get().state_file, settings.read_file))
end

return _M
