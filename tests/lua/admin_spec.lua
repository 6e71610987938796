local stub = dofile("tests/lua/ngx_stub.lua")
stub.install()

describe("admin.handle", function()
    local admin, config, state, saved
    local cjson = require("cjson.safe")

    before_each(function()
        for _, name in ipairs({ "weir.admin", "weir.config", "weir.state" }) do
            package.loaded[name] = nil
        end
        admin, config, state = require("weir.admin"), require("weir.config"), require("weir.state")
        state.set_dict(stub.dict(function() return 0 end))
        config.set(config.decode(cjson.encode({
            revision = 4, checksum = "abc",
            models = { digits = { versions = { "1", "2" }, weights = { ["1"] = 90, ["2"] = 10 },
                upstreams = { ["1"] = "weir_digits_v1", ["2"] = "weir_digits_v2" },
                fallback = { version = "1" }, var = "digits" } },
        }), "test"))
        saved = 0
        admin.init({
            breaker = function() return { state = function() return "closed" end } end,
            persist = function() saved = saved + 1; return true end,
            metrics = function() return "m 1\n" end,
            publish = function() return nil, "no" end,
        })
    end)

    local function call(method, path, body)
        return admin.handle({ method = method, path = path, body = body })
    end

    it("kills and revives a model and a version, saving each change", function()
        assert.equal(200, (call("POST", "/admin/models/digits/kill")))
        assert.is_true(state.model("digits").killed)
        assert.equal(200, (call("DELETE", "/admin/models/digits/kill")))
        assert.equal(200, (call("POST", "/admin/models/digits/versions/2/kill")))
        local _, body = call("GET", "/admin/models/digits")
        assert.same({ ["1"] = 100, ["2"] = 0 }, body.weights.effective)
        assert.equal(3, saved)
    end)

    it("sets and clears live weights, refusing unknown versions", function()
        assert.equal(200, (call("PUT", "/admin/models/digits/split", '{"2": 100}')))
        assert.same({ ["2"] = 100 }, state.model("digits").split)
        local status, body = call("PUT", "/admin/models/digits/split", '{"9": 100}')
        assert.equal(400, status)
        assert.truthy(body.error:find("not in the release", 1, true))
        assert.equal(400, (call("PUT", "/admin/models/digits/split", "nope")))
        assert.equal(400, (call("PUT", "/admin/models/digits/split", '{"1": 0}')))
        assert.equal(200, (call("DELETE", "/admin/models/digits/split")))
        assert.is_nil(state.model("digits").split)
    end)

    it("answers status, checksum, metrics and clear errors", function()
        local status, body = call("GET", "/admin/status")
        assert.equal(200, status)
        assert.equal(4, body.revision)
        assert.equal("closed", body.models.digits.versions["1"].breaker.state)
        assert.same({ revision = 4, checksum = "abc" }, select(2, call("GET", "/admin/checksum")))
        local _, text, content_type = call("GET", "/metrics")
        assert.equal("m 1\n", text)
        assert.truthy(content_type:find("text/plain", 1, true))
        assert.equal(404, (call("POST", "/admin/models/nope/kill")))
        assert.equal(404, (call("POST", "/admin/models/digits/versions/7/kill")))
        assert.equal(405, (call("GET", "/admin/models/digits/kill")))
        assert.equal(409, (call("POST", "/admin/settings/reload")))
    end)
end)
