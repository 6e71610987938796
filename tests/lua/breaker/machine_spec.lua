local stub = dofile("tests/lua/ngx_stub.lua")

describe("breaker", function()
    local breaker, b, set_time, transitions
    local conf = { failures = 3, window = 10, open_for = 5, max_open_for = 12, probes = 2 }

    before_each(function()
        local clock
        set_time, clock = stub.install()
        package.loaded["weir.breaker.machine"] = nil
        breaker = require("weir.breaker.machine")
        transitions = {}
        b = breaker.new(stub.dict(clock), clock, function(_, _, from, to)
            transitions[#transitions + 1] = from .. ">" .. to
        end)
    end)

    local function fail(n)
        for _ = 1, n do
            b:record("m", "1", conf, false)
        end
    end

    it("opens after `failures` failures within the window", function()
        fail(2)
        assert.equal("closed", b:state("m", "1"))
        fail(1)
        assert.equal("open", b:state("m", "1"))
        assert.is_nil(b:allow("m", "1", conf))
        assert.same({ "closed>open" }, transitions)
    end)

    it("forgets failures older than the window", function()
        fail(2)
        set_time(1011)
        fail(2)
        assert.equal("closed", b:state("m", "1"))
    end)

    it("ignores successes and outcomes while open", function()
        fail(3)
        fail(10)
        b:record("m", "1", conf, true)
        assert.same({ "closed>open" }, transitions)
    end)

    it("lets `probes` probes through half-open and closes when they succeed", function()
        fail(3)
        set_time(1005)
        local p1 = b:allow("m", "1", conf)
        local p2 = b:allow("m", "1", conf)
        assert.is_number(p1)
        assert.is_nil(b:allow("m", "1", conf))  -- no third probe
        b:record("m", "1", conf, true, p1)
        assert.equal("half_open", b:state("m", "1"))
        b:record("m", "1", conf, true, p2)
        assert.equal("closed", b:state("m", "1"))
        assert.is_true(b:allow("m", "1", conf))
        assert.same({ "closed>open", "open>half_open", "half_open>closed" }, transitions)
    end)

    it("re-opens on a failed probe, doubling the open time up to the cap", function()
        fail(3)
        set_time(1005)
        b:record("m", "1", conf, false, b:allow("m", "1", conf))
        local state, ends = b:state("m", "1")
        assert.equal("open", state)
        assert.equal(1015, ends)  -- 2 x 5s
        set_time(1015)
        b:record("m", "1", conf, false, b:allow("m", "1", conf))
        assert.equal(1027, select(2, b:state("m", "1")))  -- 20s capped at 12s
    end)

    it("gives back a probe slot that produced no outcome", function()
        fail(3)
        set_time(1005)
        local p1 = b:allow("m", "1", conf)
        b:allow("m", "1", conf)
        b:release_probe("m", "1", p1)
        assert.is_number(b:allow("m", "1", conf))
    end)

    it("skips the shared dict while closed, and notices an open breaker once the serial moves",
        function()
            assert.is_true(b:allow_cached("m", "1", conf, 1))
            fail(3)
            assert.is_true(b:allow_cached("m", "1", conf, 1))  -- serial not bumped yet
            assert.is_nil(b:allow_cached("m", "1", conf, 2))
            assert.is_true(b:allow_cached("m", "2", conf, 2))
        end)

    it("keeps versions apart", function()
        fail(3)
        assert.is_true(b:allow("m", "2", conf))
        assert.is_true(b:allow("other", "1", conf))
    end)
end)
