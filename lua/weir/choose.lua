-- Version choice: pinned URL version > force header > live override > the release's split.
-- A killed version's share goes to the other versions, in proportion to their weights.
-- The split is sticky: `req.bucket(model, req)` is a stable number in [0, 1) for the
-- request's sticky key (split_clients' bucket): one user meets one version while the weights
-- stay the same. (A function, not a value: pinned and forced requests never compute it.)
local weights = require("weir.weights")

local _M = {}

local EVEN = setmetatable({}, { __index = function() return 1 end })

-- model: the model's settings; req: {pinned, forced, bucket}; live: the state snapshot entry of
-- the model ({killed_versions = {}, split = weights or nil}).
-- Returns version, how — or nil, reason ("unknown_version" | "killed"), the bad version.
function _M.version(model, req, live)
    local pinned = req.pinned
    if pinned and pinned ~= "" then
        if not model.version_set[pinned] then
            return nil, "unknown_version", pinned
        end
        return pinned, "pinned"
    end
    local forced = req.forced
    if forced and forced ~= "" then
        if not model.version_set[forced] then
            return nil, "unknown_version", forced
        end
        return forced, "forced"
    end
    local killed = live.killed_versions
    local bucket = req.bucket(model, req)
    if live.split then
        local version = weights.pick(model.versions, live.split, killed, bucket)
            -- every version the override weights is killed: share evenly among the rest
            or weights.pick(model.versions, EVEN, killed, bucket)
        if version then
            return version, "override"
        end
        return nil, "killed"
    end
    local version = weights.pick(model.versions, model.weights, killed, bucket)
        -- every version with weight is killed: share evenly among the rest
        or weights.pick(model.versions, EVEN, killed, bucket)
    if version then
        return version, "split"
    end
    return nil, "killed"
end

return _M
