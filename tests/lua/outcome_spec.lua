local stub = dofile("tests/lua/ngx_stub.lua")
stub.install()

describe("outcome", function()
    local outcome = require("weir.outcome")
    it("reads the last attempt", function()
        assert.equal(200, outcome.last_status("502, 200"))
        assert.equal(504, outcome.last_status("200 : 504"))
        assert.is_nil(outcome.last_status(""))
        assert.equal(0.25, outcome.last_seconds("1.000, 0.250"))
    end)

    it("counts only the server's failures: marked answers, nginx's own 502 and 504", function()
        local F, S = outcome.FAILED, outcome.SUCCEEDED
        assert.equal(F, outcome.verdict(500, "server"))
        assert.equal(F, outcome.verdict(503, "server"))
        assert.equal(F, outcome.verdict(502, nil))  -- connect error, reset
        assert.equal(F, outcome.verdict(504, nil))  -- timeout
        assert.is_nil(outcome.verdict(500, nil))    -- unmarked: maybe the client's doing
        assert.is_nil(outcome.verdict(503, nil))
        assert.is_nil(outcome.verdict(500, "client"))
        assert.is_nil(outcome.verdict(400, nil))    -- the client's mistake: neither
        assert.is_nil(outcome.verdict(404, nil))
        assert.equal(S, outcome.verdict(200, nil))
    end)

    it("reads the marker only for a 5xx", function()
        ngx.var.upstream_http_x_weir_failure = "server"
        assert.equal(outcome.FAILED, outcome.request_verdict(500))
        assert.is_nil(outcome.request_verdict(400))
        assert.is_nil(outcome.request_verdict(nil))
        ngx.var.upstream_http_x_weir_failure = nil
        assert.is_nil(outcome.request_verdict(500))
    end)
end)
