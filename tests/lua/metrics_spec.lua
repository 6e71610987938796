local stub = dofile("tests/lua/ngx_stub.lua")
stub.install()

describe("metrics.render", function()
    local metrics = require("weir.metrics")
    it("renders counters and a cumulative histogram", function()
        metrics.set_dict(stub.dict(function() return 0 end))
        metrics.request("digits", "1", 200)
        metrics.request("digits", "", 503)
        metrics.upstream_seconds("digits", "1", 0.003)
        metrics.upstream_seconds("digits", "1", 0.3)
        metrics.flush()
        local text = metrics.render()
        local function has(line)
            assert.truthy(text:find(line, 1, true), line)
        end
        has('weir_edge_requests_total{model="digits",version="1",status="200"} 1')
        has('weir_edge_requests_total{model="digits",version="",status="503"} 1')
        has('le="0.005"} 1')
        has('le="+Inf"} 2')
        has('weir_edge_upstream_response_seconds_count{model="digits",version="1"} 2')
    end)

    it("exports known label sets at 0, once each, beside what was counted", function()
        metrics.set_dict(stub.dict(function() return 0 end))
        metrics.transition("digits", "1", "closed", "open")
        local text = metrics.render(nil, { bt = {
            { "digits", "1", "closed", "open" }, { "digits", "1", "open", "half_open" },
        }, rl = { { "digits" } } })
        local opened = 'weir_edge_breaker_transitions_total{model="digits",version="1",'
            .. 'from="closed",to="open"} 1'
        assert.truthy(text:find(opened, 1, true), text)
        assert.is_nil(text:find('to="open"} 0', 1, true), text)
        assert.truthy(text:find('from="open",to="half_open"} 0', 1, true), text)
        assert.truthy(text:find('weir_edge_rate_limited_total{model="digits"} 0', 1, true), text)
    end)

    it("counts a version's server failures under that version and status", function()
        metrics.set_dict(stub.dict(function() return 0 end))
        metrics.server_failure("digits", "3", 500)
        metrics.server_failure("digits", "3", 500)
        metrics.server_failure("digits", "3", 504)
        metrics.flush()
        local text = metrics.render()
        assert.truthy(text:find('weir_edge_server_failures_total{model="digits",version="3",'
            .. 'status="500"} 2', 1, true), text)
        assert.truthy(text:find('version="3",status="504"} 1', 1, true), text)
    end)
end)
