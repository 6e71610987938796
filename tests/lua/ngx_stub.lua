-- A small stand-in for the ngx API the modules touch when loaded or called from a spec: shared
-- dicts, a clock, logging, variables (a plain table) and what answering writes.
local stub = {}

local Dict = {}
Dict.__index = Dict

-- capacity: the most bytes of string values it holds (nil: unbounded); a write past it fails
-- with "no memory" and, like safe_set, evicts nothing.
function stub.dict(clock, capacity)
    return setmetatable({ data = {}, expires = {}, clock = clock, capacity = capacity }, Dict)
end

function Dict:_used(except)
    local used = 0
    for key, value in pairs(self.data) do
        if key ~= except and type(value) == "string" then
            used = used + #value
        end
    end
    return used
end

function Dict:_alive(key)
    local exp = self.expires[key]
    if exp and exp <= self.clock() then
        self.data[key], self.expires[key] = nil, nil
    end
    return self.data[key]
end

function Dict:get(key)
    return self:_alive(key)
end

function Dict:set(key, value, ttl)
    self.data[key] = value
    self.expires[key] = (ttl and ttl > 0) and self.clock() + ttl or nil
    return true
end

-- add and safe_add: set (or safe_set) unless the key is there.
local function adder(store)
    return function(self, key, value, ttl)
        if self:_alive(key) ~= nil then
            return false, "exists"
        end
        return self[store](self, key, value, ttl)
    end
end
Dict.add = adder("set")
Dict.safe_add = adder("safe_set")

function Dict:safe_set(key, value, ttl)
    if self.capacity and type(value) == "string"
            and self:_used(key) + #value > self.capacity then
        return nil, "no memory"
    end
    return self:set(key, value, ttl)
end

function Dict:incr(key, by, init, init_ttl)
    local value = self:_alive(key)
    if value == nil then
        if init == nil then
            return nil, "not found"
        end
        self:set(key, init, init_ttl)
        value = init
    end
    self.data[key] = value + by
    return self.data[key]
end

function Dict:delete(key)
    self.data[key], self.expires[key] = nil, nil
end

function Dict:get_keys()
    local keys = {}
    for key in pairs(self.data) do
        if self:_alive(key) ~= nil then
            keys[#keys + 1] = key
        end
    end
    table.sort(keys)
    return keys
end

-- Installs a global `ngx` with a controllable clock; returns the clock setter.
function stub.install()
    local now = 1000
    local clock = function() return now end
    _G.ngx = {
        now = clock,
        log = function() end,
        sleep = function() end,
        worker = { pid = function() return 4242 end },
        WARN = 4,
        ERR = 3,
        HTTP_OK = 200,
        shared = { weir_state = stub.dict(clock), weir_overrides = stub.dict(clock),
            weir_breaker = stub.dict(clock), weir_metrics = stub.dict(clock),
            weir_health = stub.dict(clock) },
        var = {},
        header = {},
        print = function() end,
        exit = function() end,
        crc32_long = function() return 0 end,
    }
    return function(value) now = value end, clock
end

return stub
