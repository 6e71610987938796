-- Version choice: pinned URL version > force header > live override > the release's split.
-- A killed version's share goes to the other versions, in proportion to their weights.
-- The split is sticky: `req.bucket(model, req)` is a stable number in [0, 1) for the
-- request's sticky key (split_clients' bucket): one user meets one version while the weights
-- stay the same. (A function, not a value: pinned and forced requests never compute it.)
local weights = require("weir.routing.weights")

local _M = {}

local EVEN = setmetatable({}, { __index = function() return 1 end })

-- A version the request names (URL or force header): only versions of the release exist.
local function named(model, version, how)
    if not model.version_set[version] then
        return nil, "unknown_version", version
    end
    return version, how
end

-- model: the model's settings; req: {pinned, forced, bucket}; live: the state snapshot entry of
-- the model ({killed_versions = {}, split = weights or nil}).
-- Returns version, how — or nil, reason ("unknown_version" | "killed"), the bad version.
function _M.version(model, req, live)
    local pinned = req.pinned
    if pinned and pinned ~= "" then
        return named(model, pinned, "pinned")
    end
    local forced = req.forced
    if forced and forced ~= "" then
        return named(model, forced, "forced")
    end
    local split, how = model.weights, "split"
    if live.split then
        split, how = live.split, "override"
    end
    local killed = live.killed_versions
    local bucket = req.bucket(model, req)
    local version = weights.pick(model.versions, split, killed, bucket)
        -- every version with weight is killed: share evenly among the rest
        or weights.pick(model.versions, EVEN, killed, bucket)
    if version then
        return version, how
    end
    return nil, "killed"
end

return _M
