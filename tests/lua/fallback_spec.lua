local stub = dofile("tests/lua/ngx_stub.lua")
stub.install()

describe("fallback.decide", function()
    local fallback = require("weir.fallback")
    local usable = function() return true end
    it("routes to the fallback version when it can answer", function()
        local d = fallback.decide({ fallback = { version = "1" } }, "m", "killed", "2", usable)
        assert.same({ version = "1" }, d)
    end)
    it("answers with a V2 error when the fallback version is the one that failed", function()
        local d = fallback.decide({ fallback = { version = "1" } }, "m", "upstream-error", "1", usable)
        assert.equal(503, d.status)
        assert.truthy(d.body:find("failed to answer", 1, true))
    end)
    it("answers with the placeholder", function()
        local d = fallback.decide({ fallback = { status = 200, body = "{}" } }, "m", "killed", "1", usable)
        assert.same({ status = 200, body = "{}" }, d)
    end)
end)

describe("fallback.count_server_failure", function()
    local fallback = require("weir.fallback")
    local metrics = require("weir.metrics")
    local outcome = require("weir.outcome")
    local counted
    before_each(function()
        counted = {}
        metrics.server_failure = function(model, version, status)
            counted[#counted + 1] = model .. "/" .. version .. "/" .. status
        end
    end)

    it("counts the server's failure under the version that failed", function()
        fallback.count_server_failure("m", "3", 500, outcome.FAILED)
        assert.same({ "m/3/500" }, counted)
    end)

    it("counts nothing that is not the server's failure, or has no version", function()
        fallback.count_server_failure("m", "3", 500, nil)  -- unmarked 500: a client may cause it
        fallback.count_server_failure("m", "", 502, outcome.FAILED)
        fallback.count_server_failure("m", "3", nil, nil)
        assert.same({}, counted)
    end)
end)

