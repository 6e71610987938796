-- Version choice: pinned URL version > force header > live override > split_clients result.
-- A killed version's share goes to the other versions, in proportion to their weights.
local weights = require("weir.weights")

local _M = {}

local EVEN = setmetatable({}, { __index = function() return 1 end })

-- model: the model's settings; req: {pinned, forced, split, bucket}; live: state snapshot
-- entry for the model ({killed_versions = {}, split = weights or nil}).
-- Returns version, how — or nil, reason ("unknown_version" | "killed").
function _M.version(model, req, live)
    local killed = live.killed_versions
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
    if live.split then
        local version = weights.pick(model.versions, live.split, killed, req.bucket())
        if version then
            return version, "override"
        end
        return nil, "killed"
    end
    local split = req.split
    if split and split ~= "" and not killed[split] then
        return split, "split"
    end
    local bucket = req.bucket()
    local version = weights.pick(model.versions, model.weights, killed, bucket)
        -- every version with weight is killed: share evenly among the rest
        or weights.pick(model.versions, EVEN, killed, bucket)
    if version then
        return version, "redistributed"
    end
    return nil, "killed"
end

return _M
