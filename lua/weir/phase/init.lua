-- init_by_lua (master, on every start and reload): settings, admin token, persisted state.
local auth = require("weir.auth")
local config = require("weir.config")
local context = require("weir.context")
local metrics = require("weir.metrics")
local state = require("weir.state")

local _M = {}

-- admin_auth: "token" or "open", as rendered into nginx.conf (so changing it reloads nginx).
function _M.master(settings_file, admin_auth)
    local settings = assert(config.load(settings_file, ngx.shared.weir_state))
    context.token = auth.load(settings.token_file, config.read_file)
    if admin_auth ~= "open" and not context.token then
        error("weir: no admin token configured: set WEIR_ADMIN_TOKEN or write one to "
            .. settings.token_file .. " (mode 0600); to run the loopback admin API without "
            .. "a token, set edge.admin_auth: open in the release", 0)
    end
    assert(state.load_once(settings.state_file, config.read_file))
end

-- init_worker_by_lua: per-worker metrics are flushed to the shared dict by a timer.
function _M.worker()
    metrics.start_flushing()
end

return _M
