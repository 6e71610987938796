-- content_by_lua hooks of nginx.conf, each handed to the concern that owns it.
local api = require("weir.admin.api")
local response = require("weir.response")

return {
    admin = api.content,                            -- the admin listener
    metrics = api.metrics,                          -- the metrics listener's /metrics, no token
    after_fallback_error = require("weir.fallback").after_fallback_error,  -- @weir_fallback_failed
    rate_limited = response.rate_limited,
    too_large = response.too_large,
    unavailable = response.unavailable,
    not_found = response.not_found,
    server_metadata = response.server_metadata,
    live = response.live,
    ready = response.ready,
}
