local weights = require("weir.routing.weights")

describe("weights.pick", function()
    local versions = { "1", "2", "3" }

    it("walks cumulative weights in version order", function()
        local w = { ["1"] = 50, ["2"] = 30, ["3"] = 20 }
        assert.equal("1", weights.pick(versions, w, {}, 0.0))
        assert.equal("1", weights.pick(versions, w, {}, 0.49))
        assert.equal("2", weights.pick(versions, w, {}, 0.5))
        assert.equal("3", weights.pick(versions, w, {}, 0.99))
    end)

    it("gives a skipped version's share to the others in proportion", function()
        local w = { ["1"] = 50, ["2"] = 30, ["3"] = 20 }
        local counts = { ["1"] = 0, ["3"] = 0 }
        for i = 0, 999 do
            local v = weights.pick(versions, w, { ["2"] = true }, i / 1000)
            counts[v] = counts[v] + 1
        end
        assert.equal(715, counts["1"])  -- 50 / 70 of 1000 buckets
        assert.equal(285, counts["3"])
    end)

    it("returns nil when no weight is left", function()
        assert.is_nil(weights.pick(versions, { ["1"] = 100 }, { ["1"] = true }, 0.3))
    end)

    it("reports effective percentages", function()
        local eff = weights.effective(versions, { ["1"] = 90, ["2"] = 10, ["3"] = 0 }, { ["1"] = true })
        assert.same({ ["1"] = 0, ["2"] = 100, ["3"] = 0 }, eff)
    end)
end)
