-- Shadow traffic at the edge: on a sampled share of a model's infer requests, name the
-- release's shadow version in $weir_shadow, which nginx.conf sends as the X-Weir-Shadow
-- request header (proxy_set_header: empty, it is not sent at all; a client's own header of
-- that name never passes, so no client can ask for shadow work). The sidecar that answers
-- computes the copy and compares (sidecar/serving/shadow.py): no second request, nothing
-- parsed here, and nothing of the shadow reaches the breaker or the response.
local names = require("weir.names")

local random = math.random
local SHADOW = names.VAR.SHADOW

local _M = {}

-- After routing chose `version`: the shadow's own requests are not copied to itself, and a
-- killed shadow version computes nothing.
function _M.mark(model, version, live)
    local shadow = model.shadow
    if not shadow or shadow.version == version or live.killed_versions[shadow.version] then
        return
    end
    if random() < shadow.sample then
        ngx.var[SHADOW] = shadow.version
    end
end

return _M
