-- access_by_lua hooks of nginx.conf, each handed to the concern that owns it.
local auth = require("weir.admin.auth")
local fallback = require("weir.fallback")
local routing = require("weir.routing.request")

return {
    infer = routing.infer,                          -- a model's infer location
    metadata = routing.metadata,                    -- a model's metadata and ready locations
    after_upstream_error = fallback.after_upstream_error,  -- @weir_fallback_M
    admin = auth.access,                            -- sidecar metrics relayed on the admin listener
}
