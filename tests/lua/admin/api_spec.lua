local stub = dofile("tests/lua/ngx_stub.lua")
stub.install()
local sample = dofile("tests/lua/sample_settings.lua")

describe("admin.api.handle", function()
    local api = require("weir.admin.api")
    local overrides = require("weir.overrides")
    local settings = require("weir.settings")
    local real_save = overrides.save
    local settings_path, saved

    before_each(function()
        settings_path = os.tmpname()
        sample.write(settings_path, sample())
        assert(settings.load(settings_path, ngx.shared.weir_state))
        overrides.set_dict(stub.dict(function() return 0 end))
        saved = 0
        overrides.save = function() saved = saved + 1; return true end
    end)

    after_each(function()
        overrides.save = real_save
        os.remove(settings_path)
    end)

    local function call(method, path, body)
        return api.handle({ method = method, path = path, body = body })
    end

    it("kills and revives a model and a version, saving each change", function()
        assert.equal(200, (call("POST", "/admin/models/digits/kill")))
        assert.is_true(overrides.model("digits").killed)
        assert.equal(200, (call("DELETE", "/admin/models/digits/kill")))
        assert.equal(200, (call("POST", "/admin/models/digits/versions/2/kill")))
        local _, body = call("GET", "/admin/models/digits")
        assert.same({ ["1"] = 100, ["2"] = 0 }, body.weights.effective)
        assert.equal(3, saved)
    end)

    it("sets and clears live weights, refusing unknown versions", function()
        assert.equal(200, (call("PUT", "/admin/models/digits/split", '{"2": 100}')))
        assert.same({ ["2"] = 100 }, overrides.model("digits").split)
        local status, body = call("PUT", "/admin/models/digits/split", '{"9": 100}')
        assert.equal(400, status)
        assert.truthy(body.error:find("not in the release", 1, true))
        assert.equal(400, (call("PUT", "/admin/models/digits/split", "nope")))
        assert.equal(400, (call("PUT", "/admin/models/digits/split", '{"1": 0}')))
        assert.equal(200, (call("DELETE", "/admin/models/digits/split")))
        assert.is_nil(overrides.model("digits").split)
    end)

    it("answers status, checksum, metrics and clear errors", function()
        local status, body = call("GET", "/admin/status")
        assert.equal(200, status)
        assert.equal(4, body.revision)
        assert.equal("closed", body.models.digits.versions["1"].breaker.state)
        assert.same({ revision = 4, checksum = "abc" }, select(2, call("GET", "/admin/checksum")))
        local _, text, content_type = call("GET", "/metrics")
        assert.truthy(text:find('weir_edge_breaker_state{model="digits",version="1"} 0', 1, true))
        assert.truthy(content_type:find("text/plain", 1, true))
        assert.equal(404, (call("POST", "/admin/models/nope/kill")))
        assert.equal(404, (call("POST", "/admin/models/digits/versions/7/kill")))
        assert.equal(405, (call("GET", "/admin/models/digits/kill")))
        assert.same({ revision = 4, checksum = "abc" }, select(2, call("POST", "/admin/settings/reload")))
        sample.write(settings_path, sample({ revision = 5, wiring = "other" }))
        local reload_status, reload_body = call("POST", "/admin/settings/reload")
        assert.equal(409, reload_status)
        assert.truthy(reload_body.error:find("needs a reload", 1, true))
    end)

    it("refuses splits that are not percent objects summing to 100", function()
        for _, body in ipairs({
            "[0,100]", '[50, 50]', '{"1": 0x64}', '{"1": 0x32, "2": 0x32}', '{"1": NaN}',
            '{"1": Infinity}', '{"1": -10, "2": 110}', '{"1": 33.33, "2": 66.67}',
            '{"1": 50, "2": 40}', '{"1": "100"}', '{}', '{"1": 100, "7": 0}', "",
        }) do
            local status, answer = call("PUT", "/admin/models/digits/split", body)
            assert.equal(400, status, body)
            assert.truthy(answer.error, body)
        end
        assert.is_nil(overrides.model("digits").split)
        assert.equal(0, saved)
        assert.equal(200, (call("PUT", "/admin/models/digits/split", '{"1": 99.5, "2": 0.5}')))
        assert.equal(200, (call("PUT", "/admin/models/digits/split", '{"1": 1e2}')))
    end)

    it("answers 405 for the wrong method on every route", function()
        for _, route in ipairs({ { "POST", "/admin/status" }, { "DELETE", "/admin/checksum" },
                { "GET", "/admin/settings/reload" }, { "PUT", "/metrics" },
                { "POST", "/admin/models/digits" }, { "GET", "/admin/models/digits/split" },
                { "PATCH", "/admin/models/digits/versions/2/kill" } }) do
            assert.equal(405, (call(route[1], route[2])), route[1] .. " " .. route[2])
        end
    end)

    it("answers 507 and changes nothing when the dict refuses a write", function()
        overrides.set_dict(stub.dict(function() return 0 end, 10), ngx.shared.weir_state)
        local status, body = call("PUT", "/admin/models/digits/split", '{"1": 50, "2": 50}')
        assert.equal(507, status)
        assert.truthy(body.error:find("nothing changed", 1, true))
        assert.is_nil(overrides.model("digits").split)
        assert.equal(0, saved)
    end)

    it("undoes a change the state file cannot take", function()
        overrides.save = function() return nil, "disk full" end
        local status, body = call("POST", "/admin/models/digits/kill")
        assert.equal(500, status)
        assert.truthy(body.error:find("nothing changed", 1, true))
        assert.is_false(overrides.model("digits").killed)
        overrides.save = function() return true end
        assert.equal(200, (call("PUT", "/admin/models/digits/split", '{"1": 100}')))
        overrides.save = function() return nil, "disk full" end
        assert.equal(500, (call("DELETE", "/admin/models/digits/split")))
        assert.same({ ["1"] = 100 }, overrides.model("digits").split)
    end)
end)
