-- header_filter_by_lua and body_filter_by_lua hooks of nginx.conf, each handed to the concern
-- that owns it.
local nginx_errors = require("weir.nginx_errors")

return {
    infer_header = nginx_errors.header,             -- a model's infer location
    infer_body = nginx_errors.body,
}
