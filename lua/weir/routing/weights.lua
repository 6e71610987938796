-- Weighted, sticky choice among versions: the same key always lands in the same bucket.
local _M = {}

-- The weight of the versions not skipped.
local function total_of(versions, weights, skip)
    local total = 0
    for _, version in ipairs(versions) do
        if not skip[version] then
            total = total + (tonumber(weights[version]) or 0)
        end
    end
    return total
end

-- versions: ordered list; weights: version -> weight (any scale); skip: version -> true.
-- bucket: a number in [0, 1). Returns a version, or nil when no weight is left.
function _M.pick(versions, weights, skip, bucket)
    local total = total_of(versions, weights, skip)
    if total <= 0 then
        return nil
    end
    local target = bucket * total
    local acc, last = 0, nil
    for _, version in ipairs(versions) do
        local weight = tonumber(weights[version]) or 0
        if not skip[version] and weight > 0 then
            acc = acc + weight
            last = version
            if target < acc then
                return version
            end
        end
    end
    return last
end

-- Weights as percentages of what is left after skipping (for status pages).
function _M.effective(versions, weights, skip)
    local total = total_of(versions, weights, skip)
    local out = {}
    for _, version in ipairs(versions) do
        local weight = tonumber(weights[version]) or 0
        if skip[version] or total <= 0 then
            out[version] = 0
        else
            out[version] = math.floor(weight / total * 10000 + 0.5) / 100
        end
    end
    return out
end

return _M
