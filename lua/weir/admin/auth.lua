-- Admin bearer token: from WEIR_ADMIN_TOKEN (read by the master at start) or the token file,
-- with the rules of scripts/runtime/token.py's read_token: the environment wins; the file must not
-- be readable by group or others (mode 0600), else the edge refuses to start and says how to
-- fix it. Without a token the edge refuses to start unless the settings say admin_auth "open".
local cjson = require("cjson.safe")
local names = require("weir.names")
local settings = require("weir.settings")

local ngx = ngx

local _M = {}

local token = nil  -- the master's read, inherited by the workers

-- Compare without an early exit, so timing says nothing about how much of a guess was right.
function _M.equal(a, b)
    if type(a) ~= "string" or type(b) ~= "string" or #a ~= #b then
        return false
    end
    local diff = 0
    for i = 1, #a do
        if a:byte(i) ~= b:byte(i) then
            diff = diff + 1
        end
    end
    return diff == 0
end

-- mode: "token" or "open"; expected: the configured token or nil; header: Authorization value.
-- Returns nil when allowed, else status, message.
function _M.check(mode, expected, header)
    if mode == "open" then
        return nil
    end
    if not expected then
        return 503, "no admin token is configured: set WEIR_ADMIN_TOKEN or create the token file"
    end
    if type(header) ~= "string" or header == "" then
        return 401, "send the admin token: Authorization: Bearer $WEIR_ADMIN_TOKEN"
    end
    -- The scheme is case-insensitive (RFC 7235): `bearer` and `BEARER` are both Bearer.
    local scheme, given = header:match("^(%a+)%s+(%S+)%s*$")
    if not scheme or scheme:lower() ~= "bearer" then
        return 401, "the Authorization header must read: Bearer <token>"
    end
    if not _M.equal(given, expected) then
        return 403, "wrong admin token"
    end
    return nil
end

-- The permission bits of `path` (statx through LuaJIT's FFI: nginx's Lua has no stat), or
-- nil, "missing" when there is no such file, or nil and what went wrong.
local STATX_MODE, AT_FDCWD, ENOENT, ENOTDIR = 0x2, -100, 2, 20
local declared = false
function _M.mode_of(path)
    local has_ffi, ffi = pcall(require, "ffi")
    if not has_ffi then
        return nil, "this Lua has no FFI to read file modes"
    end
    if not declared then
        ffi.cdef("int statx(int dirfd, const char *path, int flags, unsigned int mask, void *buf);")
        declared = true
    end
    local buf = ffi.new("uint8_t[256]")  -- struct statx: its layout is the same on every arch
    local ok, rc = pcall(function() return ffi.C.statx(AT_FDCWD, path, 0, STATX_MODE, buf) end)
    if not ok then
        return nil, "statx is not available (" .. tostring(rc) .. ")"
    end
    if rc ~= 0 then
        local errno = ffi.errno()
        if errno == ENOENT or errno == ENOTDIR then
            return nil, "missing"
        end
        return nil, "statx failed, errno " .. errno
    end
    return ffi.cast("uint16_t *", buf + 28)[0] % 512  -- stx_mode, permission bits
end

local function trimmed(text)
    return (text:gsub("^%s+", ""):gsub("%s+$", ""))
end

-- Reads the token: the environment wins, else the file (trimmed). Returns the token or nil
-- (none configured), or raises when the file is readable by others.
function _M.load(token_file, read_file, mode_of)
    local from_env = os.getenv("WEIR_ADMIN_TOKEN")
    if from_env and from_env:match("%S") then
        return trimmed(from_env)
    end
    local mode, merr = (mode_of or _M.mode_of)(token_file)
    if not mode then
        if merr == "missing" then
            return nil
        end
        error("weir: cannot check the admin token file " .. token_file .. " (" .. tostring(merr)
            .. "): set WEIR_ADMIN_TOKEN instead", 0)
    end
    if math.floor(mode / 8) % 8 ~= 0 or mode % 8 ~= 0 then  -- any group or other bit (0o077)
        error(string.format("weir: %s is readable by others (mode %o): run `chmod 600 %s` and "
            .. "retry", token_file, mode, token_file), 0)
    end
    local data = read_file(token_file)
    if data and data:match("%S") then
        return trimmed(data)
    end
    return nil
end

-- init_by_lua, after the settings.
function _M.init()
    local current = settings.get()
    if current.admin_auth == "open" then
        token = nil  -- like `weir apply`, an open admin API never reads the token file
        return
    end
    token = _M.load(current.token_file, settings.read_file)
    if not token then
        error("weir: no admin token configured: set WEIR_ADMIN_TOKEN or write one to "
            .. current.token_file .. " (mode 0600); to run the loopback admin API without "
            .. "a token, set edge.admin_auth: open in the release", 0)
    end
end

-- nil when the request carries the admin token (or auth is open), else status, error body.
function _M.deny()
    settings.sync(ngx.shared[names.DICT.STATE])
    local status, message = _M.check(settings.get().admin_auth, token, ngx.var.http_authorization)
    if not status then
        return nil
    end
    if status == 401 then
        ngx.header["WWW-Authenticate"] = 'Bearer realm="weir-admin"'
    end
    return status, { error = message }
end

-- access_by_lua of the sidecar metrics relayed on the admin listener: the API's token.
function _M.access()
    local status, body = _M.deny()
    if status then
        ngx.status = status
        ngx.header["Content-Type"] = "application/json"
        ngx.print(cjson.encode(body))
        return ngx.exit(status)
    end
    -- Like every admin route, one method: anything else would reach the sidecar (whose
    -- framework answers OPTIONS itself, 200).
    if ngx.req.get_method() ~= "GET" then
        ngx.status = 405
        ngx.header["Content-Type"] = "application/json"
        ngx.header["Allow"] = "GET"
        ngx.print(cjson.encode({ error = "use GET" }))
        return ngx.exit(ngx.HTTP_OK)
    end
end

return _M
