local choose = require("weir.routing.choose")

local model = {
    versions = { "1", "2" },
    version_set = { ["1"] = true, ["2"] = true },
    weights = { ["1"] = 90, ["2"] = 10 },
}
local function live(killed, split)
    return { killed = false, killed_versions = killed or {}, split = split }
end
local function req(t)
    local bucket = t.at or 0.5
    t.bucket = function() return bucket end
    t.buckets = 1000
    return t
end

describe("choose.version", function()
    it("prefers the pinned URL version over everything", function()
        local v, how = choose.version(model, req { pinned = "2", forced = "1" },
            live({}, { ["1"] = 100 }))
        assert.equal("2", v)
        assert.equal("pinned", how)
    end)

    it("then the force header", function()
        assert.equal("2", (choose.version(model, req { forced = "2" }, live())))
    end)

    it("then a live override", function()
        local v, how = choose.version(model, req { at = 0.1 }, live({}, { ["2"] = 100 }))
        assert.equal("2", v)
        assert.equal("override", how)
    end)

    it("then the release's split, by the sticky bucket", function()
        assert.equal("1", (choose.version(model, req { at = 0.8995 }, live())))
        assert.equal("2", (choose.version(model, req { at = 0.9005 }, live())))
    end)

    it("moves a killed version's share to the others", function()
        assert.equal("1", (choose.version(model, req { at = 0.95 }, live({ ["2"] = true }))))
    end)

    it("shares evenly when every weighted version is killed", function()
        local m = { versions = { "1", "2" }, version_set = model.version_set,
            weights = { ["1"] = 0, ["2"] = 100 } }
        assert.equal("1", (choose.version(m, req {}, live({ ["2"] = true }))))
    end)

    it("shares evenly when every version a live override weights is killed", function()
        local v, how = choose.version(model, req { at = 0.1 }, live({ ["2"] = true },
            { ["2"] = 100 }))
        assert.equal("1", v)
        assert.equal("override", how)
    end)

    it("reports unknown versions and all-killed models", function()
        local v, why, bad = choose.version(model, req { pinned = "7" }, live())
        assert.is_nil(v)
        assert.equal("unknown_version", why)
        assert.equal("7", bad)
        assert.equal("killed", select(2, choose.version(model, req {},
            live({ ["1"] = true, ["2"] = true }))))
    end)
end)
