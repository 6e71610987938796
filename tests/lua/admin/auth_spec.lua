local stub = dofile("tests/lua/ngx_stub.lua")
stub.install()

describe("admin.auth", function()
    local auth = require("weir.admin.auth")
    local real_getenv = os.getenv
    local env

    before_each(function()
        env = nil
        os.getenv = function(name)  -- luacheck: ignore 122
            if name == "WEIR_ADMIN_TOKEN" then
                return env
            end
            return real_getenv(name)
        end
    end)

    after_each(function()
        os.getenv = real_getenv  -- luacheck: ignore 122
    end)

    local function read(text)
        return function() return text end
    end
    local function mode(value)
        return function() return value end
    end

    it("asks for a token, refuses a wrong one, accepts the right one", function()
        assert.equal(401, (auth.check("token", "s3cret", nil)))
        assert.equal(401, (auth.check("token", "s3cret", "Basic abc")))
        assert.equal(403, (auth.check("token", "s3cret", "Bearer nope")))
        assert.equal(403, (auth.check("token", "s3cret", "Bearer s3cre")))
        assert.is_nil(auth.check("token", "s3cret", "Bearer s3cret"))
        assert.is_nil(auth.check("open", nil, nil))
        assert.equal(503, (auth.check("token", nil, "Bearer x")))
    end)

    it("reads the scheme in any case, as HTTP says", function()
        assert.is_nil(auth.check("token", "s3cret", "bearer s3cret"))
        assert.is_nil(auth.check("token", "s3cret", "BEARER s3cret"))
        assert.equal(401, (auth.check("token", "s3cret", "Bearerx s3cret")))
        assert.equal(401, (auth.check("token", "s3cret", "Bearer")))
    end)

    it("takes the environment first, then a private token file, trimmed", function()
        env = "  from-env \n"
        assert.equal("from-env", auth.load("t", read("file"), mode(384)))
        env = nil
        assert.equal("from-file", auth.load("t", read(" from-file\n"), mode(384)))  -- 0600
        assert.equal("from-file", auth.load("t", read("from-file"), mode(256)))     -- 0400
        assert.is_nil(auth.load("t", read("  \n"), mode(384)))
    end)

    it("has no token when the file is missing", function()
        assert.is_nil(auth.load("t", read(nil), function() return nil, "missing" end))
    end)

    it("refuses a token file readable by group or others, like weir apply", function()
        for _, bits in ipairs({ 416, 388, 420, 436 }) do  -- 0640, 0604, 0644, 0664
            local ok, err = pcall(auth.load, "/rt/edge/admin.token", read("x"), mode(bits))
            assert.is_false(ok)
            assert.truthy(err:find("/rt/edge/admin.token is readable by others (mode "
                .. string.format("%o", bits) .. "): run `chmod 600 /rt/edge/admin.token`", 1, true), err)
        end
    end)

    it("says so when it cannot check the file's mode", function()
        local ok, err = pcall(auth.load, "t", read("x"), function() return nil, "no FFI" end)
        assert.is_false(ok)
        assert.truthy(err:find("set WEIR_ADMIN_TOKEN instead", 1, true), err)
    end)
end)
