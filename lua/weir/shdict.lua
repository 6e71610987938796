-- Shared-dict writes that must not be lost (safety state, the settings text): each one is
-- checked, and one that failed or made room by evicting other keys is a failure. Writes use
-- safe_set/safe_add (they never evict: a full dict answers "no memory"); incr may still
-- evict when it creates its key, which `forcible` reports.
local _M = {}

-- The results of a set/add/incr -> true, or nil and why.
function _M.checked(ok, err, forcible)
    if not ok then
        return nil, err or "the write failed"
    end
    if forcible then
        return nil, "the write evicted other keys"
    end
    return true
end

return _M
