local stub = dofile("tests/lua/ngx_stub.lua")
stub.install()

describe("overrides", function()
    local overrides = require("weir.overrides")
    it("snapshots kills and splits and round-trips through the state file format", function()
        overrides.set_dict(stub.dict(function() return 0 end))
        overrides.kill("digits")
        overrides.kill("digits", "2")
        overrides.set_split("cnn", { ["1"] = 100 })
        local m = overrides.model("digits")
        assert.is_true(m.killed)
        assert.is_true(m.killed_versions["2"])
        assert.same({ ["1"] = 100 }, overrides.model("cnn").split)
        local encoded = overrides.encode()
        overrides.set_dict(stub.dict(function() return 0 end))
        assert.is_true(overrides.load_once("x", function() return encoded end))
        assert.is_true(overrides.model("digits").killed)
        assert.same({ ["1"] = 100 }, overrides.model("cnn").split)
        overrides.revive("digits")
        assert.is_false(overrides.model("digits").killed)
        -- A dict that already holds state (a reload) is not overwritten.
        assert.equal("kept", select(2, overrides.load_once("x", function() return encoded end)))
    end)

    it("saves through its own worker's tmp file, after another worker's save is done", function()
        local dict = stub.dict(function() return 0 end)
        overrides.set_dict(dict)
        local path = os.tmpname()
        dict:add("save_lock", true, 5)  -- another worker is saving
        overrides.kill("digits")
        local sleeps, real_sleep = 0, ngx.sleep
        ngx.sleep = function()
            sleeps = sleeps + 1
            assert.is_nil(io.open(path .. ".4242.tmp"))  -- nothing written while it waits
            dict:delete("save_lock")
        end
        local ok, err = overrides.save(path)
        ngx.sleep = real_sleep
        assert.is_true(ok, err)
        assert.equal(1, sleeps)
        assert.is_nil(dict:get("save_lock"))  -- released for the next save
        local handle = assert(io.open(path))
        local saved = handle:read("*a")
        handle:close()
        os.remove(path)
        assert.truthy(saved:find('"digits"', 1, true))
        assert.is_nil(io.open(path .. ".4242.tmp"))
    end)

    it("gives up with a clear error when the lock stays held", function()
        local now = 0
        local dict = stub.dict(function() return now end)
        overrides.set_dict(dict)
        dict:add("save_lock", true)
        local real_sleep, real_now = ngx.sleep, ngx.now
        ngx.now = function() return now end
        ngx.sleep = function(s) now = now + s end
        local path = os.tmpname()
        local ok, err = overrides.save(path)
        ngx.sleep, ngx.now = real_sleep, real_now
        os.remove(path)
        assert.is_nil(ok)
        assert.truthy(err:find("held its lock", 1, true))
    end)
end)
