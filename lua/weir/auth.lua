-- Admin bearer token: from WEIR_ADMIN_TOKEN (read by the master at start) or the token file.
local _M = {}

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

-- mode: "token" or "open"; token: the configured token or nil; header: Authorization value.
-- Returns nil when allowed, else status, message.
function _M.check(mode, token, header)
    if mode == "open" then
        return nil
    end
    if not token then
        return 503, "no admin token is configured: set WEIR_ADMIN_TOKEN or create the token file"
    end
    if type(header) ~= "string" or header == "" then
        return 401, "send the admin token: Authorization: Bearer $WEIR_ADMIN_TOKEN"
    end
    local given = header:match("^[Bb]earer%s+(%S+)%s*$")
    if not given then
        return 401, "the Authorization header must read: Bearer <token>"
    end
    if not _M.equal(given, token) then
        return 403, "wrong admin token"
    end
    return nil
end

-- Reads the token: the environment wins, else the file (trimmed). Returns token or nil.
function _M.load(token_file, read_file)
    local from_env = os.getenv("WEIR_ADMIN_TOKEN")
    if from_env and from_env:match("%S") then
        return (from_env:gsub("^%s+", ""):gsub("%s+$", ""))
    end
    local data = read_file(token_file)
    if data and data:match("%S") then
        return (data:gsub("^%s+", ""):gsub("%s+$", ""))
    end
    return nil
end

return _M
