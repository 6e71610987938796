-- A request marker: an nginx variable that is "" on nearly every request ($weir_probe for the
-- breaker, $weir_fallback for the fallback), with a per-worker count of the requests in flight
-- that carry it. The access and log phases of one request run in the same worker, so while the
-- count is 0 the log phase knows the variable is empty without reading it.
local var = ngx.var

local _M = {}
local mt = { __index = _M }

function _M.new(name)
    return setmetatable({ name = name, marked = 0 }, mt)
end

function _M:set(value)
    if var[self.name] == "" then
        self.marked = self.marked + 1
    end
    var[self.name] = value
end

-- The value ("" when unmarked), left on the request.
function _M:peek()
    if self.marked == 0 then
        return ""
    end
    return var[self.name]
end

-- The value ("" when unmarked), no longer counted: the request is done with it (its log
-- phase), or, with `clear`, it is used up and the variable emptied (a recorded probe).
function _M:take(clear)
    if self.marked == 0 then
        return ""
    end
    local value = var[self.name]
    if value ~= "" then
        self.marked = self.marked - 1
        if clear then
            var[self.name] = ""
        end
    end
    return value
end

return _M
