-- init_by_lua (master, every start and reload) and init_worker_by_lua: each concern's own start,
-- in order (settings first: the others read them). An error stops nginx from starting.
local auth = require("weir.admin.auth")
local metrics = require("weir.metrics")
local overrides = require("weir.overrides")
local settings = require("weir.settings")

return {
    master = function(settings_file) settings.init(settings_file) auth.init() overrides.init() end,
    worker = metrics.init_worker,
}
