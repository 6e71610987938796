local stub = dofile("tests/lua/ngx_stub.lua")

describe("shadow.mark", function()
    local shadow
    before_each(function()
        stub.install()
        package.loaded["weir.shadow"] = nil
        shadow = require("weir.shadow")
    end)

    local function live(killed)
        return { killed = false, killed_versions = killed or {} }
    end

    it("names the shadow version on every request when the sample is 100%", function()
        shadow.mark({ shadow = { version = "3", sample = 1 } }, "1", live())
        assert.equal("3", ngx.var.weir_shadow)
    end)

    it("leaves a model without a shadow alone", function()
        shadow.mark({ shadow = false }, "1", live())
        assert.is_nil(ngx.var.weir_shadow)
    end)

    it("never copies the shadow version's own requests to itself", function()
        shadow.mark({ shadow = { version = "3", sample = 1 } }, "3", live())
        assert.is_nil(ngx.var.weir_shadow)
    end)

    it("sends nothing to a killed shadow version", function()
        shadow.mark({ shadow = { version = "3", sample = 1 } }, "1", live({ ["3"] = true }))
        assert.is_nil(ngx.var.weir_shadow)
    end)

    it("marks about the sampled share", function()
        math.randomseed(7)
        local marked = 0
        for _ = 1, 10000 do
            ngx.var.weir_shadow = nil
            shadow.mark({ shadow = { version = "3", sample = 0.1 } }, "1", live())
            if ngx.var.weir_shadow then
                marked = marked + 1
            end
        end
        assert.is_true(marked > 850 and marked < 1150, tostring(marked))
    end)
end)
